// Package local is cafe's installation on one machine: the folder where
// `task up`, `cafe up` and the other commands keep what they make, so that
// every command run on the machine finds it without being told.
//
//	$CAFE_CONFIG_DIR (default ~/.config/cafe, mode 0700)
//	  clients.yaml   the registry (CAFE_CLIENTS_FILE): apps and devices
//	  demo.token     the demo app's bearer token, made by `cafe up`
//	  auth.key       the auth key every secret is derived from (CAFE_AUTH_KEY_FILE)
//	  tls/           the demo CA and certificates (`task certs`)
//
// Each path can be set on its own by its variable; the folder is only the
// default.
package local

import (
	"fmt"
	"os"
	"path/filepath"

	"cafe/contracts/identity"
)

// Variables that move the installation or its parts.
const (
	EnvDir      = "CAFE_CONFIG_DIR"
	EnvRegistry = "CAFE_CLIENTS_FILE"
	EnvKey      = "CAFE_AUTH_KEY_FILE"
)

// Dir is the installation folder.
type Dir string

// Default is $CAFE_CONFIG_DIR, or ~/.config/cafe.
func Default() (Dir, error) {
	if dir := os.Getenv(EnvDir); dir != "" {
		return Dir(dir), nil
	}
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory (set %s): %w", EnvDir, err)
	}
	return Dir(filepath.Join(base, "cafe")), nil
}

// Registry is the registry file: $CAFE_CLIENTS_FILE or clients.yaml here.
func (d Dir) Registry() string { return envOr(EnvRegistry, filepath.Join(string(d), "clients.yaml")) }

// DemoToken is where the demo app's token is kept.
func (d Dir) DemoToken() string { return filepath.Join(string(d), "demo.token") }

// KeyFile is the auth key: $CAFE_AUTH_KEY_FILE or auth.key here.
func (d Dir) KeyFile() string { return envOr(EnvKey, filepath.Join(string(d), "auth.key")) }

// TLS is the folder of the demo CA and certificates.
func (d Dir) TLS() string { return filepath.Join(string(d), "tls") }

// Key loads the auth key, creating it on first use.
func (d Dir) Key() (identity.Key, error) {
	k, _, err := identity.EnsureKey(d.KeyFile())
	return k, err
}

// MachineKey is the auth key of this machine's installation (the default
// Dir's), created on first use.
func MachineKey() (identity.Key, error) {
	d, err := Default()
	if err != nil {
		return identity.Key{}, err
	}
	return d.Key()
}

// ReadKey is the auth key of this machine's installation if there is one;
// it is never created here.
func ReadKey() (identity.Key, error) {
	d, err := Default()
	if err != nil {
		return identity.Key{}, err
	}
	return identity.LoadKey(d.KeyFile())
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
