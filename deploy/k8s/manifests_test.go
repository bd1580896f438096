package k8s_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"cafe/contracts"
	"cafe/contracts/identity"
	"cafe/deploy/k8s"
)

// The dev overlay renders, and every object passes every schema and lint.
func TestOverlayIsValid(t *testing.T) {
	f := load(t)
	for _, err := range append(f.schemas.Validate(f.objs), k8s.Lint(f.objs, f.programs)...) {
		t.Error(err)
	}
	want := map[string]int{"Deployment": 4, "StatefulSet": 3, "RabbitmqCluster": 1, "ScaledObject": 1, "PodDisruptionBudget": 1, "User": 5, "Permission": 5, "Policy": 1}
	got := map[string]int{}
	for _, o := range f.objs {
		got[o.Kind()]++
	}
	for kind, n := range want {
		if got[kind] != n {
			t.Errorf("%d %s objects, want %d", got[kind], kind, n)
		}
	}
	rmq := must(t, f.objs, "RabbitmqCluster", "cafe-rabbitmq")
	if n := k8s.At(rmq, "spec", "replicas"); n != 3.0 {
		t.Errorf("RabbitmqCluster replicas %v, want 3", n)
	}
	if conf := str(k8s.At(rmq, "spec", "rabbitmq", "additionalConfig")); !strings.Contains(conf, "target_group_size = 3\n") {
		t.Errorf("RabbitmqCluster: want quorum queues grown to all 3 nodes (continuous_membership_reconciliation.target_group_size = 3)")
	}
	for _, o := range f.objs {
		if o.Kind() != "Secret" {
			continue
		}
		for _, k := range k8s.Keys(o) {
			if strings.Contains(decoded(t, o, k), placeholder) {
				t.Errorf("%s %s is still the base's placeholder: the overlay must replace every Secret", o, k)
			}
		}
	}
}

// placeholder is what the base's Secrets hold instead of credentials.
const placeholder = "REPLACE-ME"

// The base alone renders and validates too, and holds no credential: each
// Secret value is the placeholder, or a user name.
func TestBaseHoldsPlaceholdersOnly(t *testing.T) {
	f := load(t)
	objs, err := k8s.Render("base")
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range append(f.schemas.Validate(objs), k8s.Lint(objs, f.programs)...) {
		// PostgreSQL is not the base's: its policies reach pods labelled
		// cafe-postgres, which an overlay (or the user's database) provides.
		if !strings.Contains(err.Error(), "app.kubernetes.io/name:cafe-postgres") {
			t.Error(err)
		}
	}
	n := 0
	for _, o := range objs {
		if o.Kind() != "Secret" {
			continue
		}
		for _, k := range k8s.Keys(o) {
			n++
			if v := decoded(t, o, k); v != placeholder && !(k == "username" && strings.HasPrefix(v, "cafe-")) {
				t.Errorf("%s %s: the base holds %d bytes that are not the placeholder %s", o, k, len(v), placeholder)
			}
		}
	}
	if n == 0 {
		t.Error("the base has no Secrets")
	}
}

// The operator declares exactly contracts.DefaultTopology(): every
// exchange with its kind, every queue with its arguments, every binding.
func TestTopologyIsTheContracts(t *testing.T) {
	f := load(t)
	top := contracts.DefaultTopology()
	want := map[string]string{}
	for _, e := range top.Exchanges() {
		want["exchange "+e.Name] = e.Kind
	}
	for _, q := range top.Queues() {
		want["queue "+q.Name] = fmt.Sprint(q.Args)
		for _, b := range q.Bindings() {
			want[fmt.Sprintf("binding %s -> %s (%s)", b.Exchange, q.Name, b.Key)] = "queue"
		}
	}
	got := map[string]string{}
	for _, o := range f.objs {
		spec, _ := k8s.At(o, "spec").(map[string]any)
		switch o.Kind() {
		case "Exchange":
			got["exchange "+str(spec["name"])] = str(spec["type"])
		case "Queue":
			args := map[string]any{"x-queue-type": spec["type"]}
			a, _ := spec["arguments"].(map[string]any)
			for k, v := range a {
				if n, ok := v.(float64); ok {
					v = int64(n)
				}
				args[k] = v
			}
			got["queue "+str(spec["name"])] = fmt.Sprint(args)
			if spec["durable"] != true || spec["deletionPolicy"] != "retain" {
				t.Errorf("%s: want durable and deletionPolicy retain (deleting the manifests must not delete accepted commands)", o)
			}
		case "Binding":
			got[fmt.Sprintf("binding %s -> %s (%s)", spec["source"], spec["destination"], spec["routingKey"])] = str(spec["destinationType"])
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: manifests say %q, contracts %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: not in contracts.DefaultTopology()", k)
		}
	}
}

func str(v any) string { s, _ := v.(string); return s }

// Each role's RabbitMQ user may do exactly what `cafe setup --rabbitmq`
// grants it on one machine (cmd/cafe/setup_rabbitmq.go, AMQPGrants, read
// from the source, since it is package main).
func TestPermissionsAreSetupsGrants(t *testing.T) {
	f := load(t)
	grants := setupGrants(t)
	for _, r := range deployedRoles {
		role, g := string(r), grants[string(r)]
		p := must(t, f.objs, "Permission", role)
		u := must(t, f.objs, "User", role)
		got := [4]string{str(k8s.At(p, "spec", "permissions", "configure")), str(k8s.At(p, "spec", "permissions", "write")), str(k8s.At(p, "spec", "permissions", "read")), tags(u)}
		if got != g {
			t.Errorf("%s: manifests grant %q, cafe setup %q", role, got, g)
		}
		if k8s.At(p, "spec", "vhost") != "/" || k8s.At(p, "spec", "userReference", "name") != role {
			t.Errorf("%s: want vhost / and userReference %s", p, role)
		}
	}
}

func tags(u k8s.Object) string {
	l, _ := k8s.At(u, "spec", "tags").([]any)
	var out []string
	for _, x := range l {
		out = append(out, str(x))
	}
	return strings.Join(out, ",")
}

// deployedRoles are the RabbitMQ users the manifests make: every role's
// but cafe-admin's, whose work (declaring the topology) the operator does
// with its own default user.
var deployedRoles = []identity.Service{identity.Cashier, identity.Barista, identity.Caller, identity.Ledger, identity.Ops}

// setupGrants parses AMQPGrants out of cmd/cafe/setup_rabbitmq.go: role
// name → configure, write, read, tags.
func setupGrants(t *testing.T) map[string][4]string {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), "../../cmd/cafe/setup_rabbitmq.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{"nothing": "^$"}
	roles := map[string]identity.Service{"Cashier": identity.Cashier, "Barista": identity.Barista, "Caller": identity.Caller, "Ledger": identity.Ledger, "Ops": identity.Ops, "Admin": identity.Admin}
	out := map[string][4]string{}
	ast.Inspect(file, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "AMQPGrants" {
			return true
		}
		for _, el := range vs.Values[0].(*ast.CompositeLit).Elts {
			fields := el.(*ast.CompositeLit).Elts
			role := roles[fields[0].(*ast.SelectorExpr).Sel.Name]
			var g [4]string
			for i, e := range fields[1:] {
				switch v := e.(type) {
				case *ast.Ident:
					g[i] = consts[v.Name]
				case *ast.BasicLit:
					g[i], _ = strconv.Unquote(v.Value)
				}
			}
			out[string(role)] = g
		}
		return false
	})
	for _, role := range deployedRoles {
		if _, ok := out[string(role)]; !ok {
			t.Fatalf("read no grant for %s from cmd/cafe/setup_rabbitmq.go (%d read): has its shape changed?", role, len(out))
		}
	}
	return out
}

// Every password in the dev overlay's Secrets is the one its auth key
// derives for that identity, so the dev cluster's logins fit together:
// each role's URLs, the operator's users, KEDA's management login, the
// cashier's session key, the dev PostgreSQL.
func TestDevSecretsComeFromTheirKey(t *testing.T) {
	f := load(t)
	key, err := devKey()
	if err != nil {
		t.Fatal(err)
	}
	secret := func(name, k string) string {
		t.Helper()
		return decoded(t, secretNamed(t, f.objs, name), k)
	}
	login := func(role identity.Service, raw string) {
		t.Helper()
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		pw, _ := u.User.Password()
		if u.User.Username() != string(role) || pw != key.ServicePassword(role) {
			t.Errorf("%s: user %q with a password the dev key does not derive for %s", u.Redacted(), u.User.Username(), role)
		}
	}
	for role, keys := range map[identity.Service][]string{
		identity.Cashier: {"CAFE_AMQP_URL"}, identity.Barista: {"CAFE_AMQP_URL", "CAFE_MQTT_URL"},
		identity.Caller: {"CAFE_AMQP_URL", "CAFE_MQTT_URL"}, identity.Ledger: {"CAFE_AMQP_URL", "CAFE_POSTGRES_URL"},
	} {
		for _, k := range keys {
			login(role, secret(string(role), k))
		}
	}
	login(identity.Ledger, secret("cafe-cashier", "CAFE_POSTGRES_URL")) // the dev database has one login
	login(identity.Ops, secret("cafe-ops-management", "host"))
	for _, role := range deployedRoles {
		name := "cafe-rabbitmq-" + strings.TrimPrefix(string(role), "cafe-")
		if secret(name, "username") != string(role) || secret(name, "password") != key.ServicePassword(role) {
			t.Errorf("%s: not %s's login from the dev key", name, role)
		}
	}
	if got := strings.TrimSpace(secret("cafe-session-key", "session.key")); got != key.SessionKey().Hex() {
		t.Errorf("cafe-session-key is not the dev key's session key")
	}
	if secret("cafe-postgres", "POSTGRES_PASSWORD") != key.ServicePassword(identity.Ledger) {
		t.Errorf("cafe-postgres: POSTGRES_PASSWORD is not cafe-ledger's password from the dev key")
	}
}
