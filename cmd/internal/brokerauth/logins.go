// Package brokerauth keeps the MQTT broker's logins in step with the
// registry. Mosquitto's dynamic security plugin holds the logins (user
// name, password, and for apps and devices the one client id they may
// use); a static ACL file (deploy/mosquitto/cafe.acl) grants each identity
// its topics by user name. Everything the plugin holds is derived from the
// registry and the auth key (contracts/identity), so it can be rebuilt at
// any time:
//
//   - Render writes the plugin's whole file, for a broker that has not
//     started yet (first set-up, a new broker): one file, no live changes,
//     so 60,000 devices cost one write.
//   - Reconciler applies changes to a running broker over
//     $CONTROL/dynamic-security/v1 as cafe-admin: it watches the registry
//     file and creates, rotates and deletes logins within about a second.
//     Deleting or rotating a login disconnects a client using it; the
//     broker does not publish the last will of a client it kicks, so the
//     reconciler clears a removed device's retained presence itself.
//
// Each login the reconciler manages carries a fingerprint of its password
// in the plugin's textdescription ("cafe-fp:..."), so the broker itself
// says which logins are current; logins without one (made by hand) are
// left alone.
package brokerauth

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"sort"
	"strings"

	"cafe/contracts/identity"
	"cafe/contracts/registry"
)

// Kind is what a login is for.
type Kind string

const (
	KindService Kind = "service"
	KindApp     Kind = "app"
	KindDevice  Kind = "device"
)

// Login is one identity the broker must accept.
type Login struct {
	Username string
	ClientID string // "" for services: each process picks its own
	Password string
	Kind     Kind
}

// fingerprintPrefix marks a login cafe manages, in its textdescription.
const fingerprintPrefix = "cafe-fp:"

// Fingerprint identifies the password (and client id binding) of l
// without revealing it.
func (l Login) Fingerprint() string {
	h := sha256.Sum256([]byte("cafe login fingerprint\x00" + l.Username + "\x00" + l.ClientID + "\x00" + l.Password))
	return fingerprintPrefix + hex.EncodeToString(h[:8])
}

// Desired are the logins the registry and key call for: every service,
// every app (client id bound, password from the session key), every
// device (client id bound, password its derived secret), by user name.
func Desired(reg *registry.Registry, key identity.Key) []Login {
	session := key.SessionKey()
	var out []Login
	for _, s := range identity.Services {
		out = append(out, Login{Username: string(s), Password: key.ServicePassword(s), Kind: KindService})
	}
	for _, c := range reg.Clients() {
		out = append(out, Login{Username: c.ID, ClientID: c.ID, Password: session.AppPassword(c.ID, c.TokenSHA256), Kind: KindApp})
	}
	for _, d := range reg.Devices() {
		out = append(out, Login{Username: d.ID, ClientID: d.ID, Password: key.DeviceSecret(d.ID, d.Generation), Kind: KindDevice})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out
}

// Managed reports whether a textdescription marks a login cafe manages.
func Managed(textdescription string) bool {
	return strings.HasPrefix(textdescription, fingerprintPrefix)
}

// Scope names a registry file among those whose logins share one broker
// (an installation's and a test's, say): a reconciler deletes only the
// logins of its own scope. It is a hash of the file's absolute path.
func Scope(registryFile string) string {
	abs, err := filepath.Abs(registryFile)
	if err != nil {
		abs = registryFile
	}
	h := sha256.Sum256([]byte(abs))
	return "scope:" + hex.EncodeToString(h[:4])
}

// describe is a login's textdescription: its fingerprint and scope.
func describe(l Login, scope string) string { return l.Fingerprint() + " " + scope }

// fingerprintOf and scopeOf read a textdescription back.
func fingerprintOf(td string) string { f, _, _ := strings.Cut(td, " "); return f }
func scopeOf(td string) string       { _, s, _ := strings.Cut(td, " "); return s }
