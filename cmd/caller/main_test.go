package main

import (
	"testing"

	"cafe/cmd/internal/cli/clitest"
	"cafe/cmd/internal/run"
)

func TestBadConfigurationIsRefusedClearly(t *testing.T) {
	clitest.ExpectRefused(t, run.CallerCommand, []clitest.Case{
		{Name: "wait beyond consumer timeout", Args: []string{"--wait-mqtt", "1h"}, Want: "CAFE_CALLER_WAIT_MQTT"},
		{Name: "concurrency", Env: map[string]string{"CAFE_CALLER_CONCURRENCY": "0.5"}, Want: "CAFE_CALLER_CONCURRENCY"},
		{Name: "mqtt url", Args: []string{"--mqtt-url", "tcp://"}, Want: "CAFE_MQTT_URL"},
		{Name: "log format", Args: []string{"--log-format", "xml"}, Want: "log format"},
	})
}
