package contracts_test

import (
	"strings"
	"testing"
	"time"

	"cafe/contracts"
)

func TestFillDefaults(t *testing.T) {
	type inner struct {
		N int
		D time.Duration
	}
	type config struct {
		S      string
		N      int
		B      bool
		In     inner
		Kept   int `fill:"-"`
		hidden int
	}
	d := config{S: "def", N: 7, B: true, In: inner{N: 3, D: time.Second}, Kept: 9, hidden: 5}
	for _, tc := range []struct {
		name      string
		got, want config
	}{
		{"all zero", config{}, config{S: "def", N: 7, B: true, In: inner{N: 3, D: time.Second}}},
		{"set fields stay", config{S: "mine", N: -1, In: inner{D: time.Minute}}, config{S: "mine", N: -1, B: true, In: inner{N: 3, D: time.Minute}}},
		{"tagged field is never filled", config{Kept: 0}, config{S: "def", N: 7, B: true, In: inner{N: 3, D: time.Second}, Kept: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			contracts.FillDefaults(&tc.got, d)
			if tc.got != tc.want {
				t.Fatalf("got %+v, want %+v", tc.got, tc.want)
			}
		})
	}
}

func TestNewName(t *testing.T) {
	a, b := contracts.NewName("b-"), contracts.NewName("b-")
	if a == b || !strings.HasPrefix(a, "b-") || len(a) != 10 || !contracts.ValidRoute(a) {
		t.Fatalf("names %q and %q: want two different valid routes b-<8 hex digits>", a, b)
	}
}
