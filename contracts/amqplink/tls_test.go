package amqplink_test

import (
	"strings"
	"testing"
	"time"

	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/linktls"
)

func tlsLink(t *testing.T, files linktls.Files, logs *brokertest.Logs) (*amqplink.Link, *amqplink.Publisher) {
	t.Helper()
	top := brokertest.Topology(t)
	link, err := amqplink.New(amqplink.Config{URL: brokertest.AMQPTLSURLAs(identity.Admin), Topology: top, Name: t.Name(),
		MaxBackoff: 200 * time.Millisecond, TLS: files}, logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	pub := amqplink.NewPublisher(link, quiet())
	brokertest.Start(t, nil, link.Run, pub.Run)
	return link, pub
}

func TestTLSPublishWithLocalCA(t *testing.T) {
	for name, files := range map[string]linktls.Files{
		"CA only":            {CA: brokertest.CAFile()},
		"CA and client cert": {CA: brokertest.CAFile(), Cert: brokertest.TLSFile("client.pem"), Key: brokertest.TLSFile("client-key.pem")},
	} {
		t.Run(name, func(t *testing.T) {
			var logs brokertest.Logs
			link, pub := tlsLink(t, files, &logs)
			waitReady(t, pub)
			if err := publish(t, pub, link.Topology(), msg(`{"over":"tls"}`)); err != nil {
				t.Fatalf("publish over TLS: %v", err)
			}
			if n := brokertest.QueueDepth(t, link.Topology().CommandsQueue()); n != 1 {
				t.Fatalf("commands queue holds %d, want the 1 published over TLS", n)
			}
		})
	}
}

func TestTLSWrongCALogsCauseOnce(t *testing.T) {
	var logs brokertest.Logs
	link, _ := tlsLink(t, linktls.Files{CA: brokertest.OtherCA(t)}, &logs)
	brokertest.LoggedOnce(t, &logs, "unknown_authority", "CAFE_AMQP_CA_FILE")
	if n := len(logs.With("msg", "rabbitmq unreachable; retrying in the background")); n != 0 {
		t.Errorf("the generic unreachable warning was logged %d times besides the cause", n)
	}
	if link.Ready() {
		t.Fatal("connected although the broker's CA is not trusted")
	}
}

func TestTLSSettingsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  amqplink.Config
		want string
	}{
		{"CA file with a plain URL", amqplink.Config{URL: "amqp://127.0.0.1:5672/", TLS: linktls.Files{CA: brokertest.CAFile()}}, "CAFE_AMQP_URL"},
		{"CA file not PEM", amqplink.Config{URL: "amqps://127.0.0.1:5671/", TLS: linktls.Files{CA: brokertest.TLSFile("client-key.pem")}}, "CAFE_AMQP_CA_FILE"},
		{"key without certificate", amqplink.Config{URL: "amqps://127.0.0.1:5671/", TLS: linktls.Files{Key: brokertest.TLSFile("client-key.pem")}}, "CAFE_AMQP_CERT_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Topology = brokertest.Topology(t)
			_, err := amqplink.New(tc.cfg, quiet())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestDialUsesTLSFiles(t *testing.T) {
	conn, err := amqplink.Dial(amqplink.Config{URL: brokertest.AMQPTLSURLAs(identity.Admin), TLS: linktls.Files{CA: brokertest.CAFile()}})
	if err != nil {
		t.Fatalf("dial over TLS with the local CA: %v", err)
	}
	_ = conn.Close()
	_, err = amqplink.Dial(amqplink.Config{URL: brokertest.AMQPTLSURLAs(identity.Admin), TLS: linktls.Files{CA: brokertest.OtherCA(t)}})
	if c, ok := linktls.Explain(err, amqplink.SettingsTLS); !ok || c.Kind != "unknown_authority" {
		t.Fatalf("dial with another CA: %v (cause %+v), want unknown authority", err, c)
	}
}

// An amqps:// URL that names the plain port: RabbitMQ answers the TLS
// hello with its AMQP header, which the link explains as not TLS.
func TestTLSToPlainPortIsExplained(t *testing.T) {
	var logs brokertest.Logs
	top := brokertest.Topology(t)
	link, err := amqplink.New(amqplink.Config{URL: strings.Replace(brokertest.AMQPTLSURLAs(identity.Admin), ":5671", ":5672", 1),
		Topology: top, Name: t.Name(), MaxBackoff: 200 * time.Millisecond, TLS: linktls.Files{CA: brokertest.CAFile()}}, logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Start(t, nil, link.Run)
	brokertest.LoggedOnce(t, &logs, "not_tls", "TLS port")
}
