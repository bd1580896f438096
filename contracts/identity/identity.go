// Package identity is who is who on cafe's brokers, and where every
// secret comes from.
//
// Every MQTT and AMQP client authenticates (no anonymous access anywhere):
//
//   - a device connects to MQTT as itself: user name and client id = its
//     device id, password = its secret (DeviceSecret);
//   - an app connects to MQTT with what POST /v1/sessions gives it: user
//     name and client id = its client id, password = AppPassword;
//   - each of cafe's services connects to both brokers as its role
//     (Service: cafe-cashier, cafe-barista, ...), password =
//     ServicePassword; several processes of one role share the identity,
//     each with a client id of its own.
//
// All of these secrets are derived, with HMAC-SHA256, from one auth key
// per installation (Key, kept in a file readable only by its owner) and
// from what the registry says (a device's id and generation, an app's id
// and token hash). The registry itself holds only hashes. So the broker's
// logins can be rebuilt from the registry and the key at any time, on
// any broker (a new edge, a broker that lost its state), and rotating a
// device is counting up its generation. Whoever holds the key can derive
// every secret: it is to be guarded like a CA's private key, and services
// in a deployment get only their own password (cafe credentials ROLE), not
// the key.
package identity

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"cafe/contracts"
)

// Service is one of cafe's own roles, as the brokers know it: its MQTT
// and AMQP user name.
type Service string

// cafe's services. Admin manages the brokers (topology, logins); Ops is the
// operator's tools (cafe dead, cafe bench, cafe status).
const (
	Cashier Service = "cafe-cashier"
	Barista Service = "cafe-barista"
	Caller  Service = "cafe-caller"
	Ledger  Service = "cafe-ledger"
	Ops     Service = "cafe-ops"
	Admin   Service = "cafe-admin"
	// Bridge is an edge broker's bridge logging in to the core broker
	// (deploy/README.md, "The MQTT tier"): MQTT only, and only the
	// bridged topics (deploy/mosquitto/cafe.acl).
	Bridge Service = "cafe-bridge"
)

// Services lists every service identity.
var Services = []Service{Cashier, Barista, Caller, Ledger, Ops, Admin, Bridge}

// Who may publish what on RabbitMQ. Every message cafe publishes carries
// its publisher's login as its AMQP user-id, and RabbitMQ refuses a
// user-id that is not the publisher's login, so a consumer can trust it: a
// barista takes a command only from a command publisher, and the caller
// delivers a result only from a result publisher (and a dead-letter notice
// only for a command from a command publisher). cafe-ops is both, since it
// replays dead letters. Anything else is dead-lettered unread: a message
// put in the queue by anyone else, whatever its headers claim.
var (
	SettingCommandPublishers = contracts.Setting{Flag: "command-publishers", Env: "CAFE_COMMAND_PUBLISHERS"}
	SettingResultPublishers  = contracts.Setting{Flag: "result-publishers", Env: "CAFE_RESULT_PUBLISHERS"}
)

// DefaultCommandPublishers are the users a command may come from.
func DefaultCommandPublishers() []string { return []string{string(Cashier), string(Ops)} }

// DefaultResultPublishers are the users a result may come from.
func DefaultResultPublishers() []string { return []string{string(Barista), string(Ops)} }

// CheckPublisher says why a message with AMQP user-id userID, which must
// be one of allowed (set by setting), is not to be trusted, or nil.
func CheckPublisher(userID string, allowed []string, setting contracts.Setting) error {
	switch {
	case userID == "":
		return fmt.Errorf("it has no user-id: not published by cafe (%s: %s)", setting.Env, strings.Join(allowed, ","))
	case !slices.Contains(allowed, userID):
		return fmt.Errorf("published by %q, not by one of %s (%s)", contracts.Clip(userID), strings.Join(allowed, ","), setting.Env)
	}
	return nil
}

// ValidPublishers says what is wrong with a list of publishers set by
// setting (default def), or nil.
func ValidPublishers(list []string, setting contracts.Setting, def []string) error {
	if len(list) == 0 || slices.Contains(list, "") {
		return setting.Errorf("%q: want a comma-separated list of AMQP user names (default %s)", list, strings.Join(def, ","))
	}
	return nil
}

// Reserved reports whether id is the name of one of cafe's services, which
// no app or device may take.
func Reserved(id string) bool {
	for _, s := range Services {
		if string(s) == id {
			return true
		}
	}
	return false
}

// KeyBytes is the size of an auth key.
const KeyBytes = 32

// Key is an installation's auth key.
type Key struct{ k []byte }

// NewKey returns a fresh random key.
func NewKey() Key {
	k := make([]byte, KeyBytes)
	_, _ = rand.Read(k)
	return Key{k}
}

// LoadKey reads a key file (64 hex digits; surrounding space ignored). A
// file others may read is refused: the key derives every secret.
func LoadKey(name string) (Key, error) {
	info, err := os.Stat(name)
	if err != nil {
		return Key{}, fmt.Errorf("auth key: %w (`task setup` creates one; or set CAFE_AUTH_KEY_FILE)", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return Key{}, fmt.Errorf("auth key %s may be read by others (mode %v): chmod 600 %s", name, info.Mode().Perm(), name)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return Key{}, fmt.Errorf("auth key: %w", err)
	}
	k, err := KeyFromHex(string(data))
	if err != nil {
		return Key{}, fmt.Errorf("%s: %w", name, err)
	}
	return k, nil
}

// EnsureKey loads the key file, creating it (mode 0600) with a fresh key
// if it does not exist. created says whether it did.
func EnsureKey(name string) (k Key, created bool, err error) {
	if _, err := os.Stat(name); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
			return Key{}, false, err
		}
		k := NewKey()
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, err = fmt.Fprintln(f, k.Hex())
			err = errors.Join(err, f.Close())
		}
		if err == nil {
			return k, true, nil
		}
		if !errors.Is(err, os.ErrExist) { // another process made it meanwhile: read that one
			return Key{}, false, fmt.Errorf("create auth key %s: %w", name, err)
		}
	}
	k, err = LoadKey(name)
	return k, false, err
}

// Valid reports whether k was loaded or made (the zero Key is not).
func (k Key) Valid() bool { return len(k.k) == KeyBytes }

// derive is HMAC-SHA256(key, purpose NUL part NUL part ...), base64url: 43
// characters from A-Z a-z 0-9 - _, safe in URLs, YAML and shells.
func (k Key) derive(purpose string, parts ...string) string {
	m := hmac.New(sha256.New, k.k)
	m.Write([]byte(purpose))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// DeviceSecret is the secret of a device of this generation.
func (k Key) DeviceSecret(id string, generation int) string {
	return k.derive("cafe/device-secret/v1", id, strconv.Itoa(generation))
}

// SessionKey is the key of app sessions, derived from the auth key: the
// cashier needs it to answer POST /v1/sessions, and holds only it, so it
// cannot derive any device's or service's secret.
func (k Key) SessionKey() Key {
	m := hmac.New(sha256.New, k.k)
	m.Write([]byte("cafe/session-key/v1"))
	return Key{m.Sum(nil)}
}

// AppPassword is the MQTT password of an app whose bearer token hashes to
// tokenSHA256, derived from the session key (k must be one): it changes
// when the app's token is rotated.
func (k Key) AppPassword(id string, tokenSHA256 [sha256.Size]byte) string {
	return k.derive("cafe/app-mqtt-password/v1", id, hex.EncodeToString(tokenSHA256[:]))
}

// Hex is the key as its file holds it.
func (k Key) Hex() string { return hex.EncodeToString(k.k) }

// ServicePassword is the password of a service on both brokers.
func (k Key) ServicePassword(s Service) string {
	return k.derive("cafe/service-password/v1", string(s))
}

// SHA256 is the hash the registry keeps of a secret or token.
func SHA256(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

// KeyFromHex is the key of 64 hex digits (a key file's content).
func KeyFromHex(s string) (Key, error) {
	k, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(k) != KeyBytes {
		return Key{}, fmt.Errorf("auth key: want %d hex digits", 2*KeyBytes)
	}
	return Key{k}, nil
}
