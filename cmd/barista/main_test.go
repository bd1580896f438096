package main

import (
	"testing"

	"cafe/cmd/internal/cli/clitest"
	"cafe/cmd/internal/run"
)

func TestBadConfigurationIsRefusedClearly(t *testing.T) {
	clitest.ExpectRefused(t, run.BaristaCommand, []clitest.Case{
		{Name: "negative concurrency", Env: map[string]string{"CAFE_BARISTA_CONCURRENCY": "-1"}, Want: "CAFE_BARISTA_CONCURRENCY"},
		{Name: "concurrency not a number", Env: map[string]string{"CAFE_BARISTA_CONCURRENCY": "lots"}, Want: "CAFE_BARISTA_CONCURRENCY"},
		{Name: "route with a slash", Args: []string{"--route", "a/b"}, Want: "route"},
		{Name: "route with a wildcard", Args: []string{"--route", "+"}, Want: "route"},
		{Name: "mqtt scheme", Args: []string{"--mqtt-url", "ftp://localhost:1883"}, Want: "scheme"},
		{Name: "amqp url", Args: []string{"--amqp-url", "localhost:5672"}, Want: "CAFE_AMQP_URL"},
		{Name: "delivery limit", Args: []string{"--delivery-limit", "0"}, Want: "CAFE_DELIVERY_LIMIT"},
		{Name: "busy port", Args: []string{"--http-addr", "256.0.0.1:1"}, Want: "listen"},
		{Name: "grace", Args: []string{"--grace", "soon"}, Want: "grace"},
	})
}
