package devicesim_test

import (
	"log/slog"
	"testing"

	"go.uber.org/goleak"

	"cafe/cmd/internal/devicesim/simtest"
)

// What every test of the package shares: no goroutine outlives the tests,
// and helpers wait as long as simtest's do.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = simtest.Wait

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
