package scale_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/scale"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
)

func settings() scale.Settings {
	return scale.Settings{Min: 1, Max: 3, TargetDrain: time.Second, Quiet: time.Second, Interval: time.Second,
		Role: scale.RoleBarista, Binary: baristaBin, ManagementURL: "off"}
}

func TestBadSettingsAreRefusedSayingWhich(t *testing.T) {
	brokers := cli.BrokersOf(brokertest.AMQPBase(), brokertest.MQTTBase(), contracts.DefaultTopology())
	cases := []struct {
		name   string
		change func(*scale.Settings)
		want   string
	}{
		{"min above max", func(s *scale.Settings) { s.Min, s.Max = 5, 2 }, "--min 5 is above --max 2"},
		{"negative min", func(s *scale.Settings) { s.Min = -1 }, "--min -1"},
		{"zero max", func(s *scale.Settings) { s.Min, s.Max = 0, 0 }, "--max 0"},
		{"zero target", func(s *scale.Settings) { s.TargetDrain = 0 }, "--target-drain 0s"},
		{"negative quiet", func(s *scale.Settings) { s.Quiet = -time.Second }, "--quiet -1s"},
		{"zero interval", func(s *scale.Settings) { s.Interval = 0 }, "--interval 0s"},
		{"unknown role", func(s *scale.Settings) { s.Role = "cashier" }, `--role "cashier"`},
		{"management URL not http", func(s *scale.Settings) { s.ManagementURL = "ftp://x" }, "management URL"},
		{"missing binary", func(s *scale.Settings) { s.Binary = ""; s.Role = scale.RoleCaller }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := settings()
			c.change(&s)
			_, err := s.Build(brokers, prometheus.NewRegistry(), quiet())
			if c.want == "" { // the caller binary is not built here: found on $PATH or a clear error
				if err != nil && !strings.Contains(err.Error(), "task build") {
					t.Errorf("error %q does not say how to get the binary", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestBrokerDownIsAClearError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a port nothing answers AMQP on
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	brokers := cli.BrokersOf("amqp://cafe-ops:x@"+addr+"/", brokertest.MQTTBase(), contracts.DefaultTopology())
	l, err := settings().Build(brokers, prometheus.NewRegistry(), quiet())
	if err != nil {
		t.Fatal(err)
	}
	l.CheckTimeout = time.Second
	began := time.Now()
	err = l.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot read the queue from RabbitMQ") || !strings.Contains(err.Error(), "task setup") {
		t.Fatalf("error %v, want one saying RabbitMQ cannot be reached and how to start it", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("took %v to give up, want about the 1s check", d)
	}
}

// TestManagementReadsTheRealQueue reads a test queue's figures from the
// local management API, as cafe-ops (tagged monitoring by `cafe setup`).
// deploy/brokers.sh enables the API, so a missing one fails the test, as
// a missing broker does.
func TestManagementReadsTheRealQueue(t *testing.T) {
	base := "http://127.0.0.1:15672/"
	res, err := http.Get(base + "api/overview")
	if err != nil {
		t.Fatalf("RabbitMQ's management API does not answer (%v): run bash deploy/brokers.sh (it enables rabbitmq_management)", err)
	}
	res.Body.Close()
	top := brokertest.Topology(t)
	r := &rig{t: t, top: top, pub: brokertest.Publisher(t, top, identity.Cashier), device: "d-1"}
	r.send(1, 3)
	u, _ := url.Parse(base)
	u.User = url.UserPassword(string(identity.Ops), brokertest.Key().ServicePassword(identity.Ops))
	m, err := scale.NewManagement(u.String(), "/")
	if err != nil {
		t.Fatal(err)
	}
	var o scale.Observation
	brokertest.Eventually(t, 10*time.Second, "management API never showed 3 ready", func() bool {
		o, err = m.Observe(context.Background(), top.CommandsQueue())
		return err == nil && o.Ready == 3
	})
	if !o.RatesKnown || o.Unacked != 0 {
		t.Errorf("observation %+v: want rates known, nothing unacked", o)
	}
	bad, _ := scale.NewManagement("http://nobody:wrong@127.0.0.1:15672/", "/")
	if _, err := bad.Observe(context.Background(), top.CommandsQueue()); !errors.Is(err, scale.ErrUnauthorized) {
		t.Errorf("wrong password: error %v, want ErrUnauthorized", err)
	}
}

// TestManagementRefusesHostileAnswers: what a broken or hostile API
// answers is an error, never a made-up observation.
func TestManagementRefusesHostileAnswers(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
	}{
		{"not JSON", 200, "<html>"},
		{"wrong types", 200, `{"messages_ready":"many"}`},
		{"truncated", 200, `{"messages_ready":1`},
		{"oversized", 200, `{"x":"` + strings.Repeat("a", 2<<20) + `"}`},
		{"not found", 404, `{"error":"Object Not Found"}`},
		{"server error", 500, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.EscapedPath() != "/api/queues/%2F/p.commands" {
					t.Errorf("asked for %s", r.URL.EscapedPath())
				}
				w.WriteHeader(c.status)
				fmt.Fprint(w, c.body)
			}))
			defer srv.Close()
			m, err := scale.NewManagement(srv.URL, "/")
			if err != nil {
				t.Fatal(err)
			}
			if o, err := m.Observe(context.Background(), "p.commands"); err == nil {
				t.Errorf("got %+v, want an error", o)
			}
		})
	}
	good := `{"messages_ready":40,"messages_unacknowledged":10,"message_stats":{"publish_details":{"rate":20},"ack_details":{"rate":30}}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, good) }))
	defer srv.Close()
	m, _ := scale.NewManagement(srv.URL, "/")
	o, err := m.Observe(context.Background(), "p.commands")
	want := scale.Observation{Ready: 40, Unacked: 10, RateIn: 20, RateOut: 30, RatesKnown: true, OldestAge: 2 * time.Second}
	if err != nil || o != want {
		got, _ := json.Marshal(o)
		t.Errorf("got %s (%v), want %+v", got, err, want)
	}
}
