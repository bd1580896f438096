package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"cafe/contracts/mqttlink"
	"cafe/contracts/mqttlink/dynsec"
)

// A test's devices and apps log in to Mosquitto as themselves, like real
// ones: Device and App make a login of the test's own through the broker's
// dynamic security plugin (as cafe-admin), bound to the id as client id,
// and delete it when the test ends (which disconnects a client still
// using it).

// dynsecDo runs one plugin command as cafe-admin, on a link of its own
// (closed again, so nothing outlives the test: goleak checks).
func dynsecDo(cmd dynsec.Command) error {
	link, err := mqttlink.New(mqttlink.Config{URL: MQTTURL(), ClientID: "tests-dynsec-" + randomHex(), CleanSession: true}, Quiet())
	if err != nil {
		return err
	}
	stop := link.Background()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := link.WaitConnected(ctx); err != nil {
		return err
	}
	c, err := dynsec.NewControl(ctx, link)
	if err != nil {
		return err
	}
	_, err = c.Do(ctx, cmd)
	return err
}

// Device makes a login for device id and returns its password.
func Device(t testing.TB, id string) string { return login(t, id, "device") }

// App makes a login for app id and returns its password.
func App(t testing.TB, id string) string { return login(t, id, "app") }

// Login makes a login with user name and client id id, with password, of
// kind (device, app), deleted when the test ends.
func Login(t testing.TB, id, password, kind string) {
	t.Helper()
	if err := dynsecDo(dynsec.Command{"command": "createClient", "username": id, "password": password, "clientid": id, "textname": kind}); err != nil {
		t.Fatalf("make a login for %s (as cafe-admin): %v", id, err)
	}
	t.Cleanup(func() {
		if err := dynsecDo(dynsec.Command{"command": "deleteClient", "username": id}); err != nil {
			t.Errorf("delete the login of %s: %v", id, err)
		}
	})
}

// DeleteLoginsAtEnd deletes the logins of ids (if they exist) when the
// test ends: for logins a process the test ran made (cafe up's reconciler).
func DeleteLoginsAtEnd(t testing.TB, ids ...string) {
	t.Helper()
	t.Cleanup(func() {
		for _, id := range ids {
			if err := dynsecDo(dynsec.Command{"command": "deleteClient", "username": id}); err != nil && !strings.Contains(err.Error(), "Client not found") {
				t.Errorf("delete the login of %s: %v", id, err)
			}
		}
	})
}

// LoginExists asks the plugin (as cafe-admin) whether a login named id
// exists. Its answer comes after everything the broker took before it, so a
// test need not sleep to know whether an earlier $CONTROL command took.
func LoginExists(t testing.TB, id string) bool {
	t.Helper()
	err := dynsecDo(dynsec.Command{"command": "getClient", "username": id})
	switch {
	case err == nil:
		return true
	case strings.Contains(err.Error(), "Client not found"):
		return false
	}
	t.Fatalf("ask the plugin for the login %s (as cafe-admin): %v", id, err)
	return false
}

func login(t testing.TB, id, kind string) string {
	t.Helper()
	var b [24]byte
	_, _ = rand.Read(b[:])
	pw := base64.RawURLEncoding.EncodeToString(b[:])
	Login(t, id, pw, kind)
	return pw
}

func randomHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
