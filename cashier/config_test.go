package cashier_test

import (
	"slices"
	"testing"
	"time"

	"cafe/cashier"
	"cafe/contracts"
)

// Each refusal names the one setting to fix, as the operator types it.
func TestValidateNamesTheSettingToFix(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*cashier.Config)
		want   contracts.Setting
	}{
		{"negative body timeout", func(c *cashier.Config) { c.BodyTimeout = -time.Second }, cashier.SettingBodyTimeout},
		{"zero body timeout", func(c *cashier.Config) { c.BodyTimeout = 0 }, cashier.SettingBodyTimeout},
		{"negative max conns", func(c *cashier.Config) { c.MaxConns = -1 }, cashier.SettingMaxConns},
		{"zero max conns", func(c *cashier.Config) { c.MaxConns = 0 }, cashier.SettingMaxConns},
		{"certificate without key", func(c *cashier.Config) { c.CertFile = "cashier.pem" }, cashier.SettingKeyFile},
		{"key without certificate", func(c *cashier.Config) { c.KeyFile = "cashier-key.pem" }, cashier.SettingCertFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cashier.Defaults()
			tc.mutate(&c)
			err := c.Validate()
			if got := contracts.InvalidSettings(err); !slices.Equal(got, []contracts.Setting{tc.want}) {
				t.Fatalf("%v names %v, want only %v", err, got, tc.want)
			}
		})
	}
}
