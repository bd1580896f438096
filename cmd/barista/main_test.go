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
		{"negative concurrency", nil, map[string]string{"CAFE_BARISTA_CONCURRENCY": "-1"}, "concurrency"},
		{"concurrency not a number", nil, map[string]string{"CAFE_BARISTA_CONCURRENCY": "lots"}, "CAFE_BARISTA_CONCURRENCY"},
		{"route with a slash", []string{"--route", "a/b"}, nil, "route"},
		{"route with a wildcard", []string{"--route", "+"}, nil, "route"},
		{"mqtt scheme", []string{"--mqtt-url", "ftp://localhost:1883"}, nil, "scheme"},
		{"amqp url", []string{"--amqp-url", "localhost:5672"}, nil, "amqp url"},
		{"delivery limit", []string{"--delivery-limit", "0"}, nil, "delivery limit"},
		{"busy port", []string{"--http-addr", "256.0.0.1:1"}, nil, "listen"},
		{"grace", []string{"--grace", "soon"}, nil, "grace"},
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
