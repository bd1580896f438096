package main

import (
	"testing"

	"cafe/cmd/internal/cli/clitest"
	"cafe/cmd/internal/run"
)

func TestBadConfigurationIsRefusedClearly(t *testing.T) {
	clitest.ExpectRefused(t, run.LedgerCommand, []clitest.Case{
		{Name: "retention", Args: []string{"--ledger-retention", "1s"}, Want: "CAFE_LEDGER_RETENTION"},
		{Name: "batch", Env: map[string]string{"CAFE_LEDGER_BATCH": "20000"}, Want: "CAFE_LEDGER_BATCH"},
		{Name: "batch wait", Args: []string{"--ledger-batch-wait", "5s"}, Want: "CAFE_LEDGER_BATCH_WAIT"},
		{Name: "postgres url", Args: []string{"--postgres-url", "postgres://a b:x"}, Want: "CAFE_POSTGRES_URL"},
		{Name: "amqp url", Args: []string{"--amqp-url", "http://x"}, Want: "CAFE_AMQP_URL"},
	})
}
