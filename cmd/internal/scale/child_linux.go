package scale

import "syscall"

// childAttr makes the kernel kill a worker when the supervisor dies, so
// no barista outlives the process that counts them.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} }
