package mqttlink_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"cafe/contracts/brokertest"
)

// scratchTLSBroker runs a Mosquitto of the test's own on a free local port:
// TLS with the local CA's broker certificate, anonymous clients allowed, and
// a client certificate required. It returns its ssl:// URL. The shared
// broker's TLS listener asks for no client certificate, so this is where a
// broker that refuses a client without one is met.
func scratchTLSBroker(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		t.Skip("no mosquitto binary to run a scratch broker with (install the mosquitto package)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	conf := filepath.Join(t.TempDir(), "scratch.conf")
	text := fmt.Sprintf("user root\nlistener %d 127.0.0.1\nallow_anonymous true\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\ntls_version tlsv1.2\n",
		port, brokertest.CAFile(), brokertest.TLSFile("mqtt-server.pem"), brokertest.TLSFile("mqtt-server-key.pem"))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	brokertest.Eventually(t, 5*time.Second, "the scratch mosquitto never listened on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return "ssl://" + addr
}
