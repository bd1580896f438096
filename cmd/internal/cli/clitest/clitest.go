// Package clitest checks that a command refuses bad configuration before it
// connects to anything, with an error naming what to fix.
package clitest

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Case is one bad configuration: flags, environment variables, and the text
// the error must contain.
type Case struct {
	Name string
	Args []string
	Env  map[string]string
	Want string
}

// ExpectRefused runs a fresh command per case and requires its error to
// mention Want.
func ExpectRefused(t *testing.T, command func() *cobra.Command, cases []Case) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			for k, v := range tc.Env {
				t.Setenv(k, v)
			}
			cmd := command()
			cmd.SetArgs(tc.Args)
			cmd.SetOut(new(strings.Builder))
			cmd.SetErr(new(strings.Builder))
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.Want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.Want)
			}
		})
	}
}
