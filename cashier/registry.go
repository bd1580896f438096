package cashier

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/time/rate"

	"cafe/contracts"
)

// The client registry (CAFE_CLIENTS_FILE) is a YAML file, so JSON works too:
//
//	clients:
//	  - id: app-1                       # results go to clients/app-1/results
//	    token_sha256: 9f86d08...        # hex SHA-256 of the bearer token
//	    devices: ["lamp-*", "door-7"]   # glob patterns of device ids it may command
//	    rate: 50                        # optional: commands per second (default: no limit)
//	    burst: 100                      # optional: commands at once above the rate (default: rate, at least 1)
//
// Patterns use path.Match syntax (* any run of characters, ? one character,
// [a-z] a class); device ids never contain '/', so * spans the whole id.
// Unknown fields are errors, so a typo cannot silently drop a setting.

// MaxRegistryBytes bounds the registry file.
const MaxRegistryBytes = 16 << 20

// Client is one app the cashier knows.
type Client struct {
	ID       string
	Patterns []string
	limiter  *rate.Limiter // nil: no limit
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

// allow takes n commands from the client's rate at time now, or says why
// not with a CodeRateLimited error.
func (c *Client) allow(now time.Time, n int) *contracts.Error {
	if c.limiter == nil {
		return nil
	}
	if burst := c.limiter.Burst(); n > burst {
		// No wait would help: the limiter never allows more than its burst at once.
		return contracts.NewError(contracts.CodeRateLimited, contracts.Detail{Field: "batch",
			Reason: "a batch of " + strconv.Itoa(n) + " is larger than client " + c.ID + "'s burst of " + strconv.Itoa(burst) +
				"; split it into batches of at most " + strconv.Itoa(burst)})
	}
	if !c.limiter.AllowN(now, n) {
		return contracts.NewError(contracts.CodeRateLimited,
			contracts.Detail{Reason: "client " + c.ID + " is over its rate; retry after the Retry-After delay"})
	}
	return nil
}

// Registry maps bearer tokens to clients.
type Registry struct {
	byToken map[[sha256.Size]byte]*Client
	count   int
}

// Lookup returns the client whose token this is.
func (r *Registry) Lookup(token string) (*Client, bool) {
	if r == nil || token == "" {
		return nil, false
	}
	c, ok := r.byToken[sha256.Sum256([]byte(token))]
	return c, ok
}

// Len is the number of clients.
func (r *Registry) Len() int { return r.count }

type registryFile struct {
	Clients []clientEntry `yaml:"clients"`
}

type clientEntry struct {
	ID          string   `yaml:"id"`
	TokenSHA256 string   `yaml:"token_sha256"`
	Devices     []string `yaml:"devices"`
	Rate        float64  `yaml:"rate"`
	Burst       int      `yaml:"burst"`
}

// LoadRegistry reads and validates a registry file. The error names the
// file and, for each problem, the client entry and field.
func LoadRegistry(file string) (*Registry, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("client registry: %w (set CAFE_CLIENTS_FILE; `cafe clients add` creates one)", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxRegistryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("client registry %s: %w", file, err)
	}
	if len(data) > MaxRegistryBytes {
		return nil, fmt.Errorf("client registry %s: larger than %d MiB", file, MaxRegistryBytes>>20)
	}
	r, err := ParseRegistry(data)
	if err != nil {
		return nil, fmt.Errorf("client registry %s: %w", file, err)
	}
	return r, nil
}

// ParseRegistry parses and validates registry YAML (or JSON).
func ParseRegistry(data []byte) (*Registry, error) {
	var doc registryFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty; it needs a clients: list")
		}
		return nil, fmt.Errorf("not a valid registry: %w", err)
	}
	if len(doc.Clients) == 0 {
		return nil, errors.New("no clients; add one with `cafe clients add --id APP --devices 'PATTERN'`")
	}
	r := &Registry{byToken: make(map[[sha256.Size]byte]*Client, len(doc.Clients)), count: len(doc.Clients)}
	ids := map[string]int{}
	var errs []error
	for i, e := range doc.Clients {
		where := fmt.Sprintf("clients[%d]", i)
		if e.ID != "" {
			where += " (" + contracts.Clip(e.ID) + ")"
		}
		c, hash, err := e.client()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if j, dup := ids[c.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: id %q is also used by clients[%d]", where, c.ID, j))
			continue
		}
		if _, dup := r.byToken[hash]; dup {
			errs = append(errs, fmt.Errorf("%s: token_sha256 is also used by another client", where))
			continue
		}
		ids[c.ID] = i
		r.byToken[hash] = c
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

func (e clientEntry) client() (*Client, [sha256.Size]byte, error) {
	var hash [sha256.Size]byte
	if !contracts.ValidClientID(e.ID) {
		return nil, hash, fmt.Errorf("id %q: want 1 to %d characters from A-Z a-z 0-9 . _ : - (it becomes the MQTT topic level clients/{id}/results)", contracts.Clip(e.ID), contracts.MaxClientIDLen)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(e.TokenSHA256))
	if err != nil || len(raw) != sha256.Size {
		return nil, hash, errors.New("token_sha256: want 64 hex digits, the SHA-256 of the bearer token (printf %s \"$TOKEN\" | sha256sum)")
	}
	copy(hash[:], raw)
	if len(e.Devices) == 0 {
		return nil, hash, errors.New(`devices: want at least one device id or glob pattern, e.g. ["lamp-*"]`)
	}
	for j, p := range e.Devices {
		if err := checkPattern(p); err != nil {
			return nil, hash, fmt.Errorf("devices[%d] %q: %w", j, contracts.Clip(p), err)
		}
	}
	if e.Rate < 0 || e.Burst < 0 {
		return nil, hash, errors.New("rate and burst: want 0 (no limit) or more")
	}
	c := &Client{ID: e.ID, Patterns: e.Devices}
	if e.Rate > 0 {
		burst := e.Burst
		if burst == 0 {
			burst = max(1, int(e.Rate))
		}
		c.limiter = rate.NewLimiter(rate.Limit(e.Rate), burst)
	}
	return c, hash, nil
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
