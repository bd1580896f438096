package scale

import (
	"errors"
	"os/exec"
	"strings"

	"cafe/barista"
	"cafe/cmd/internal/run"
	"cafe/contracts"
	"cafe/contracts/ops"
)

// PIDs are the process ids of the children running and not stopping.
func (s *Supervisor) PIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, c := range s.children {
		if !c.stopping {
			out = append(out, c.pid())
		}
	}
	return out
}

func (s *Supervisor) running() int { return len(s.PIDs()) }

// ensure starts or stops children until n run: up all at once, down one
// (the newest) at a time.
func (s *Supervisor) ensure(n int, reason string) {
	for s.running() < n {
		if err := s.start(); err != nil {
			s.log.Error("cannot start a worker; will try again next interval", "binary", s.cfg.Binary, "err", err)
			break
		}
	}
	if s.running() > n {
		s.stopNewest()
	}
	s.metrics.running.Set(float64(s.running()))
}

// start runs one more child.
func (s *Supervisor) start() error {
	name := contracts.NewName(s.cfg.Role[:1] + "-")
	c, err := startChild(s.cfg.Binary, name, s.childEnv(name), s.exited, s.quit)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.children = append(s.children, c)
	s.mu.Unlock()
	s.log.Info("worker started", "name", name, "pid", c.pid())
	return nil
}

// childEnv is the supervisor's environment with the child's own route
// (or instance) and a free ops port of its own.
func (s *Supervisor) childEnv(name string) []string {
	own := map[string]string{ops.SettingAddr.Env: run.DefaultOpsAddr}
	for k, v := range s.cfg.Set {
		own[k] = v
	}
	if s.cfg.Role == RoleBarista {
		own[barista.SettingRoute.Env] = name
	}
	env := make([]string, 0, len(s.cfg.Env)+len(own))
	for _, kv := range s.cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		if _, mine := own[k]; !mine {
			env = append(env, kv)
		}
	}
	for k, v := range own {
		env = append(env, k+"="+v)
	}
	return env
}

// stopNewest asks the newest running child to stop.
func (s *Supervisor) stopNewest() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.children) - 1; i >= 0; i-- {
		if c := s.children[i]; !c.stopping {
			s.log.Info("worker stopping (SIGTERM)", "name", c.name, "pid", c.pid())
			c.stop(s.cfg.StopGrace)
			return
		}
	}
}

// reap forgets an exited child; one that was not asked to stop died, and
// is replaced at once.
func (s *Supervisor) reap(c *child) {
	s.mu.Lock()
	for i, x := range s.children {
		if x == c {
			s.children = append(s.children[:i], s.children[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	if c.stopping {
		s.log.Info("worker stopped", "name", c.name, "exit", exitText(c.err))
		s.metrics.running.Set(float64(s.running()))
		return
	}
	s.log.Warn("worker died; replacing it", "name", c.name, "exit", exitText(c.err))
	s.metrics.decisions.WithLabelValues("replace").Inc()
	s.ensure(s.running()+1, "replace")
}

// stopAll stops every child and waits for them.
func (s *Supervisor) stopAll() {
	s.mu.Lock()
	all := append([]*child(nil), s.children...)
	for _, c := range all {
		if !c.stopping {
			c.stop(s.cfg.StopGrace)
		}
	}
	s.mu.Unlock()
	for _, c := range all {
		<-c.done
		s.log.Info("worker stopped", "name", c.name, "exit", exitText(c.err))
	}
	s.mu.Lock()
	s.children = nil
	s.mu.Unlock()
	s.metrics.running.Set(0)
}

func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
