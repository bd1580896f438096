package contracts

import (
	"errors"
	"fmt"
)

// Setting names one configuration value the way operators meet it: a
// command-line flag and the environment variable that mirrors it. Every
// package that has a Config declares a Setting for each field an operator
// sets, next to the field; the binaries register their flags from these
// (cmd/internal/cli), and Validate names them in its errors, so the name
// an error tells an operator to fix is always the one they can type.
//
// Every setting is public configuration: the README's table lists all that
// have an environment variable. A few are flags only (`cafe bench`'s load
// settings, which describe one invocation rather than a deployment): their
// Env is empty.
type Setting struct {
	Flag string // without the leading dashes
	Env  string // CAFE_...; empty for a flag only
}

// String is how errors name the setting: "--flag (CAFE_ENV)", or "--flag"
// for a flag only.
func (s Setting) String() string {
	if s.Env == "" {
		return "--" + s.Flag
	}
	return "--" + s.Flag + " (" + s.Env + ")"
}

// SettingError is a configuration value that cannot be used.
type SettingError struct {
	Setting Setting
	Problem string // the value and what is wanted instead
}

func (e *SettingError) Error() string { return e.Setting.String() + " " + e.Problem }

// Errorf returns a *SettingError for s, its problem formatted as by fmt.Sprintf.
func (s Setting) Errorf(format string, args ...any) error {
	return &SettingError{Setting: s, Problem: fmt.Sprintf(format, args...)}
}

// InvalidSettings lists the settings named by the *SettingErrors in err
// (joined or wrapped), for tests and tools.
func InvalidSettings(err error) []Setting {
	var out []Setting
	var walk func(error)
	walk = func(err error) {
		var se *SettingError
		switch e := err.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		default:
			if errors.As(err, &se) {
				out = append(out, se.Setting)
			}
		}
	}
	walk(err)
	return out
}
