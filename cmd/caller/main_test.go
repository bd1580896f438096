package main

import (
	"strings"
	"testing"
)

func TestBadConfigurationIsRefusedClearly(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"wait beyond consumer timeout", []string{"--wait-mqtt", "1h"}, nil, "wait for mqtt"},
		{"concurrency", nil, map[string]string{"CAFE_CALLER_CONCURRENCY": "0.5"}, "CAFE_CALLER_CONCURRENCY"},
		{"mqtt url", []string{"--mqtt-url", "tcp://"}, nil, "mqtt url"},
		{"log format", []string{"--log-format", "xml"}, nil, "log format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cmd := command()
			cmd.SetArgs(tc.args)
			cmd.SetOut(new(strings.Builder))
			cmd.SetErr(new(strings.Builder))
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
