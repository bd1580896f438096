// Package registry reads and edits cafe's registry: the one file (YAML, so
// JSON works too) that says which apps and devices exist, and is the
// source of truth for every check that depends on identity: the cashier's
// bearer tokens and entitlements, the MQTT broker's logins (derived from it
// by cmd/internal/brokerauth), and the simulated fleet's credentials.
//
//	clients:
//	  - id: app-1                       # results go to clients/app-1/results
//	    token_sha256: 9f86d08...        # hex SHA-256 of the bearer token
//	    devices: ["lamp-*", "door-7"]   # glob patterns of device ids it may command
//	    rate: 50                        # optional: commands per second (default: the cashier's)
//	    burst: 100                      # optional: commands at once above the rate
//	devices:
//	  - id: lamp-1                      # the device's MQTT user name and client id
//	    secret_sha256: 2c26b46...       # hex SHA-256 of its secret
//	    generation: 1                   # optional; `cafe devices rotate` counts it up
//	operators:
//	  - id: alice                       # a person who may log in to the console (cafe console)
//	    token_sha256: 3a7bd3e...        # hex SHA-256 of the operator's login token
//
// Only hashes are stored. A device's secret is derived from the
// installation's auth key, its id and its generation (contracts/identity),
// which is how the broker can be told a device's secret again at any time
// without the registry holding it; the hash lets every reader check that
// its key is the one the secret came from.
//
// Operators are people, not MQTT identities: they log in to the web
// console with their token and have no broker login, so their ids are a
// namespace of their own (an operator may share an app's id).
//
// Patterns use path.Match syntax (* any run of characters, ? one character,
// [a-z] a class); device ids never contain '/', so * spans the whole id.
// Unknown fields are errors, so a typo cannot silently drop a setting.
// Client ids and device ids share one namespace (both become MQTT user
// names), and the names of cafe's own services are reserved.
package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"cafe/contracts"
	"cafe/contracts/identity"
)

// MaxBytes bounds the registry file (60,000 devices take about 7 MB).
const MaxBytes = 32 << 20

// Client is one app.
type Client struct {
	ID          string
	TokenSHA256 [sha256.Size]byte
	Patterns    []string
	Rate        float64 // commands per second; 0: the cashier's default
	Burst       int     // 0: the cashier's default for the rate
}

// MayCommand reports whether the client is entitled to command deviceID.
func (c *Client) MayCommand(deviceID string) bool {
	for _, p := range c.Patterns {
		if ok, _ := path.Match(p, deviceID); ok {
			return true
		}
	}
	return false
}

// Device is one registered device.
type Device struct {
	ID           string
	SecretSHA256 [sha256.Size]byte
	Generation   int // 1 for a new device; rotation counts it up
}

// Operator is a person who may log in to the console.
type Operator struct {
	ID          string
	TokenSHA256 [sha256.Size]byte
}

// Registry is a parsed, validated registry.
type Registry struct {
	byToken   map[[sha256.Size]byte]*Client
	clients   map[string]*Client
	devices   map[string]*Device
	operators map[string]*Operator
	opByToken map[[sha256.Size]byte]*Operator
}

// LookupOperator returns the operator whose token this is.
func (r *Registry) LookupOperator(token string) (*Operator, bool) {
	if r == nil || token == "" {
		return nil, false
	}
	o, ok := r.opByToken[sha256.Sum256([]byte(token))]
	return o, ok
}

// Operator returns the operator with id.
func (r *Registry) Operator(id string) (*Operator, bool) {
	o, ok := r.operators[id]
	return o, ok
}

// Operators lists every operator, by id.
func (r *Registry) Operators() []*Operator { return sorted(r.operators) }

// Lookup returns the client whose token this is.
func (r *Registry) Lookup(token string) (*Client, bool) {
	if r == nil || token == "" {
		return nil, false
	}
	c, ok := r.byToken[sha256.Sum256([]byte(token))]
	return c, ok
}

// Client returns the client with id.
func (r *Registry) Client(id string) (*Client, bool) {
	c, ok := r.clients[id]
	return c, ok
}

// Device returns the registered device with id.
func (r *Registry) Device(id string) (*Device, bool) {
	d, ok := r.devices[id]
	return d, ok
}

// Clients lists every client, by id.
func (r *Registry) Clients() []*Client { return sorted(r.clients) }

// Devices lists every device, by id.
func (r *Registry) Devices() []*Device { return sorted(r.devices) }

// Len is the number of clients; Devices the number of devices.
func (r *Registry) Len() int { return len(r.clients) }

func sorted[T any](m map[string]*T) []*T {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]*T, len(ids))
	for i, id := range ids {
		out[i] = m[id]
	}
	return out
}

type file struct {
	Clients   []clientEntry   `yaml:"clients"`
	Devices   []deviceEntry   `yaml:"devices"`
	Operators []operatorEntry `yaml:"operators"`
}

type operatorEntry struct {
	ID          string `yaml:"id"`
	TokenSHA256 string `yaml:"token_sha256"`
}

type clientEntry struct {
	ID          string   `yaml:"id"`
	TokenSHA256 string   `yaml:"token_sha256"`
	Devices     []string `yaml:"devices"`
	Rate        float64  `yaml:"rate"`
	Burst       int      `yaml:"burst"`
}

type deviceEntry struct {
	ID           string `yaml:"id"`
	SecretSHA256 string `yaml:"secret_sha256"`
	Generation   int    `yaml:"generation"`
}

// Load reads and validates a registry file. The error names the file and,
// for each problem, the entry and field.
func Load(name string) (*Registry, error) {
	data, err := read(name)
	if err != nil {
		return nil, err
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", name, err)
	}
	return r, nil
}

func read(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("registry: %w (set CAFE_CLIENTS_FILE; `cafe clients add` creates one)", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", name, err)
	}
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("registry %s: larger than %d MiB", name, MaxBytes>>20)
	}
	return data, nil
}

// Parse parses and validates registry YAML (or JSON).
func Parse(data []byte) (*Registry, error) {
	var doc file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty; it needs a clients: list")
		}
		return nil, fmt.Errorf("not a valid registry: %w", err)
	}
	r := &Registry{
		byToken:   make(map[[sha256.Size]byte]*Client, len(doc.Clients)),
		clients:   make(map[string]*Client, len(doc.Clients)),
		devices:   make(map[string]*Device, len(doc.Devices)),
		operators: make(map[string]*Operator, len(doc.Operators)),
		opByToken: make(map[[sha256.Size]byte]*Operator, len(doc.Operators)),
	}
	errs := r.addClients(doc.Clients)
	errs = append(errs, r.addDevices(doc.Devices)...)
	errs = append(errs, r.addOperators(doc.Operators)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

func (r *Registry) addClients(entries []clientEntry) []error {
	var errs []error
	for i, e := range entries {
		where := place("clients", i, e.ID)
		c, err := e.client()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		case r.clients[c.ID] != nil:
			errs = append(errs, fmt.Errorf("%s: id %q is used by another client", where, c.ID))
		case r.byToken[c.TokenSHA256] != nil:
			errs = append(errs, fmt.Errorf("%s: token_sha256 is also used by another client", where))
		default:
			r.clients[c.ID], r.byToken[c.TokenSHA256] = c, c
		}
	}
	return errs
}

func (r *Registry) addDevices(entries []deviceEntry) []error {
	var errs []error
	for i, e := range entries {
		where := place("devices", i, e.ID)
		d, err := e.device()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		case r.devices[d.ID] != nil:
			errs = append(errs, fmt.Errorf("%s: id %q is used by another device", where, d.ID))
		case r.clients[d.ID] != nil:
			errs = append(errs, fmt.Errorf("%s: id %q is also a client's id; apps and devices share one namespace (both are MQTT user names)", where, d.ID))
		default:
			r.devices[d.ID] = d
		}
	}
	return errs
}

func (r *Registry) addOperators(entries []operatorEntry) []error {
	var errs []error
	for i, e := range entries {
		where := place("operators", i, e.ID)
		o, err := e.operator()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		case r.operators[o.ID] != nil:
			errs = append(errs, fmt.Errorf("%s: id %q is used by another operator", where, o.ID))
		case r.opByToken[o.TokenSHA256] != nil:
			errs = append(errs, fmt.Errorf("%s: token_sha256 is also used by another operator", where))
		default:
			r.operators[o.ID], r.opByToken[o.TokenSHA256] = o, o
		}
	}
	return errs
}

func (e operatorEntry) operator() (*Operator, error) {
	if !contracts.ValidClientID(e.ID) {
		return nil, fmt.Errorf("id %q: want 1 to %d characters from A-Z a-z 0-9 _ : - and dot", contracts.Clip(e.ID), contracts.MaxClientIDLen)
	}
	hash, err := sha256Hex(e.TokenSHA256)
	if err != nil {
		return nil, fmt.Errorf("token_sha256: %w; `cafe operators add` writes it", err)
	}
	return &Operator{ID: e.ID, TokenSHA256: hash}, nil
}

func place(list string, i int, id string) string {
	where := fmt.Sprintf("%s[%d]", list, i)
	if id != "" {
		where += " (" + contracts.Clip(id) + ")"
	}
	return where
}

func (e clientEntry) client() (*Client, error) {
	c := &Client{ID: e.ID, Patterns: e.Devices, Rate: e.Rate, Burst: e.Burst}
	if err := checkName(e.ID, contracts.ValidClientID, contracts.MaxClientIDLen, "clients/{id}/results"); err != nil {
		return nil, err
	}
	hash, err := sha256Hex(e.TokenSHA256)
	if err != nil {
		return nil, fmt.Errorf("token_sha256: %w (printf %%s \"$TOKEN\" | sha256sum)", err)
	}
	c.TokenSHA256 = hash
	if len(e.Devices) == 0 {
		return nil, errors.New(`devices: want at least one device id or glob pattern, e.g. ["lamp-*"]`)
	}
	for j, p := range e.Devices {
		if err := checkPattern(p); err != nil {
			return nil, fmt.Errorf("devices[%d] %q: %w", j, contracts.Clip(p), err)
		}
	}
	if e.Rate < 0 || e.Burst < 0 {
		return nil, errors.New("rate and burst: want 0 (the cashier's default) or more")
	}
	return c, nil
}

func (e deviceEntry) device() (*Device, error) {
	if err := checkName(e.ID, contracts.ValidDeviceID, contracts.MaxDeviceIDLen, "devices/{id}/commands"); err != nil {
		return nil, err
	}
	hash, err := sha256Hex(e.SecretSHA256)
	if err != nil {
		return nil, fmt.Errorf("secret_sha256: %w; `cafe devices add` writes it", err)
	}
	if e.Generation < 0 {
		return nil, errors.New("generation: want 1 or more (0 or absent: 1)")
	}
	return &Device{ID: e.ID, SecretSHA256: hash, Generation: max(e.Generation, 1)}, nil
}

// checkName checks an id that becomes an MQTT user name and topic level.
func checkName(id string, valid func(string) bool, maxLen int, topic string) error {
	if !valid(id) {
		return fmt.Errorf("id %q: want 1 to %d characters from A-Z a-z 0-9 _ : - and ., not . or .. (it becomes the MQTT topic level %s)", contracts.Clip(id), maxLen, topic)
	}
	if identity.Reserved(id) {
		return fmt.Errorf("id %q is reserved for one of cafe's own services", id)
	}
	return nil
}

func sha256Hex(s string) ([sha256.Size]byte, error) {
	var hash [sha256.Size]byte
	raw, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(raw) != sha256.Size {
		return hash, errors.New("want 64 hex digits, a SHA-256")
	}
	copy(hash[:], raw)
	return hash, nil
}

func checkPattern(p string) error {
	if p == "" || len(p) > 2*contracts.MaxDeviceIDLen {
		return errors.New("want a non-empty pattern of reasonable length")
	}
	if strings.ContainsAny(p, "/#+$") {
		return errors.New("device ids never contain / # + $, so the pattern could never match")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("not a valid glob pattern: %w", err)
	}
	return nil
}
