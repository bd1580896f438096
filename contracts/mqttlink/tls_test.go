package mqttlink_test

import (
	"strings"
	"testing"
	"time"

	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/linktls"
	"cafe/contracts/mqttlink"
)

// tlsLink runs a link to Mosquitto's TLS listener, logging to logs.
func tlsLink(t *testing.T, files linktls.Files, logs *brokertest.Logs) *mqttlink.Link {
	t.Helper()
	l, err := mqttlink.New(mqttlink.Config{URL: brokertest.MQTTTLSURLAs(identity.Admin), ClientID: brokertest.ID(t, "tls"),
		CleanSession: true, MaxBackoff: 200 * time.Millisecond, TLS: files}, logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Run(t, l)
	return l
}

func TestTLSRoundTripWithLocalCA(t *testing.T) {
	for name, files := range map[string]linktls.Files{
		"CA only":            {CA: brokertest.CAFile()},
		"CA and client cert": {CA: brokertest.CAFile(), Cert: brokertest.TLSFile("client.pem"), Key: brokertest.TLSFile("client-key.pem")},
	} {
		t.Run(name, func(t *testing.T) {
			var logs brokertest.Logs
			l := tlsLink(t, files, &logs)
			var got inbox
			topic := "test/" + brokertest.ID(t, "tls")
			if err := l.Subscribe(t.Context(), topic, 1, got.handle); err != nil {
				t.Fatal(err)
			}
			connected(t, l)
			send(t, l, topic, "over tls")
			brokertest.Eventually(t, 5*time.Second, "message over TLS", func() bool { return got.has(topic + " over tls") })
		})
	}
}

func TestTLSWrongCALogsCauseOnce(t *testing.T) {
	var logs brokertest.Logs
	l := tlsLink(t, linktls.Files{CA: brokertest.OtherCA(t)}, &logs)
	brokertest.LoggedOnce(t, &logs, "unknown_authority", "CAFE_MQTT_CA_FILE")
	if l.Connected() {
		t.Fatal("connected although the broker's CA is not trusted")
	}
}

func TestTLSSettingsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  mqttlink.Config
		want string
	}{
		{"CA file with a plain URL", mqttlink.Config{URL: "tcp://127.0.0.1:1883", TLS: linktls.Files{CA: brokertest.CAFile()}}, "CAFE_MQTT_URL"},
		{"unreadable CA file", mqttlink.Config{URL: "ssl://127.0.0.1:8883", TLS: linktls.Files{CA: "/nonexistent.pem"}}, "CAFE_MQTT_CA_FILE"},
		{"certificate without key", mqttlink.Config{URL: "ssl://127.0.0.1:8883", TLS: linktls.Files{Cert: brokertest.TLSFile("client.pem")}}, "CAFE_MQTT_KEY_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.ClientID = "x"
			_, err := mqttlink.New(tc.cfg, brokertest.Quiet())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestTLSClientCertificateRequiredByBroker(t *testing.T) {
	url := scratchTLSBroker(t)
	link := func(files linktls.Files, logs *brokertest.Logs) *mqttlink.Link {
		l, err := mqttlink.New(mqttlink.Config{URL: url, ClientID: brokertest.ID(t, "cert"), CleanSession: true,
			MaxBackoff: 200 * time.Millisecond, TLS: files}, logs.Logger())
		if err != nil {
			t.Fatal(err)
		}
		brokertest.Run(t, l)
		return l
	}
	t.Run("without one the broker's refusal is explained", func(t *testing.T) {
		var logs brokertest.Logs
		l := link(linktls.Files{CA: brokertest.CAFile()}, &logs)
		brokertest.LoggedOnce(t, &logs, "refused_by_broker", "CAFE_MQTT_CERT_FILE")
		if l.Connected() {
			t.Fatal("connected without the client certificate the broker requires")
		}
	})
	t.Run("with one it connects", func(t *testing.T) {
		var logs brokertest.Logs
		connected(t, link(linktls.Files{CA: brokertest.CAFile(), Cert: brokertest.TLSFile("client.pem"), Key: brokertest.TLSFile("client-key.pem")}, &logs))
	})
}
