// Package cli holds what every cafe binary shares on its command line:
// flags that each mirror an environment variable, the logger, and the
// signal-aware context.
//
// Every setting is a flag and, but for the few that are flags only, an
// environment variable (CAFE_...). A flag given on the command line wins
// over the environment, which wins over the default. The help text of each
// flag names its variable.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"cafe/contracts"
)

const envAnnotation = "cafe_env"

// Flags registers flags that mirror environment variables.
type Flags struct{ fs *pflag.FlagSet }

// On wraps a flag set.
func On(fs *pflag.FlagSet) Flags { return Flags{fs} }

// annotate ties the flag to its environment variable, if it has one.
func (f Flags) annotate(s contracts.Setting) {
	if s.Env == "" {
		return // a flag only
	}
	_ = f.fs.SetAnnotation(s.Flag, envAnnotation, []string{s.Env})
	fl := f.fs.Lookup(s.Flag)
	fl.Usage += " (env " + s.Env + ")"
}

// Setting names a flag and its environment variable, for the settings a
// command declares itself; the settings of a role's Config are declared in
// the role's package (contracts.Setting).
func Setting(flag, env string) contracts.Setting { return contracts.Setting{Flag: flag, Env: env} }

// Flags of each type, mirrored by their environment variable: the value
// is set from the command line, else from the variable, else def.
func (f Flags) String(p *string, s contracts.Setting, def, usage string) {
	define(f, f.fs.StringVar, p, s, def, usage)
}
func (f Flags) Int(p *int, s contracts.Setting, def int, usage string) {
	define(f, f.fs.IntVar, p, s, def, usage)
}
func (f Flags) Int64(p *int64, s contracts.Setting, def int64, usage string) {
	define(f, f.fs.Int64Var, p, s, def, usage)
}
func (f Flags) Float(p *float64, s contracts.Setting, def float64, usage string) {
	define(f, f.fs.Float64Var, p, s, def, usage)
}
func (f Flags) Bool(p *bool, s contracts.Setting, def bool, usage string) {
	define(f, f.fs.BoolVar, p, s, def, usage)
}

// StringArray registers a repeatable string flag; its environment
// variable, if it has one, gives one value.
func (f Flags) StringArray(p *[]string, s contracts.Setting, def []string, usage string) {
	define(f, f.fs.StringArrayVar, p, s, def, usage)
}

// Has reports whether a flag for s is registered already.
func (f Flags) Has(s contracts.Setting) bool { return f.fs.Lookup(s.Flag) != nil }

// StringSlice registers a comma-separated list (a,b,c); its environment
// variable, if it has one, takes the same form.
func (f Flags) StringSlice(p *[]string, s contracts.Setting, def []string, usage string) {
	define(f, f.fs.StringSliceVar, p, s, def, usage)
}

// Duration takes Go's syntax: 5s, 1500ms.
func (f Flags) Duration(p *time.Duration, s contracts.Setting, def time.Duration, usage string) {
	define(f, f.fs.DurationVar, p, s, def, usage)
}

// define registers a flag with pflag's typed function bind and records the
// variable that mirrors it.
func define[T any](f Flags, bind func(p *T, name string, def T, usage string), p *T, s contracts.Setting, def T, usage string) {
	bind(p, s.Flag, def, usage)
	f.annotate(s)
}

// ApplyEnv sets every flag not given on the command line from its
// environment variable, if that is set. The error names the variable and
// what it should look like.
func ApplyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(fl *pflag.Flag) {
		names := fl.Annotations[envAnnotation]
		if err != nil || fl.Changed || len(names) == 0 {
			return
		}
		v, ok := os.LookupEnv(names[0])
		if !ok {
			return
		}
		if setErr := fs.Set(fl.Name, v); setErr != nil {
			err = fmt.Errorf("environment variable %s=%q: %w (expected a %s, like the --%s flag)", names[0], v, setErr, fl.Value.Type(), fl.Name)
		}
	})
	return err
}

// Log holds the logging settings every binary has.
type Log struct {
	Level  string
	Format string
}

// Register adds --log-level and --log-format.
func (l *Log) Register(f Flags) {
	f.String(&l.Level, Setting("log-level", "CAFE_LOG_LEVEL"), "info", "log level: debug, info, warn or error")
	f.String(&l.Format, Setting("log-format", "CAFE_LOG_FORMAT"), "text", "log format: text or json")
}

// Logger builds the logger, writing to w.
func (l Log) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(l.Format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", l.Format)
}

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Start is what every command does first: apply the environment to the
// flags not given, then build the logger (writing to w).
func (l *Log) Start(fs *pflag.FlagSet, w io.Writer) (*slog.Logger, error) {
	if err := ApplyEnv(fs); err != nil {
		return nil, err
	}
	return l.Logger(w)
}
