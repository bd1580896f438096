package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"go.yaml.in/yaml/v3"

	"cafe/contracts/identity"
)

// Doc is a registry file being edited: its YAML tree, comments kept.
type Doc struct {
	root *yaml.Node // the top-level mapping
}

// emptyFile is what a new registry starts as.
const emptyFile = "# cafe registry: the apps (clients) and devices that exist. See `cafe clients --help`, `cafe devices --help`.\nclients: []\ndevices: []\n"

// Edit applies change to the registry file name under an exclusive lock,
// checks that the result is a valid registry, and replaces the file
// atomically (mode 0600; a new file is created, with its directory). If
// change or the check fails, the file is left as it was.
func Edit(name string, change func(*Doc) error) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return err
	}
	unlock, err := lock(name)
	if err != nil {
		return err
	}
	defer unlock()
	data, err := os.ReadFile(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = []byte(emptyFile)
	case err != nil:
		return err
	}
	var tree yaml.Node
	if err := yaml.Unmarshal(data, &tree); err != nil || len(tree.Content) == 0 || tree.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("%s is not a registry (want a YAML mapping with a clients: list): %v", name, err)
	}
	if err := change(&Doc{root: tree.Content[0]}); err != nil {
		return err
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&tree); err != nil {
		return err
	}
	if _, err := Parse(out.Bytes()); err != nil {
		return fmt.Errorf("the registry would not be valid after this change: %w", err)
	}
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// lock takes an exclusive lock on name's lock file, so that two commands
// editing one registry do not lose each other's change.
func lock(name string) (unlock func(), err error) {
	f, err := os.OpenFile(name+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
}

// list returns the sequence under key, creating it if missing.
func (d *Doc) list(key string) (*yaml.Node, error) {
	for i := 0; i+1 < len(d.root.Content); i += 2 {
		if d.root.Content[i].Value == key {
			n := d.root.Content[i+1]
			if n.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("registry: %s is not a list", key)
			}
			n.Style = 0 // block style, also for a list that started as []
			return n, nil
		}
	}
	n := &yaml.Node{Kind: yaml.SequenceNode}
	d.root.Content = append(d.root.Content, scalar(key), n)
	return n, nil
}

// find returns the index of the entry with id in list key, or -1.
func (d *Doc) find(key, id string) (*yaml.Node, int, error) {
	l, err := d.list(key)
	if err != nil {
		return nil, -1, err
	}
	for i, e := range l.Content {
		if v := field(e, "id"); v != nil && v.Value == id {
			return l, i, nil
		}
	}
	return l, -1, nil
}

// AddClient appends an app.
func (d *Doc) AddClient(id string, token [sha256.Size]byte, patterns []string, rate float64, burst int) error {
	l, i, err := d.find("clients", id)
	if err != nil {
		return err
	}
	if i >= 0 {
		return fmt.Errorf("client %q is already registered (rotate its token with `cafe clients rotate %s`)", id, id)
	}
	e := mapping("id", quoted(id), "token_sha256", quoted(hex.EncodeToString(token[:])))
	devices := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, p := range patterns {
		devices.Content = append(devices.Content, quoted(p))
	}
	e.Content = append(e.Content, scalar("devices"), devices)
	if rate > 0 {
		e.Content = append(e.Content, scalar("rate"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(rate, 'g', -1, 64)})
	}
	if burst > 0 {
		e.Content = append(e.Content, scalar("burst"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(burst)})
	}
	l.Content = append(l.Content, e)
	return nil
}

// AddOperator appends a console operator.
func (d *Doc) AddOperator(id string, token [sha256.Size]byte) error {
	l, i, err := d.find("operators", id)
	if err != nil {
		return err
	}
	if i >= 0 {
		return fmt.Errorf("operator %q is already registered (remove it first to give it a new token)", id)
	}
	l.Content = append(l.Content, mapping("id", quoted(id), "token_sha256", quoted(hex.EncodeToString(token[:]))))
	return nil
}

// SetClientToken replaces an app's token hash.
func (d *Doc) SetClientToken(id string, token [sha256.Size]byte) error {
	return d.set("clients", id, "token_sha256", quoted(hex.EncodeToString(token[:])))
}

// AddDevice appends a device.
func (d *Doc) AddDevice(id string, secret [sha256.Size]byte, generation int) error {
	l, i, err := d.find("devices", id)
	if err != nil {
		return err
	}
	if i >= 0 {
		return fmt.Errorf("device %q is already registered (new secret: `cafe devices rotate %s`)", id, id)
	}
	l.Content = append(l.Content, mapping("id", quoted(id), "secret_sha256", quoted(hex.EncodeToString(secret[:])),
		"generation", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(generation)}))
	return nil
}

// SetDevice replaces a device's secret hash and generation.
func (d *Doc) SetDevice(id string, secret [sha256.Size]byte, generation int) error {
	if err := d.set("devices", id, "secret_sha256", quoted(hex.EncodeToString(secret[:]))); err != nil {
		return err
	}
	return d.set("devices", id, "generation", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(generation)})
}

// Remove deletes the entry with id from list (clients, devices or operators).
func (d *Doc) Remove(list, id string) error {
	l, i, err := d.find(list, id)
	if err != nil {
		return err
	}
	if i < 0 {
		return fmt.Errorf("no %s %q in the registry", singular(list), id)
	}
	l.Content = append(l.Content[:i], l.Content[i+1:]...)
	return nil
}

func (d *Doc) set(list, id, key string, v *yaml.Node) error {
	l, i, err := d.find(list, id)
	if err != nil {
		return err
	}
	if i < 0 {
		return fmt.Errorf("no %s %q in the registry", singular(list), id)
	}
	e := l.Content[i]
	for j := 0; j+1 < len(e.Content); j += 2 {
		if e.Content[j].Value == key {
			e.Content[j+1] = v
			return nil
		}
	}
	e.Content = append(e.Content, scalar(key), v)
	return nil
}

func singular(list string) string { return list[:len(list)-1] }

func field(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func mapping(kv ...any) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Content = append(m.Content, scalar(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return m
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

func quoted(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: v, Style: yaml.DoubleQuotedStyle}
}

// EnsureDevices registers those of ids the registry file does not have yet
// (keeping the others as they are) and returns every id's secret, derived
// from key: how `cafe up --devices N` and `cafe bench` get their simulated
// fleets in.
func EnsureDevices(name string, key identity.Key, ids []string) (map[string]string, error) {
	secrets := make(map[string]string, len(ids))
	err := Edit(name, func(doc *Doc) error {
		current, _ := Load(name) // nil for a file that does not exist yet
		for _, id := range ids {
			if current != nil {
				if d, ok := current.Device(id); ok {
					secrets[id] = key.DeviceSecret(id, d.Generation)
					continue
				}
			}
			secrets[id] = key.DeviceSecret(id, 1)
			if err := doc.AddDevice(id, identity.SHA256(secrets[id]), 1); err != nil {
				return err
			}
		}
		return nil
	})
	return secrets, err
}

// RemoveDevices removes ids from the registry file.
func RemoveDevices(name string, ids []string) error {
	return Edit(name, func(doc *Doc) error {
		for _, id := range ids {
			if err := doc.Remove("devices", id); err != nil {
				return err
			}
		}
		return nil
	})
}
