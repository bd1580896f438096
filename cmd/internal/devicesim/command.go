package devicesim

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"cafe/contracts"
)

// delivery is one message on a device's commands topic, with everything
// decided about it in the delivery goroutine (so that it depends only on
// the order of arrival, and a seed reproduces it).
type delivery struct {
	replyTopic string // "" when the topic has no level after commands/
	key        string // repeat key, the topic's last level; "" for none
	body       []byte // a copy of the payload; nil when oversized
	oversized  bool
	inject     bool          // the error rate picked this one to fail
	delay      time.Duration // latency plus jitter before the reply
}

// deliver takes a message from the link. It runs in the link's reading
// goroutine, so it only classifies the message, registers its key and
// hands the work to a goroutine.
func (d *device) deliver(s *session, topic string, payload []byte) {
	d.stats.received.Add(1)
	c := delivery{oversized: len(payload) > MaxCommandBytes, key: repeatKey(topic)}
	if !c.oversized {
		c.body = bytes.Clone(payload)
	}
	if rt, ok := contracts.ReplyTopicFor(topic); ok {
		c.replyTopic = rt
	}
	if _, _, _, ok := contracts.ParseCommandTopic(topic); !ok {
		d.stats.oddTopics.Add(1)
		d.fleet.log.Debug("command on an unusual topic; handled anyway", "device_id", d.id, "topic", clip(topic))
	}

	d.mu.Lock()
	if !s.track() {
		d.mu.Unlock()
		d.stats.dropped.Add(1)
		return
	}
	cfg := d.fleet.cfg
	c.inject = d.rng.Float64() < cfg.ErrorRate // drawn for every delivery, so the sequence depends on nothing else
	c.delay = cfg.Latency
	if cfg.Jitter > 0 {
		c.delay += time.Duration(d.rng.Int64N(int64(cfg.Jitter) + 1))
	}
	if c.key != "" {
		if e, seen := d.keys.get(c.key); seen {
			d.mu.Unlock()
			d.stats.duplicates.Add(1)
			go d.repeat(s, e, c)
			return
		}
	}
	e := newEntry(c.key)
	if c.key != "" {
		d.keys.add(e)
	}
	d.mu.Unlock()
	go d.execute(s, e, c)
}

// repeatKey is the last level of a command topic, or "" when the topic has
// no level after commands/ (or an empty last level).
func repeatKey(topic string) string {
	rest, ok := strings.CutPrefix(topic, contracts.LevelDevices+"/")
	if !ok {
		return ""
	}
	_, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	rest, ok = strings.CutPrefix(rest, contracts.LevelCommands+"/")
	if !ok {
		return ""
	}
	return rest[strings.LastIndexByte(rest, '/')+1:]
}

// execute runs the first delivery of a command, remembers its reply for
// repeats, and sends it.
func (d *device) execute(s *session, e *entry, c delivery) {
	defer s.wg.Done()
	o, id, busy := d.evaluate(c)
	if busy > 0 && !wait(s.ctx, busy) {
		d.mu.Lock()
		d.keys.forget(e) // never finished: a redelivery runs it afresh
		e.abandoned = true
		close(e.done)
		d.mu.Unlock()
		if id != nil && !o.silent {
			d.stats.abandoned.Add(1)
		}
		return
	}
	var reply []byte
	if id != nil && !o.silent {
		reply = response(id, o)
	}
	d.mu.Lock()
	e.reply, e.isError = reply, o.err != nil
	close(e.done)
	d.keys.account(e, len(e.key)+len(reply))
	d.mu.Unlock()
	d.send(s, c, reply, o.err != nil)
}

// evaluate validates the command, counts what it is and plans its outcome.
// id is the request's raw id, nil for a notification; for an invalid
// command it is null, since the request's id cannot be trusted.
func (d *device) evaluate(c delivery) (o outcome, id []byte, busy time.Duration) {
	if c.oversized {
		d.stats.invalid.Add(1)
		return outcome{err: contracts.NewError(contracts.CodeInvalidRequest, contracts.Detail{
			Reason: "command is larger than " + strconv.Itoa(MaxCommandBytes) + " bytes"})}, nullID, 0
	}
	req, err := contracts.ParseRequest(c.body)
	if err != nil {
		d.stats.invalid.Add(1)
		var ce *contracts.Error
		if !errors.As(err, &ce) {
			ce = contracts.NewError(contracts.CodeInvalidRequest, contracts.Detail{Reason: err.Error()})
		}
		return outcome{err: ce}, nullID, 0
	}
	if c.inject && !req.Notification() {
		d.stats.failuresInjected.Add(1)
		return failure(params(req)), req.ID, 0
	}
	d.stats.executed.Add(1)
	if req.Notification() {
		d.stats.notifications.Add(1)
	}
	o, busy = plan(method(req), params(req))
	return o, req.ID, busy
}

// repeat answers a repeated key from memory, waiting for the first
// execution if it is still running.
func (d *device) repeat(s *session, e *entry, c delivery) {
	defer s.wg.Done()
	select {
	case <-e.done:
	case <-s.ctx.Done():
		select {
		case <-e.done: // finished just in time
		default:
			d.stats.abandoned.Add(1)
			return
		}
	}
	if e.abandoned { // cut short by going offline, as this session is
		d.stats.abandoned.Add(1)
		return
	}
	d.send(s, c, e.reply, e.isError)
}

// send publishes a reply (nil: nothing to send) after the configured delay.
func (d *device) send(s *session, c delivery, reply []byte, isError bool) {
	switch {
	case reply == nil:
		return
	case c.replyTopic == "":
		d.stats.noReplyTopic.Add(1)
		return
	case !wait(s.ctx, c.delay):
		d.stats.abandoned.Add(1)
		return
	}
	if err := s.link.publish(s.ctx, c.replyTopic, reply, false); err != nil {
		d.stats.replyFailures.Add(1)
		d.fleet.log.Debug("reply not acknowledged", "device_id", d.id, "topic", clip(c.replyTopic), "err", err)
		return
	}
	d.stats.repliesSent.Add(1)
	if isError {
		d.stats.errorsReplied.Add(1)
	}
}

// wait sleeps for d unless ctx ends first; it reports whether it slept.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// clip shortens hostile topics for logs.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
