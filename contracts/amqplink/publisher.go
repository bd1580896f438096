package amqplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrNotConfirmed is wrapped by every error of Publish: the broker did not
// confirm the message, so the caller must not report it as taken. The
// message may or may not be in the queue (a confirm can be lost after the
// broker took it); callers say "try again", never "done".
var ErrNotConfirmed = errors.New("message not confirmed by rabbitmq")

var (
	ErrNotConnected   = fmt.Errorf("%w: no connection to rabbitmq", ErrNotConfirmed)
	ErrBlocked        = fmt.Errorf("%w: rabbitmq is blocking publishers (memory or disk alarm)", ErrNotConfirmed)
	ErrNacked         = fmt.Errorf("%w: rabbitmq refused the message (queue full or broker error)", ErrNotConfirmed)
	ErrReturned       = fmt.Errorf("%w: no queue is bound for the message", ErrNotConfirmed)
	ErrConfirmLost    = fmt.Errorf("%w: the channel closed before the confirm arrived", ErrNotConfirmed)
	ErrConfirmTimeout = fmt.Errorf("%w: no confirm before the deadline", ErrNotConfirmed)
)

// Publisher publishes persistent, mandatory messages on a confirm-mode
// channel and tells each caller whether the broker confirmed its message.
//
// Confirms and returns are read by one dispatcher goroutine. RabbitMQ sends
// basic.return before the basic.ack of an unroutable mandatory message, and
// the client library hands the return to the (unbuffered) returns channel
// before it processes the ack, so by the time the dispatcher reads an ack it
// has already recorded any return for that message: no race between the two.
// Both channels are always drained, as amqp091-go requires.
type Publisher struct {
	link *Link
	log  *slog.Logger
	user string // every message's user-id: the link's login

	mu      sync.Mutex // serialises publishing (tag order) and guards ch and pending
	ch      *amqp.Channel
	conn    *amqp.Connection // the connection ch belongs to
	pending map[uint64]*waiter
	changed chan struct{} // closed and replaced whenever ch changes
}

type waiter struct {
	messageID string
	done      chan error // buffered: the dispatcher never blocks on a caller who gave up
}

// NewPublisher returns a Publisher on link; Run starts it.
func NewPublisher(link *Link, log *slog.Logger) *Publisher {
	return &Publisher{link: link, log: log, user: link.User(), pending: map[uint64]*waiter{}, changed: make(chan struct{})}
}

// Ready reports whether a confirm-mode channel is up.
func (p *Publisher) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ch != nil && !p.ch.IsClosed() && p.link.current(p.conn)
}

// Run keeps a confirm-mode channel open until ctx is done.
func (p *Publisher) Run(ctx context.Context) error {
	for {
		ch, conn, err := p.link.channel(ctx)
		if err != nil {
			return nil // ctx done or link closed
		}
		if err := ch.Confirm(false); err != nil {
			p.log.Warn("could not put channel in confirm mode", "err", err)
			_ = ch.Close()
			if !sleep(ctx, backoffStep) {
				return nil
			}
			continue
		}
		confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1024))
		returns := ch.NotifyReturn(make(chan amqp.Return))
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		p.setChannel(ch, conn)
		p.dispatch(ctx, confirms, returns)
		p.setChannel(nil, nil)
		_ = ch.Close()
		if ctx.Err() != nil {
			return nil
		}
		if refused(closed) && !p.refusedPause(ctx) {
			return nil
		}
	}
}

// refusedBackoff is how long a publisher whose channel the broker closed
// for a publish it may not make waits before opening another: reopening
// at once would let every refused message cost the broker a channel.
const refusedBackoff = 30 * time.Second

// refused reports whether the channel closed because the broker refused
// access (a publish to an exchange this user may not write).
func refused(closed <-chan *amqp.Error) bool {
	select {
	case e := <-closed:
		return e != nil && e.Code == amqp.AccessRefused
	case <-time.After(100 * time.Millisecond):
		return false
	}
}

// refusedPause logs the refusal and waits refusedBackoff; false if ctx ended.
func (p *Publisher) refusedPause(ctx context.Context) bool {
	p.log.Warn("RabbitMQ refused a publish of user "+p.user+" (no write permission): publishing again in "+refusedBackoff.String()+
		"; grant it (cafe setup --rabbitmq, or `task setup`)", "user", p.user)
	return sleep(ctx, refusedBackoff)
}

// stuckAfter is how long a channel may nack every publish before the
// publisher gives it up for a new one. RabbitMQ 3.10 can leave a channel
// that published to a quorum queue while its leader was lost (a cluster
// node killed) nacking every later publish to that queue, though the queue
// has a new leader and a new channel publishes fine (found by
// TestClusterLinkFailsOverWhenTheLeaderIsKilled). A queue that is merely
// full still acks now and then, as its consumers make room.
const stuckAfter = 2 * time.Second

// dispatch resolves waiters until the channel closes or ctx is done, or
// the channel has nacked everything for stuckAfter.
func (p *Publisher) dispatch(ctx context.Context, confirms <-chan amqp.Confirmation, returns <-chan amqp.Return) {
	returned := map[string]string{} // message id → reply text, until its confirm arrives
	lastAck := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			returned[r.MessageId] = r.ReplyText
		case c, ok := <-confirms:
			if !ok {
				return
			}
			p.mu.Lock()
			w := p.pending[c.DeliveryTag]
			delete(p.pending, c.DeliveryTag)
			p.mu.Unlock()
			if w == nil {
				continue
			}
			var err error
			if text, wasReturned := returned[w.messageID]; wasReturned {
				delete(returned, w.messageID)
				err = fmt.Errorf("%w (%s)", ErrReturned, text)
			} else if !c.Ack {
				err = ErrNacked
			}
			w.done <- err
			if c.Ack {
				lastAck = time.Now()
			} else if time.Since(lastAck) >= stuckAfter {
				p.log.Warn("every publish on this channel nacked for "+stuckAfter.String()+"; opening a new channel", "user", p.user)
				return
			}
		}
	}
}

func (p *Publisher) setChannel(ch *amqp.Channel, conn *amqp.Connection) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ch, p.conn = ch, conn
	close(p.changed)
	p.changed = make(chan struct{})
	if ch != nil {
		return
	}
	for tag, w := range p.pending {
		w.done <- ErrConfirmLost
		delete(p.pending, tag)
	}
}

// WaitReady waits until a channel is up or ctx is done.
func (p *Publisher) WaitReady(ctx context.Context) error {
	for {
		if p.Ready() {
			return nil
		}
		p.mu.Lock()
		changed := p.changed
		p.mu.Unlock()
		// The link may have moved to a new connection before this publisher
		// noticed that its channel died; poll briefly as well as waiting.
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// Publish sends msg to exchange with routing key and waits for the broker's
// confirm until ctx is done. msg.MessageId must be set (returns are matched
// by it); the message is published persistent and mandatory, with the
// link's user as its user-id (whatever msg says: a republished message is
// vouched for by whoever republishes it), which RabbitMQ refuses unless it
// is the publisher's login, so consumers can trust it (see
// identity.CommandPublishers). A nil error means RabbitMQ has taken the
// message durably; any error wraps ErrNotConfirmed.
func (p *Publisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	if msg.MessageId == "" {
		return fmt.Errorf("%w: message has no id", ErrNotConfirmed)
	}
	if p.link.Blocked() {
		return ErrBlocked
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfirmTimeout, err)
	}
	msg.DeliveryMode = amqp.Persistent
	msg.UserId = p.user
	w := &waiter{messageID: msg.MessageId, done: make(chan error, 1)}

	p.mu.Lock()
	ch := p.ch
	if ch == nil {
		p.mu.Unlock()
		return ErrNotConnected
	}
	tag := ch.GetNextPublishSeqNo()
	p.pending[tag] = w
	if err := ch.Publish(exchange, key, true, false, msg); err != nil {
		delete(p.pending, tag)
		p.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	p.mu.Unlock()

	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		// The waiter stays pending: the dispatcher removes it when the
		// confirm (or the channel's end) comes.
		return fmt.Errorf("%w: %w", ErrConfirmTimeout, ctx.Err())
	}
}

// Post sends msg to exchange with routing key and does not wait: fire and
// forget, for messages whose loss costs only history (contracts' events).
// It is persistent but not mandatory, and its confirm, if the channel is
// in confirm mode, is ignored. The error says only that there was no
// channel to send it on. Give Post a Publisher of its own: a message the
// broker refuses (no permission) closes the channel it was sent on.
func (p *Publisher) Post(exchange, key string, msg amqp.Publishing) error {
	if p.link.Blocked() {
		return ErrBlocked
	}
	msg.DeliveryMode = amqp.Persistent
	msg.UserId = p.user
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == nil {
		return ErrNotConnected
	}
	if err := p.ch.Publish(exchange, key, false, false, msg); err != nil {
		return fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	return nil
}
