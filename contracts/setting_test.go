package contracts_test

import (
	"errors"
	"slices"
	"testing"

	"cafe/contracts"
)

func TestSettingErrorsNameTheFlagAndVariable(t *testing.T) {
	both := contracts.Setting{Flag: "url", Env: "CAFE_URL"}
	flagOnly := contracts.Setting{Flag: "rate"}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"flag and variable", both.Errorf("%q: want http://host:port", "x"), `--url (CAFE_URL) "x": want http://host:port`},
		{"flag only", flagOnly.Errorf("%d: want more than 0", 0), "--rate 0: want more than 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err.Error() != tc.want {
				t.Errorf("%q, want %q", tc.err, tc.want)
			}
		})
	}
	joined := errors.Join(both.Errorf("x"), errors.New("other"), flagOnly.Errorf("y"))
	if got := contracts.InvalidSettings(joined); !slices.Equal(got, []contracts.Setting{both, flagOnly}) {
		t.Errorf("InvalidSettings = %v, want both settings in order", got)
	}
}
