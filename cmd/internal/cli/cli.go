// Package cli holds what every cafe binary shares on its command line:
// flags that each mirror an environment variable, the logger, and the
// signal-aware context.
//
// Every setting is a flag and an environment variable (CAFE_...). A flag
// given on the command line wins over the environment, which wins over the
// default. The help text of each flag names its variable.
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
)

const envAnnotation = "cafe_env"

// Flags registers flags that mirror environment variables.
type Flags struct{ fs *pflag.FlagSet }

// On wraps a flag set.
func On(fs *pflag.FlagSet) Flags { return Flags{fs} }

func (f Flags) annotate(name, env string) {
	_ = f.fs.SetAnnotation(name, envAnnotation, []string{env})
	fl := f.fs.Lookup(name)
	fl.Usage += " (env " + env + ")"
}

// String registers a string flag mirrored by env.
func (f Flags) String(p *string, name, env, def, usage string) {
	f.fs.StringVar(p, name, def, usage)
	f.annotate(name, env)
}

// Int registers an int flag mirrored by env.
func (f Flags) Int(p *int, name, env string, def int, usage string) {
	f.fs.IntVar(p, name, def, usage)
	f.annotate(name, env)
}

// Float registers a float flag mirrored by env.
func (f Flags) Float(p *float64, name, env string, def float64, usage string) {
	f.fs.Float64Var(p, name, def, usage)
	f.annotate(name, env)
}

// Bool registers a bool flag mirrored by env.
func (f Flags) Bool(p *bool, name, env string, def bool, usage string) {
	f.fs.BoolVar(p, name, def, usage)
	f.annotate(name, env)
}

// Duration registers a duration flag (Go syntax: 5s, 1500ms) mirrored by env.
func (f Flags) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	f.fs.DurationVar(p, name, def, usage)
	f.annotate(name, env)
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
	f.String(&l.Level, "log-level", "CAFE_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	f.String(&l.Format, "log-format", "CAFE_LOG_FORMAT", "text", "log format: text or json")
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

// Int64 registers an int64 flag mirrored by env.
func (f Flags) Int64(p *int64, name, env string, def int64, usage string) {
	f.fs.Int64Var(p, name, def, usage)
	f.annotate(name, env)
}

// Start is what every command does first: apply the environment to the
// flags not given, then build the logger (writing to w).
func (l *Log) Start(fs *pflag.FlagSet, w io.Writer) (*slog.Logger, error) {
	if err := ApplyEnv(fs); err != nil {
		return nil, err
	}
	return l.Logger(w)
}
