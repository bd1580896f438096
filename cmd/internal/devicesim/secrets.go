package devicesim

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"cafe/contracts/identity"
	"cafe/contracts/registry"
)

// Where a fleet's devices get their secrets (Config.Secret), for the
// binary: a file of "ID SECRET" lines, as `cafe devices add ID...` prints
// them, or the registry and the auth key they were derived from.

// SecretsFile reads "ID SECRET" lines (blank lines and # comments
// skipped) into a Config.Secret.
func SecretsFile(name string) (func(string) string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("secrets file: %w", err)
	}
	defer f.Close()
	secrets := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, secret, ok := strings.Cut(line, " ")
		if !ok || strings.TrimSpace(secret) == "" {
			return nil, fmt.Errorf("secrets file %s line %d: want \"ID SECRET\"", name, n)
		}
		secrets[id] = strings.TrimSpace(secret)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("secrets file %s: %w", name, err)
	}
	return func(id string) string { return secrets[id] }, nil
}

// DerivedSecrets gives each device the secret derived from key for its
// generation in the registry file (1 for a device it does not list).
func DerivedSecrets(registryFile string, key identity.Key) (func(string) string, error) {
	reg, err := registry.Load(registryFile)
	if err != nil {
		return nil, err
	}
	return func(id string) string {
		gen := 1
		if d, ok := reg.Device(id); ok {
			gen = d.Generation
		}
		return key.DeviceSecret(id, gen)
	}, nil
}
