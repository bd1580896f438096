package bench

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"cafe/cmd/internal/devicesim"
	"cafe/contracts"
	"cafe/contracts/amqplink"
)

// ErrNoToken is the error of a bench that has no token to submit with.
var ErrNoToken = SettingToken.Errorf("not given: pass the app's bearer token, or run `cafe up` once to create the demo client")

// Validate reports everything wrong with c, each problem a
// *contracts.SettingError that names the flag to fix (and its environment
// variable, where it has one), so that one run shows every mistake.
func (c Config) Validate() error {
	var p problems
	c.checkApp(&p)
	c.checkLoad(&p)
	c.checkCommands(&p)
	c.checkFloor(&p)
	c.checkKnee(&p)
	c.checkBrokers(&p)
	c.checkOutput(&p)
	return errors.Join(p...)
}

// problems collects what Validate finds, in the order it checks.
type problems []error

// add records a problem with setting s, formatted as by s.Errorf.
func (p *problems) add(s contracts.Setting, format string, args ...any) {
	*p = append(*p, s.Errorf(format, args...))
}

// checkApp checks where the bench submits, and as which app.
func (c Config) checkApp(p *problems) {
	if !isURL(c.URL, "http", "https") {
		p.add(SettingURL, "%q: want the cashier's base URL, like http://127.0.0.1:8080", c.URL)
	}
	if c.Token == "" {
		*p = append(*p, ErrNoToken)
	}
	if !c.CashierOnly && !contracts.ValidClientID(c.ClientID) {
		p.add(SettingClientID, "%q: want the client id your token belongs to (results arrive on clients/{client}/results)", c.ClientID)
	}
}

// checkLoad checks the load's kind (a rate or a concurrency) and length.
func (c Config) checkLoad(p *problems) {
	switch {
	case c.Rate != 0 && c.Concurrency != 0:
		p.add(SettingRate, "%v and %s %d: give one (open loop at a rate, or closed loop at a concurrency), not both", c.Rate, SettingConcurrency, c.Concurrency)
	case c.Concurrency < 0 || c.Concurrency > 100_000:
		p.add(SettingConcurrency, "%d: want 1 to 100000 commands in flight", c.Concurrency)
	case c.Concurrency == 0 && !(c.Rate > 0 && c.Rate <= 1e6): // also rejects NaN
		p.add(SettingRate, "%v: want more than 0 and at most 1000000 commands per second", c.Rate)
	}
	if c.Count < 0 {
		p.add(SettingCount, "%d: want 0 (use %s) or more", c.Count, SettingDuration)
	}
	if c.Count == 0 && (c.Duration <= 0 || c.Duration > 24*time.Hour) {
		p.add(SettingDuration, "%v: want more than 0 and at most 24h", c.Duration)
	}
	if c.Warmup < 0 || (c.Count == 0 && c.Duration > 0 && c.Warmup >= c.Duration) {
		p.add(SettingWarmup, "%v: want 0 or more, and less than %s %v", c.Warmup, SettingDuration, c.Duration)
	}
}

// checkCommands checks the devices and what each command and call is:
// within what the cashier accepts by default.
func (c Config) checkCommands(p *problems) {
	if c.Devices < 1 || c.Devices > devicesim.MaxCount {
		p.add(SettingDevices, "%d: want 1 to %d", c.Devices, devicesim.MaxCount)
	}
	if c.DeviceLatency < 0 {
		p.add(SettingDeviceLatency, "%v: want 0 or more", c.DeviceLatency)
	}
	if c.Method == "" || len(c.Method) > contracts.MaxMethodLen || strings.HasPrefix(c.Method, "rpc.") {
		p.add(SettingMethod, "%q: want a JSON-RPC method name, 1 to %d bytes, not starting with rpc.", c.Method, contracts.MaxMethodLen)
	}
	if c.Batch < 1 || c.Batch > MaxBatch {
		p.add(SettingBatch, "%d: want 1 to %d requests per HTTP call (the cashier's CAFE_MAX_BATCH)", c.Batch, MaxBatch)
	}
	if least := minRequestBytes(c.Method); c.PayloadBytes < least {
		p.add(SettingPayloadBytes, "%d: want at least %d, the size of a request with method %q and no padding", c.PayloadBytes, least, c.Method)
	} else if c.Batch >= 1 && c.PayloadBytes*c.Batch+c.Batch+2 > MaxBodyBytes {
		p.add(SettingPayloadBytes, "%d × %s %d: the body would exceed the cashier's %d-byte limit (CAFE_MAX_BODY_BYTES)", c.PayloadBytes, SettingBatch, c.Batch, MaxBodyBytes)
	}
	if c.HTTPWorkers < 1 || c.HTTPWorkers > 10_000 {
		p.add(SettingHTTPWorkers, "%d: want 1 to 10000", c.HTTPWorkers)
	}
	if c.Timeout <= 0 || c.Timeout > 10*time.Minute {
		p.add(SettingTimeout, "%v: want more than 0 and at most 10m (the command's Cafe-Timeout)", c.Timeout)
	}
	if c.Drain < 0 {
		p.add(SettingDrain, "%v: want 0 or more", c.Drain)
	}
}

// checkFloor checks the floor's lengths, with --floor.
func (c Config) checkFloor(p *problems) {
	if c.Floor && (c.FloorDuration <= 0 || c.LoneCount < 1) {
		p.add(SettingFloorDuration, "%v and %s %d: want more than 0", c.FloorDuration, SettingLoneCount, c.LoneCount)
	}
}

// checkKnee checks the knee's steps, with --knee.
func (c Config) checkKnee(p *problems) {
	if !c.Knee {
		return
	}
	if !c.OpenLoop() && len(c.Against) == 0 {
		p.add(SettingKnee, "steps the open-loop rate up: give %s (its first step), not %s", SettingRate, SettingConcurrency)
	}
	if c.KneeStep <= 0 || c.Warmup >= c.KneeStep {
		p.add(SettingKneeStep, "%v: want more than 0 and more than %s %v", c.KneeStep, SettingWarmup, c.Warmup)
	}
	if !(c.KneeFactor > 1 && c.KneeFactor <= 10) {
		p.add(SettingKneeFactor, "%v: want more than 1 and at most 10", c.KneeFactor)
	}
	if c.KneeP99 <= 0 {
		p.add(SettingKneeP99, "%v: want more than 0", c.KneeP99)
	}
	if c.KneeMaxSteps < 1 {
		p.add(SettingKneeMaxSteps, "%d: want at least 1", c.KneeMaxSteps)
	}
}

// checkBrokers checks the brokers the bench itself connects to: RabbitMQ
// for the floor, MQTT for the results and the devices (and the floor).
func (c Config) checkBrokers(p *problems) {
	if _, err := amqplink.ParseURLs(c.AMQPURL); c.Floor && err != nil {
		p.add(SettingAMQPURL, "%q: want amqp://user:password@host:port/vhost (the floor publishes to RabbitMQ directly)", c.AMQPURL)
	}
	if (!c.CashierOnly || c.Floor) && !isURL(c.MQTTURL) {
		p.add(SettingMQTTURL, "%q: want tcp://host:port", c.MQTTURL)
	}
}

// checkOutput checks what the bench reads from the services and where it
// writes.
func (c Config) checkOutput(p *problems) {
	c.checkAgainst(p)
	for _, s := range c.Scrape {
		if _, _, err := parseScrape(s); err != nil {
			*p = append(*p, err)
		}
	}
	if c.Out == "" {
		p.add(SettingOut, "not given: want a directory for the JSON report and the pictures")
	}
}

// checkAgainst checks the implementations to compare with, if any.
func (c Config) checkAgainst(p *problems) {
	for _, a := range c.Against {
		if _, err := parseAgainst(a); err != nil {
			*p = append(*p, err)
		}
	}
	if len(c.Against) > 0 && c.OpenLoop() {
		p.add(SettingAgainst, "compares at a number of commands in flight: give %s (and %s for the knee)", SettingConcurrency, SettingKnee)
	}
}

// isURL reports whether raw is a URL with a host and, when schemes are
// given, one of them.
func isURL(raw string, schemes ...string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Host != "" && (len(schemes) == 0 || slices.Contains(schemes, u.Scheme))
}
