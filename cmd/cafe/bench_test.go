package main

import (
	"testing"

	"cafe/cmd/internal/cli/clitest"
)

// The bench's flags come from package bench's settings: a bad value, given
// as a flag or in its environment variable, is refused before anything
// connects, with an error naming the flag (and the variable, where the
// setting has one).
func TestBenchRefusesBadConfigurationClearly(t *testing.T) {
	app := []string{"--token", "t0ken", "--client", "demo"}
	with := func(args ...string) []string { return append(append([]string(nil), app...), args...) }
	clitest.ExpectRefused(t, benchCommand, []clitest.Case{
		{Name: "url in the environment", Args: app, Env: map[string]string{"CAFE_URL": "nope"}, Want: `--url (CAFE_URL) "nope"`},
		{Name: "mqtt url in the environment", Args: app, Env: map[string]string{"CAFE_MQTT_URL": "1883"}, Want: `--mqtt-url (CAFE_MQTT_URL) "1883"`},
		{Name: "amqp url with the floor", Args: with("--floor", "--amqp-url", "http://x"), Want: `--amqp-url (CAFE_AMQP_URL) "http://x"`},
		{Name: "client", Args: []string{"--token", "t0ken", "--client", "a/b"}, Want: `--client (CAFE_CLIENT_ID) "a/b"`},
		{Name: "no token and no demo client", Env: map[string]string{"CAFE_CONFIG_DIR": t.TempDir(), "CAFE_TOKEN": ""}, Want: "--token (CAFE_TOKEN) not given"},
		{Name: "rate and concurrency", Args: with("--rate", "5", "--concurrency", "8"), Want: "--rate 5 and --concurrency 8: give one"},
		{Name: "count and duration", Args: with("--count", "5", "--duration", "3s"), Want: "--count 5 and --duration 3s: give one"},
		{Name: "knee in closed loop", Args: with("--knee", "--concurrency", "4"), Want: "--knee steps the open-loop rate up"},
		{Name: "batch", Args: with("--batch", "0"), Want: "--batch 0: want 1 to 100"},
		{Name: "scrape", Args: with("--scrape", "localhost:8080/metrics"), Want: `--scrape "localhost:8080/metrics"`},
	})
}
