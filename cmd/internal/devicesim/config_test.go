package devicesim

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string // part of the error; "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"count negative", func(c *Config) { c.Count = -1 }, "count -1"},
		{"count zero", func(c *Config) { c.Count = 0 }, "count 0"},
		{"count too large", func(c *Config) { c.Count = MaxCount + 1 }, "count"},
		{"error rate over 1", func(c *Config) { c.ErrorRate = 2 }, "error rate 2"},
		{"error rate negative", func(c *Config) { c.ErrorRate = -0.1 }, "error rate"},
		{"latency negative", func(c *Config) { c.Latency = -1 }, "latency"},
		{"jitter negative", func(c *Config) { c.Jitter = -1 }, "jitter"},
		{"pattern with slash", func(c *Config) { c.Pattern = "bad/%d" }, `gives "bad/1"`},
		{"pattern without verb", func(c *Config) { c.Pattern = "lamp" }, "integer verb"},
		{"pattern string verb", func(c *Config) { c.Pattern = "lamp-%s" }, "integer verb"},
		{"pattern wildcard", func(c *Config) { c.Pattern = "+%d" }, "device id"},
		{"pattern too long", func(c *Config) { c.Pattern = strings.Repeat("a", 200) + "%d" }, "device id"},
		{"pattern with padding", func(c *Config) { c.Pattern = "lamp-%04d" }, ""},
		{"first zero", func(c *Config) { c.First = 0 }, ""},
		{"too few keys", func(c *Config) { c.KeyMemory = 5 }, "key memory 5"},
		{"mqtt url scheme", func(c *Config) { c.MQTTURL = "http://127.0.0.1:1883" }, "scheme"},
		{"mqtt url empty", func(c *Config) { c.MQTTURL = "" }, "CAFE_MQTT_URL"},
		{"mqtt over websocket", func(c *Config) { c.MQTTURL = "ws://127.0.0.1:9001" }, "not over WebSocket"},
		{"keep-alive too short", func(c *Config) { c.KeepAlive = time.Second }, "keep-alive 1s"},
		{"keep-alive too long", func(c *Config) { c.KeepAlive = 70000 * time.Second }, "keep-alive"},
		{"keep-alive two minutes", func(c *Config) { c.KeepAlive = 2 * time.Minute }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.want != "" && err == nil:
				t.Fatal("accepted")
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}
