package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
)

// The AMQP attacks: tenants' credentials and guest cannot log in; roles
// that may not publish commands or results are refused by RabbitMQ;
// what the administrator's login (which may publish anywhere) puts in
// without a cafe publisher's identity is dead-lettered, never run nor
// delivered; a deadline of a year is cut to the barista's maximum.
func (iso *isolation) amqp(t *testing.T) {
	iso.amqpLogins(t)
	before := brokertest.QueueDepth(t, iso.p.top.DeadQueue())
	distrusted := iso.forgedCommands(t) + iso.forgedResults(t)
	iso.cappedDeadlines(t)
	brokertest.Eventually(t, resultWait, fmt.Sprintf("the %d distrusted messages were not all dead-lettered", distrusted), func() bool {
		return brokertest.QueueDepth(t, iso.p.top.DeadQueue()) == before+distrusted
	})
}

// amqpURL is the test RabbitMQ with user's login.
func amqpURL(user, password string) string {
	u, err := url.Parse(brokertest.AMQPBase())
	if err != nil {
		panic(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// amqpLogins tries each login at once (RabbitMQ takes about 3s to refuse
// one).
func (iso *isolation) amqpLogins(t *testing.T) {
	t.Helper()
	a := iso.p.client
	var wg sync.WaitGroup
	for _, l := range [][2]string{{a.id, a.token}, {a.id, iso.a.app.session(t).Password}, {iso.evil.id, iso.evil.password},
		{iso.b.app.client.id, iso.bApp().password}, {"guest", "guest"}, {string(identity.Cashier), "wrong"}} {
		wg.Go(func() {
			conn, err := amqp.DialConfig(amqpURL(l[0], l[1]), amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
			if err == nil {
				conn.Close()
			}
			iso.tally.record(t, "AMQP", "log in with an app's or device's credentials, or guest", err == nil, "RabbitMQ let "+l[0]+" in")
		})
	}
	wg.Wait()
}

// publishOnce publishes m on exchange as s (the user-id property as m
// says) in confirm mode: nil if RabbitMQ took it, its refusal otherwise.
func publishOnce(s identity.Service, exchange, key string, m amqp.Publishing) error {
	conn, err := amqp.Dial(amqpURL(string(s), brokertest.Key().ServicePassword(s)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Confirm(false); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, m)
	if err != nil {
		return err
	}
	select {
	case e := <-closed:
		return e
	case <-conf.Done():
		if !conf.Acked() {
			return errors.New("nacked")
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// forged is one message an attacker puts straight into an exchange.
type forged struct {
	as     identity.Service
	userID string // the user-id property it claims ("" none)
	taken  bool   // RabbitMQ is expected to take it (then cafe must distrust it)
}

// forgedCommands publishes, as roles that may not and as the
// administrator, a command whose headers claim it is B's for A's device.
// It returns how many RabbitMQ took (each to be dead-lettered).
func (iso *isolation) forgedCommands(t *testing.T) int {
	t.Helper()
	return iso.forge(t, "publish a command with forged tenant and device headers", iso.p.top.CommandsExchange(), contracts.RoutingKeyCommand, []forged{
		{identity.Caller, "", false}, {identity.Ledger, "", false}, {identity.Barista, "", false},
		{identity.Admin, "", true}, {identity.Admin, string(identity.Admin), true}, {identity.Admin, string(identity.Cashier), false},
	}, func(m string) amqp.Publishing {
		meta := contracts.CommandMeta{ClientID: iso.b.app.client.id, DeviceID: iso.a.devices[0], MsgID: `"` + m + `"`, Deadline: time.Now().Add(time.Minute), AcceptedAt: time.Now()}
		return amqp.Publishing{Body: []byte(`{"jsonrpc":"2.0","method":"echo","id":"` + m + `"}`), Headers: meta.Headers()}
	})
}

// forgedResults publishes a result for A that no barista made. The
// cashier may write the results exchange (its "queued" status notices
// go there), so RabbitMQ takes its forgery; the caller trusts a result
// only from a barista and dead-letters it undelivered.
func (iso *isolation) forgedResults(t *testing.T) int {
	t.Helper()
	return iso.forge(t, "publish a result no barista made", iso.p.top.ResultsExchange(), contracts.RoutingKeyResult, []forged{
		{identity.Cashier, "", true}, {identity.Cashier, string(identity.Cashier), true}, {identity.Caller, "", false}, {identity.Ledger, "", false},
		{identity.Admin, "", true}, {identity.Admin, string(identity.Admin), true}, {identity.Admin, string(identity.Barista), false},
	}, func(m string) amqp.Publishing {
		meta := contracts.ResultMeta{ClientID: iso.p.client.id, DeviceID: iso.a.devices[0], MsgID: `"` + m + `"`, AcceptedAt: time.Now(), Outcome: contracts.OutcomeReply}
		return amqp.Publishing{Body: []byte(`{"jsonrpc":"2.0","id":"` + m + `","result":"forged"}`), Headers: meta.Headers()}
	})
}

// forge publishes one message per attacker, each with its marker; one
// RabbitMQ refuses is a failed attack at once, one it takes is judged by
// its marker (it must be seen nowhere) and counted for the dead letters.
func (iso *isolation) forge(t *testing.T, attack, exchange, key string, by []forged, msg func(marker string) amqp.Publishing) int {
	t.Helper()
	taken := 0
	for _, f := range by {
		who := fmt.Sprintf("%s as %s, user-id %q", attack, f.as, f.userID)
		m := iso.marker("AMQP", attack)
		p := msg(m)
		p.MessageId, p.UserId, p.DeliveryMode = contracts.NewCommandID(), f.userID, amqp.Persistent
		err := publishOnce(f.as, exchange, key, p)
		if (err == nil) != f.taken {
			t.Errorf("%s: RabbitMQ answered %v, want taken=%v", who, err, f.taken)
		}
		if err == nil {
			taken++
		}
	}
	return taken
}

// cappedDeadlines: commands for A in the cashier's own name (the one
// publisher a barista trusts) with a deadline a year away, for a device
// that takes longer than the barista's maximum: each must end as an
// error within that maximum, not hold a barista until the device is done.
func (iso *isolation) cappedDeadlines(t *testing.T) {
	t.Helper()
	const n = 4
	sent := time.Now()
	for i := range n {
		id := fmt.Sprintf(`"cap-%d"`, i)
		iso.a.expect(id)
		meta := contracts.CommandMeta{ClientID: iso.p.client.id, DeviceID: iso.a.devices[1], MsgID: id, Deadline: time.Now().Add(365 * 24 * time.Hour), AcceptedAt: time.Now()}
		m := amqp.Publishing{MessageId: contracts.NewCommandID(), UserId: string(identity.Cashier), DeliveryMode: amqp.Persistent,
			Body: []byte(`{"jsonrpc":"2.0","method":"sleep","params":{"ms":` + fmt.Sprint((3 * maxTimeout).Milliseconds()) + `},"id":` + id + `}`), Headers: meta.Headers()}
		if err := publishOnce(identity.Cashier, iso.p.top.CommandsExchange(), contracts.RoutingKeyCommand, m); err != nil {
			t.Fatalf("publish %s as the cashier: %v", id, err)
		}
	}
	for i := range n {
		id := fmt.Sprintf(`"cap-%d"`, i)
		r := iso.a.app.wait(t, id, resultWait)
		late := r.at.Sub(sent) > 2*maxTimeout
		iso.tally.record(t, "AMQP", "a deadline a year away holds a barista", r.resp.Error == nil || late,
			fmt.Sprintf("%s answered after %v: %s", id, r.at.Sub(sent).Round(time.Millisecond), r.raw))
	}
}
