package e2e

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel kill the process if the test binary dies
// first (a panic or a -timeout), so no binary outlives its test.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
