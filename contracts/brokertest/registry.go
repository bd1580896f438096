package brokertest

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// DevicesYAML is the devices: section of a registry that registers ids
// (with a secret nobody uses), for tests whose devices must exist for the
// cashier (404 otherwise) but never log in.
func DevicesYAML(ids ...string) string {
	var b strings.Builder
	b.WriteString("devices:\n")
	for _, id := range ids {
		sum := sha256.Sum256([]byte("unused secret of " + id))
		b.WriteString("  - id: \"" + id + "\"\n    secret_sha256: " + hex.EncodeToString(sum[:]) + "\n")
	}
	return b.String()
}
