package scale

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// child is one worker process.
type child struct {
	name     string // its route (barista) or instance (caller)
	cmd      *exec.Cmd
	done     chan struct{} // closed when it exited
	err      error         // why it exited (set before done closes)
	stopping bool          // asked to stop: its exit is not a death
}

// startChild runs binary with env as one worker named name.
func startChild(binary, name string, env []string, exited chan<- *child, quit <-chan struct{}) (*child, error) {
	c := &child{name: name, done: make(chan struct{})}
	c.cmd = exec.Command(binary)
	c.cmd.Env = env
	c.cmd.Stdout, c.cmd.Stderr = os.Stderr, os.Stderr // the workers' logs are the supervisor's
	c.cmd.SysProcAttr = childAttr()
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
		select {
		case exited <- c:
		case <-quit: // the supervisor is gone; nobody reaps
		}
	}()
	return c, nil
}

// stop sends SIGTERM, and SIGKILL if the child is still running after
// grace (its own grace and a margin).
func (c *child) stop(grace time.Duration) {
	c.stopping = true
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		_ = c.cmd.Process.Kill()
		return
	}
	go func() {
		select {
		case <-c.done:
		case <-time.After(grace):
			_ = c.cmd.Process.Kill()
		}
	}()
}

// pid is the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }
