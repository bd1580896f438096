package brokertest

import (
	"context"
	"sync"
	"testing"
)

// Start runs role and the links it uses, each until the test ends or the
// returned stop is called. Stop ends the role first and waits for it, then
// the links, as the services do: a role shutting down still has its brokers.
// role may be nil (links only). Stop is idempotent.
func Start(t testing.TB, role func(context.Context) error, links ...func(context.Context) error) (stop func()) {
	t.Helper()
	linkCtx, stopLinks := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range links {
		wg.Go(func() { _ = run(linkCtx) })
	}
	roleCtx, stopRole := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		if role != nil {
			_ = role(roleCtx)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stopRole()
			<-ran
			stopLinks()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// Run runs link (an mqttlink.Link or anything with a Run(ctx) lifecycle)
// until the test ends or the returned stop is called.
func Run(t testing.TB, link interface{ Run(context.Context) error }) (stop func()) {
	t.Helper()
	return Start(t, nil, link.Run)
}
