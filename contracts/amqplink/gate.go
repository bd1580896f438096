package amqplink

import (
	"context"
	"reflect"
)

// PublishGate is a Gate that is ready while this link can publish: a
// connection is up and RabbitMQ is not blocking it (connection.blocked). A
// consumer whose work ends in a publish on this link (the barista's
// results) gates on it, so it takes nothing it could not finish.
func (l *Link) PublishGate() Gate { return publishGate{l} }

type publishGate struct{ l *Link }

func (g publishGate) WaitReady(ctx context.Context) error {
	for {
		g.l.mu.Lock()
		open, changed := !g.l.isLost, g.l.changed
		g.l.mu.Unlock()
		if open {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (g publishGate) Lost() <-chan struct{} {
	g.l.mu.Lock()
	defer g.l.mu.Unlock()
	return g.l.lost
}

// PublishGate is the gate of the publisher's link (see Link.PublishGate).
func (p *Publisher) PublishGate() Gate { return p.link.PublishGate() }

// waitGates returns once every gate is ready at the same time, or with
// ctx's error.
func waitGates(ctx context.Context, gates []Gate) error {
	for {
		for _, g := range gates {
			if err := g.WaitReady(ctx); err != nil {
				return err
			}
		}
		if !isClosed(anyLostNow(gates)) {
			return nil
		}
	}
}

func anyLostNow(gates []Gate) <-chan struct{} {
	for _, g := range gates {
		if lost := g.Lost(); isClosed(lost) {
			return lost
		}
	}
	return nil
}

func isClosed(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// anyLost returns a channel closed when any gate is lost; nil (never) for
// no gates. Its watcher ends with ctx.
func anyLost(ctx context.Context, gates []Gate) <-chan struct{} {
	switch len(gates) {
	case 0:
		return nil
	case 1:
		return gates[0].Lost()
	}
	lost := make(chan struct{})
	chans := make([]<-chan struct{}, len(gates))
	for i, g := range gates {
		chans[i] = g.Lost()
	}
	go func() {
		cases := make([]reflect.SelectCase, 0, len(chans)+1)
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
		for _, c := range chans {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
		}
		if i, _, _ := reflect.Select(cases); i > 0 {
			close(lost)
		}
	}()
	return lost
}
