package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// The MQTT attacks. Subscriptions are judged at the end (the intruders
// listen throughout); logins and take-overs at once; forged publications
// by their markers.
func (iso *isolation) mqtt(t *testing.T) {
	iso.connects(t)
	iso.takeovers(t)
	iso.publishes(t)
	iso.forgedReplyRace(t)
	iso.queuedSession(t)
}

// refused makes one connection attempt as url's login with clientID: the
// attack succeeds if the broker lets it in.
func (iso *isolation) refused(t *testing.T, attack, url, clientID string) {
	t.Helper()
	err := brokertest.ConnectOnce(url, clientID)
	iso.tally.record(t, "MQTT", attack, err == nil, "let in as client id "+clientID)
}

func (iso *isolation) connects(t *testing.T) {
	t.Helper()
	a, b := iso.p.client.id, iso.b.app.client.id
	for _, id := range []string{brokertest.ID(t, "anon"), a, iso.a.devices[0]} {
		iso.refused(t, "connect anonymously", brokertest.MQTTBase(), id)
	}
	for _, w := range [][2]string{{a, "wrong"}, {a, iso.bApp().password}, {iso.a.devices[0], iso.evil.password},
		{"cafe-barista", "wrong"}, {"cafe-admin", iso.evil.password}, {iso.evil.id, ""}, {"guest", "guest"}} {
		iso.refused(t, "log in with a wrong password", brokertest.MQTTURLOf(w[0], w[1]), w[0])
	}
	for _, id := range []string{"+", "#", b + "/+", "cafe/sync/#", b + "/#"} {
		iso.refused(t, "log in as B with a client id holding + # /", brokertest.MQTTURLOf(b, iso.bApp().password), id)
	}
}

// bApp is B's app's connection, the first intruder.
func (iso *isolation) bApp() *intruder { return iso.listeners[0] }

// attackers are the identities that attack by publishing: B's app, B's
// device, and the wildcard logins the broker let in.
func (iso *isolation) attackers() []*intruder {
	return append([]*intruder{iso.bApp(), iso.evil}, iso.wild...)
}

// takeovers: every attacker tries the client ids of the live barista, a
// live device of A and A's app (connected); none may get in, so none is
// disconnected (the traffic after the attacks shows it).
func (iso *isolation) takeovers(t *testing.T) {
	t.Helper()
	route := iso.p.baristas[0].route
	victims := []string{"cafe-barista-" + route, "cafe-barista-" + route + "-presence", iso.a.devices[0], iso.p.client.id}
	for _, in := range iso.attackers() {
		for _, v := range victims {
			iso.refused(t, "take over another identity's client id (barista, device, app)", brokertest.MQTTURLOf(in.id, in.password), v)
		}
	}
}

// publishes: every attacker publishes, once each, a command to A's
// device, a reply and a retained offline presence for it, a result for
// A, messages on the pipeline's internal topics, and a login of its own
// over $CONTROL.
func (iso *isolation) publishes(t *testing.T) {
	t.Helper()
	a1, route := iso.a.devices[0], iso.p.baristas[0].route
	for _, in := range iso.attackers() {
		for _, f := range []struct {
			attack   string
			topic    func(m string) string
			payload  func(m string) string
			retained bool
		}{
			{"publish a command to another device", func(m string) string { return contracts.CommandTopic(a1, route, m) },
				func(m string) string { return `{"jsonrpc":"2.0","method":"echo","id":"` + m + `"}` }, false},
			{"publish a reply for another device", func(m string) string { return "devices/" + a1 + "/replies/" + route + "/" + m },
				func(m string) string { return `{"jsonrpc":"2.0","id":"` + m + `","result":"forged"}` }, false},
			{"publish a retained offline presence for another device", func(string) string { return contracts.PresenceTopic(a1) },
				func(m string) string { return `{"online":false,"by":"` + m + `"}` }, true},
			{"publish a result for another app", func(string) string { return contracts.ResultsTopic(iso.p.client.id) },
				func(m string) string { return `{"jsonrpc":"2.0","id":"` + m + `","result":"forged"}` }, false},
			{"publish on the pipeline's internal topics", func(string) string { return "cafe/sync/cafe-barista-" + route },
				func(m string) string { return m }, false},
			{"publish on the pipeline's internal topics", func(m string) string { return "bench/" + m }, func(m string) string { return m }, false},
		} {
			m := iso.marker("MQTT", f.attack)
			in.publish(t, f.topic(m), f.payload(m), f.retained)
		}
		iso.control(t, in)
	}
}

// publish sends one message at QoS 1; the broker acknowledges even what it
// drops.
func (in *intruder) publish(t testing.TB, topic, payload string, retained bool) {
	t.Helper()
	if tok := in.c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("%s publishing to %s: %v", in.name, topic, tok.Error())
	}
}

// control: the intruder asks the dynamic security plugin for a login of
// its own; the attack succeeds if that login then gets in.
func (iso *isolation) control(t *testing.T, in *intruder) {
	t.Helper()
	name := brokertest.ID(t, "made")
	brokertest.DeleteLoginsAtEnd(t, name)
	in.publish(t, "$CONTROL/dynamic-security/v1", `{"commands":[{"command":"createClient","username":"`+name+`","password":"`+name+`"}]}`, false)
	made := brokertest.LoginExists(t, name) // answered after the intruder's publish was handled
	err := brokertest.ConnectOnce(brokertest.MQTTURLOf(name, name), name)
	iso.tally.record(t, "MQTT", "create a login over $CONTROL/dynamic-security", made || err == nil, "the plugin made the login "+name)
}

// forgedReplyRace: A commands its device to sleep, and while the device
// sleeps every attacker, told the command's exact topic (as if it could
// see it), publishes a reply with the same id on its reply topic. A must
// get the device's own reply.
func (iso *isolation) forgedReplyRace(t *testing.T) {
	t.Helper()
	commands := iso.oracles[0]
	for i := range 3 {
		id := fmt.Sprintf("race-%d", i)
		iso.a.submit(t, iso.a.devices[1], `"`+id+`"`, "sleep", `{"ms":700}`)
		var topic string
		brokertest.Eventually(t, resultWait, "the command "+id+" never reached the device", func() bool {
			for _, c := range commands.messages() {
				if strings.Contains(string(c.payload), id) {
					topic = c.topic
				}
			}
			return topic != ""
		})
		reply, _ := contracts.ReplyTopicFor(topic)
		for _, in := range iso.attackers() {
			m := iso.marker("MQTT", "race a device with a forged reply to a live command")
			in.publish(t, reply, `{"jsonrpc":"2.0","id":"`+id+`","result":"`+m+`"}`, false)
		}
		iso.a.app.wait(t, `"`+id+`"`, resultWait)
	}
}

// queuedSession: A's app goes away keeping its session, results queue
// for it, every attacker tries to connect with A's client id; A comes
// back and gets them all.
func (iso *isolation) queuedSession(t *testing.T) {
	t.Helper()
	iso.offline()
	results := iso.oracles[3]
	var ids []string
	for i := range 3 {
		id := fmt.Sprintf(`"A-away-%d"`, i)
		ids = append(ids, id)
		iso.a.submit(t, iso.a.devices[0], id, "echo", `["away"]`)
	}
	for _, id := range ids {
		brokertest.Eventually(t, resultWait, "the result "+id+" was never sent to A's session", func() bool {
			for _, r := range results.messages() {
				if strings.Contains(string(r.payload), id) {
					return true
				}
			}
			return false
		})
	}
	for _, in := range iso.attackers() {
		iso.refused(t, "take over an offline app's queued persistent session", brokertest.MQTTURLOf(in.id, in.password), iso.p.client.id)
	}
	iso.refused(t, "take over an offline app's queued persistent session", brokertest.MQTTBase(), iso.p.client.id)
	iso.offline = iso.a.online(iso.p.t) // the whole test's: it outlives this subtest
	for _, id := range ids {
		iso.a.app.wait(t, id, resultWait)
	}
}
