package brokerauth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"cafe/contracts/identity"
	"cafe/contracts/registry"
)

// The dynamic security plugin's file, as Mosquitto 2.0.11 reads it at
// start (plugins/dynamic-security/clients.c, roles.c): clients with a
// base64 PBKDF2-HMAC-SHA512 hash of 64 bytes, a 12-byte salt and the
// iteration count; roles with ACLs. Only cafe-admin has a role here (its
// $CONTROL topics); every other identity's topics come from the ACL file.
type dynsecFile struct {
	DefaultACLAccess map[string]bool `json:"defaultACLAccess"`
	Clients          []dynsecClient  `json:"clients"`
	Roles            []dynsecRole    `json:"roles"`
	Groups           []any           `json:"groups"`
}

type dynsecClient struct {
	Username        string          `json:"username"`
	ClientID        string          `json:"clientid,omitempty"`
	TextName        string          `json:"textname,omitempty"`
	TextDescription string          `json:"textdescription,omitempty"`
	Password        string          `json:"password"`
	Salt            string          `json:"salt"`
	Iterations      int             `json:"iterations"`
	Roles           []dynsecRoleRef `json:"roles"`
}

type dynsecRoleRef struct {
	Name string `json:"rolename"`
}

type dynsecRole struct {
	Name string      `json:"rolename"`
	ACLs []dynsecACL `json:"acls"`
}

type dynsecACL struct {
	Type  string `json:"acltype"`
	Topic string `json:"topic"`
	Allow bool   `json:"allow"`
}

// pbkdf2Iterations is what the plugin itself uses for passwords it hashes.
const pbkdf2Iterations = 101

// adminRole lets cafe-admin manage the plugin.
const adminRole = "cafe-admin"

// defaultACLAccess denies whatever neither a role nor the ACL file grants
// (publishClientReceive false too: no delivery on a subscription that no
// grant covers).
var defaultACLAccess = map[string]bool{"publishClientSend": false, "publishClientReceive": false, "subscribe": false, "unsubscribe": true}

func adminRoles() []dynsecRole {
	const control = "$CONTROL/dynamic-security/#"
	return []dynsecRole{{Name: adminRole, ACLs: []dynsecACL{
		{"publishClientSend", control, true},
		{"publishClientReceive", control, true},
		{"subscribePattern", control, true},
	}}}
}

// Render is the plugin's whole file for reg (read from registryFile, which
// names the logins' scope) and key.
func Render(reg *registry.Registry, registryFile string, key identity.Key) ([]byte, error) {
	f := dynsecFile{DefaultACLAccess: defaultACLAccess, Roles: adminRoles(), Groups: []any{}}
	for _, l := range Desired(reg, key) {
		c, err := entry(l, Scope(registryFile))
		if err != nil {
			return nil, err
		}
		f.Clients = append(f.Clients, c)
	}
	return json.MarshalIndent(f, "", "\t")
}

func entry(l Login, scope string) (dynsecClient, error) {
	salt := make([]byte, 12)
	_, _ = rand.Read(salt)
	hash, err := pbkdf2.Key(sha512.New, l.Password, salt, pbkdf2Iterations, 64)
	if err != nil {
		return dynsecClient{}, err
	}
	c := dynsecClient{
		Username: l.Username, ClientID: l.ClientID, TextName: string(l.Kind), TextDescription: describe(l, scope),
		Password: base64.StdEncoding.EncodeToString(hash), Salt: base64.StdEncoding.EncodeToString(salt),
		Iterations: pbkdf2Iterations, Roles: []dynsecRoleRef{},
	}
	if l.Username == string(identity.Admin) {
		c.Roles = []dynsecRoleRef{{adminRole}}
	}
	return c, nil
}

// WriteFile renders the plugin's file to name atomically, readable only by
// its owner (uid, gid: the broker's user, who rewrites it on every change).
func WriteFile(name string, reg *registry.Registry, registryFile string, key identity.Key, uid, gid int) error {
	data, err := Render(reg, registryFile, key)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(name), "."+filepath.Base(name)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		return fmt.Errorf("hand %s to the broker's user: %w", name, err)
	}
	return os.Rename(tmp, name)
}
