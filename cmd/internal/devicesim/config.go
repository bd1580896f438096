package devicesim

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"cafe/contracts"
	"cafe/contracts/linktls"
	"cafe/contracts/mqttlink"
)

// Defaults and limits.
const (
	DefaultMQTTURL   = "tcp://127.0.0.1:1883"
	DefaultCount     = 10
	DefaultPattern   = "sim-%d"
	DefaultFirst     = 1
	DefaultKeyMemory = 100_000
	// DefaultKeepAlive is a device's MQTT keep-alive (mqttlink's default).
	// The fleet pings about Count/KeepAlive times a second: raise it for
	// large fleets (60,000 devices at 15s is 4,000 pings/s).
	DefaultKeepAlive = 15 * time.Second
	// MinKeepAlive is the shortest keep-alive: the fleet's pinger visits
	// every device once a second.
	MinKeepAlive = 2 * time.Second

	// MaxCount bounds a fleet; each device is an MQTT connection of its own
	// (an open file: see ulimit -n; run several processes for more).
	MaxCount = 100_000
	// MaxSleep caps the "sleep" method.
	MaxSleep = 10 * time.Minute
	// MaxCommandBytes is the largest command a device parses; a larger one
	// is answered with -32600 without being looked at.
	MaxCommandBytes = 1 << 20
	// RememberedReplyBytes bounds, per fleet, the reply bytes kept for
	// repeat keys (an echo of 1 MiB times 100 000 keys would not fit).
	RememberedReplyBytes = 256 << 20
)

// Config describes a fleet. New fills the fields whose zero value means
// nothing (MQTTURL, Count, Pattern, KeyMemory) with their defaults; First is
// used as given, since 0 is a fine first number (DefaultConfig starts at 1,
// like the binary).
type Config struct {
	MQTTURL   string        // tcp://[user:password@]host:port
	MQTTTLS   linktls.Files // CA and client certificate for an ssl:// MQTTURL
	Count     int           // number of devices, 1..MaxCount
	Pattern   string        // printf pattern of the device ids, given one integer
	First     int           // number of the first device: ids are Pattern(First), Pattern(First+1), ...
	Latency   time.Duration // added before every reply
	Jitter    time.Duration // random extra before every reply, 0..Jitter
	ErrorRate float64       // 0..1: fraction of requests answered with the "fail" error instead of run
	Seed      int64         // seeds every random choice; 0 picks one (see Stats.Seed)
	KeyMemory int           // repeat keys remembered per fleet, split evenly over the devices
	// MaxBackoff is the longest wait between reconnection attempts; 0 keeps
	// mqttlink's default (5s).
	MaxBackoff time.Duration
	// KeepAlive is each device's MQTT keep-alive; 0 means DefaultKeepAlive.
	KeepAlive time.Duration
	// Secret gives each device's MQTT password (its registered secret); nil
	// connects without one. A device connects with user name and client id
	// = its device id.
	Secret func(deviceID string) string
}

// The settings of the devicesim binary, registered by cmd/devicesim. cafe
// up and cafe bench run fleets too, under flags of their own (--devices,
// --device-latency, ...), so Validate's errors name the field, not these.
var (
	SettingCount     = contracts.Setting{Flag: "count", Env: "CAFE_SIM_COUNT"}
	SettingPattern   = contracts.Setting{Flag: "pattern", Env: "CAFE_SIM_PATTERN"}
	SettingFirst     = contracts.Setting{Flag: "first", Env: "CAFE_SIM_FIRST"}
	SettingLatency   = contracts.Setting{Flag: "latency", Env: "CAFE_SIM_LATENCY"}
	SettingJitter    = contracts.Setting{Flag: "jitter", Env: "CAFE_SIM_JITTER"}
	SettingErrorRate = contracts.Setting{Flag: "error-rate", Env: "CAFE_SIM_ERROR_RATE"}
	SettingSeed      = contracts.Setting{Flag: "seed", Env: "CAFE_SIM_SEED"}
	SettingKeyMemory = contracts.Setting{Flag: "key-memory", Env: "CAFE_SIM_KEY_MEMORY"}
	SettingKeepAlive = contracts.Setting{Flag: "keepalive", Env: "CAFE_SIM_KEEPALIVE"}
	// SettingStatsFile is where the binary writes Stats (Stats.WriteFile)
	// on exit.
	SettingStatsFile = contracts.Setting{Flag: "stats-file", Env: "CAFE_SIM_STATS_FILE"}
)

// Defaults is the configuration of the binary when no flag is given.
func Defaults() Config {
	return Config{
		MQTTURL:   DefaultMQTTURL,
		Count:     DefaultCount,
		Pattern:   DefaultPattern,
		First:     DefaultFirst,
		KeyMemory: DefaultKeyMemory,
		KeepAlive: DefaultKeepAlive,
	}
}

func (c Config) withDefaults() Config {
	if c.MQTTURL == "" {
		c.MQTTURL = DefaultMQTTURL
	}
	if c.Count == 0 {
		c.Count = DefaultCount
	}
	if c.Pattern == "" {
		c.Pattern = DefaultPattern
	}
	if c.KeyMemory == 0 {
		c.KeyMemory = DefaultKeyMemory
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	return c
}

// Validate reports everything that is wrong with c, as it stands (New fills
// defaults first; the binary validates what the user typed).
func (c Config) Validate() error {
	var errs []error
	if err := (mqttlink.Config{URL: c.MQTTURL, ClientID: "devicesim-check", TLS: c.MQTTTLS}).Validate(); err != nil {
		errs = append(errs, err) // mqttlink's rules for an MQTT URL, checked before any connects
	} else if u, _ := url.Parse(c.MQTTURL); u.Scheme == "ws" || u.Scheme == "wss" {
		errs = append(errs, mqttlink.SettingURL.Errorf("%q: simulated devices speak MQTT over TCP (tcp://) or TLS (ssl://), not over WebSocket",
			contracts.RedactURL(c.MQTTURL)))
	}
	countOK := c.Count >= 1 && c.Count <= MaxCount
	if !countOK {
		errs = append(errs, fmt.Errorf("count %d: want 1 to %d devices", c.Count, MaxCount))
	}
	if c.Latency < 0 {
		errs = append(errs, fmt.Errorf("latency %v: want 0 or more", c.Latency))
	}
	if c.Jitter < 0 {
		errs = append(errs, fmt.Errorf("jitter %v: want 0 or more", c.Jitter))
	}
	if !(c.ErrorRate >= 0 && c.ErrorRate <= 1) { // also rejects NaN
		errs = append(errs, fmt.Errorf("error rate %v: want a fraction from 0 to 1", c.ErrorRate))
	}
	if c.KeepAlive != 0 && (c.KeepAlive < MinKeepAlive || c.KeepAlive > 65535*time.Second) {
		errs = append(errs, fmt.Errorf("keep-alive %v: want %v to 18h12m15s (MQTT counts it in seconds, at most 65535)", c.KeepAlive, MinKeepAlive))
	}
	if c.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("max backoff %v: want 0 (default) or more", c.MaxBackoff))
	}
	if countOK && c.KeyMemory < c.Count {
		errs = append(errs, fmt.Errorf("key memory %d: want at least one key per device (%d)", c.KeyMemory, c.Count))
	}
	if countOK {
		if _, err := c.ids(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ids formats the device ids and checks each against the device id rules.
func (c Config) ids() ([]string, error) {
	if c.Pattern == "" {
		return nil, errors.New("id pattern is empty: want a printf pattern such as sim-%d")
	}
	ids := make([]string, c.Count)
	seen := make(map[string]int, c.Count)
	for i := range ids {
		n := c.First + i
		if n < c.First { // overflow
			return nil, fmt.Errorf("first %d: the numbers of %d devices overflow", c.First, c.Count)
		}
		id := fmt.Sprintf(c.Pattern, n)
		if strings.Contains(id, "%!") {
			return nil, fmt.Errorf("id pattern %q: formatting %d gives %q; want one integer verb such as %%d", c.Pattern, n, id)
		}
		if !contracts.ValidDeviceID(id) {
			return nil, fmt.Errorf("id pattern %q gives %q: a device id is 1 to %d characters from A-Z a-z 0-9 . _ : -",
				c.Pattern, id, contracts.MaxDeviceIDLen)
		}
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("id pattern %q gives %q for both %d and %d: ids must be unique", c.Pattern, id, prev, n)
		}
		seen[id] = n
		ids[i] = id
	}
	return ids, nil
}
