package scale

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// FindBinary is the worker binary name: next to this executable (bin/cafe
// and bin/barista, as `task build` lays them out), else on $PATH.
func FindBinary(name string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("no %s binary next to this one nor on $PATH: build it (task build, or go build -o bin/ ./cmd/...) or give --worker-bin", name)
	}
	return p, nil
}
