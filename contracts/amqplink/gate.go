package amqplink

import "context"

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
