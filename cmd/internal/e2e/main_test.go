package e2e

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"testing"

	"go.uber.org/goleak"
)

// binDir holds the binaries TestMain built.
var binDir string

// raceBinaries builds the binaries with the race detector (slower, so not
// the default): go test -race ./cmd/internal/e2e/ -race-binaries
var raceBinaries = flag.Bool("race-binaries", false, "build the binaries under test with -race; a race report in any of them fails its test")

// packages are the binaries under test.
var packages = []string{"cafe/cmd/cashier", "cafe/cmd/barista", "cafe/cmd/caller", "cafe/cmd/devicesim", "cafe/cmd/cafe", "cafe/cmd/ledger", "cafe/cmd/plaincafe"}

// defaultParallel is how many tests run at once unless -parallel says
// otherwise. go test's default is GOMAXPROCS (2 here), but these tests
// spend their time waiting on processes and brokers, not on the CPU.
const defaultParallel = "16"

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", defaultParallel)
	}

	dir, err := os.MkdirTemp("", "cafe-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir

	code := m.Run()
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		// Every process, MQTT link and HTTP connection a test opened is
		// closed by its cleanup; whatever still runs here leaked.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: goroutines leaked:", err)
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles every binary into dir; the error carries the compiler's
// output.
func build(dir string) error {
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if *raceBinaries {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, packages...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("e2e: go %s failed: %w\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
	return nil
}
