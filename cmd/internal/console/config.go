package console

import (
	"cafe/cmd/internal/mgmt"
	"errors"
	"fmt"
	"time"

	"cafe/contracts"
)

// Settings of the console, each a flag and an environment variable.
var (
	SettingAddr       = contracts.Setting{Flag: "console-addr", Env: "CAFE_CONSOLE_ADDR"}
	SettingCertFile   = contracts.Setting{Flag: "console-cert-file", Env: "CAFE_CONSOLE_CERT_FILE"}
	SettingKeyFile    = contracts.Setting{Flag: "console-key-file", Env: "CAFE_CONSOLE_KEY_FILE"}
	SettingSessionTTL = contracts.Setting{Flag: "console-session-ttl", Env: "CAFE_CONSOLE_SESSION_TTL"}
	SettingManagement = mgmt.Setting // as cafe status and cafe scale
)

// Config says where the console listens and how long sessions last.
type Config struct {
	Addr       string        // listen address; 127.0.0.1:8081
	CertFile   string        // serve HTTPS with this certificate (and KeyFile); cookies are then Secure
	KeyFile    string        //
	SessionTTL time.Duration // a session's life; 12h
	Tick       time.Duration // how often live updates are sent; 1s
}

// Defaults is the console's configuration with every default filled in.
func Defaults() Config {
	return Config{Addr: "127.0.0.1:8081", SessionTTL: 12 * time.Hour, Tick: time.Second}
}

func (c *Config) fill() { contracts.FillDefaults(c, Defaults()) }

// Validate reports what is wrong with c, naming the settings to fix.
func (c Config) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, fmt.Errorf("%s and %s go together: give both or neither", SettingCertFile, SettingKeyFile))
	}
	if c.SessionTTL < time.Minute || c.SessionTTL > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("%s %v: want between 1m and 720h", SettingSessionTTL, c.SessionTTL))
	}
	if c.Tick < 100*time.Millisecond {
		errs = append(errs, errors.New("console tick: want at least 100ms"))
	}
	return errors.Join(errs...)
}
