package k8s_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"cafe/deploy/k8s"
)

// The NetworkPolicies let each component reach only what it needs: every
// connection between the namespace's pods (and from outside it), on every
// port any of them uses, is worked out from the policies as Kubernetes
// applies them (allowed only if the source's egress and the destination's
// ingress both allow it), and must be exactly this list.
func TestNetworkPoliciesAllowOnlyWhatEachNeeds(t *testing.T) {
	f := load(t)
	want := []string{
		"outside -> cafe-cashier:8080",
		"outside -> cafe-mqtt-edge:1883", "outside -> cafe-mqtt-edge:8883",
		"cafe-cashier -> cafe-rabbitmq:5671", "cafe-cashier -> cafe-rabbitmq:5672", "cafe-cashier -> cafe-postgres:5432",
		"cafe-barista -> cafe-rabbitmq:5671", "cafe-barista -> cafe-rabbitmq:5672", "cafe-barista -> cafe-mqtt-core:1883", "cafe-barista -> cafe-mqtt-core:8883",
		"cafe-caller -> cafe-rabbitmq:5671", "cafe-caller -> cafe-rabbitmq:5672", "cafe-caller -> cafe-mqtt-core:1883", "cafe-caller -> cafe-mqtt-core:8883",
		"cafe-ledger -> cafe-rabbitmq:5671", "cafe-ledger -> cafe-rabbitmq:5672", "cafe-ledger -> cafe-postgres:5432",
		"cafe-mqtt-edge -> cafe-mqtt-core:1883",
		"cafe-rabbitmq -> cafe-rabbitmq:4369", "cafe-rabbitmq -> cafe-rabbitmq:25672", "cafe-rabbitmq -> cafe-rabbitmq:35672",
	}
	got := allowedConnections(f.objs)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the policies allow\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	// The evaluation bites: a port too many, or a policy fewer, shows.
	objs := k8s.Clone(f.objs)
	rule := k8s.At(must(t, objs, "NetworkPolicy", "cafe-mqtt-edge"), "spec", "egress", 0).(map[string]any)
	rule["ports"] = append(rule["ports"].([]any), map[string]any{"protocol": "TCP", "port": 8883.0})
	if got := allowedConnections(objs); !slices.Contains(got, "cafe-mqtt-edge -> cafe-mqtt-core:8883") {
		t.Error("an edge egress rule opened to 8883 went unseen")
	}
	objs = slices.DeleteFunc(k8s.Clone(f.objs), func(o k8s.Object) bool { return o.Kind() == "NetworkPolicy" && o.Name() == "cafe-ledger" })
	if got := allowedConnections(objs); slices.Contains(got, "cafe-ledger -> cafe-rabbitmq:5672") {
		t.Error("without its own policy the ledger is left to the default deny, yet still reaches RabbitMQ")
	}
}

// ports are those any of cafe's components listens on.
var ports = []float64{1883, 8883, 5671, 5672, 15672, 15692, 4369, 25672, 35672, 5432, 8080, 9100}

// endpoint is a pod (by its name label) or, with no labels, a pod outside
// the namespace.
type endpoint struct {
	name   string
	labels map[string]any
}

func allowedConnections(objs []k8s.Object) []string {
	var pods []endpoint
	for _, o := range objs {
		if l, ok := k8s.At(o, "spec", "template", "metadata", "labels").(map[string]any); ok {
			pods = append(pods, endpoint{str(l["app.kubernetes.io/name"]), l})
		}
		if o.Kind() == "RabbitmqCluster" {
			pods = append(pods, endpoint{o.Name(), map[string]any{"app.kubernetes.io/name": o.Name()}})
		}
	}
	var policies []k8s.Object
	for _, o := range objs {
		if o.Kind() == "NetworkPolicy" {
			policies = append(policies, o)
		}
	}
	outside := endpoint{"outside", nil}
	var out []string
	for _, src := range append([]endpoint{outside}, pods...) {
		for _, dst := range pods {
			for _, port := range ports {
				if allows(policies, src, dst, "Egress", port) && allows(policies, dst, src, "Ingress", port) {
					out = append(out, fmt.Sprintf("%s -> %s:%v", src.name, dst.name, port))
				}
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// allows reports whether the policies of pod p allow traffic in direction
// dir (Egress: from p to peer; Ingress: from peer to p) on port. A pod no
// policy of that direction selects is open; outside pods have no policies.
func allows(policies []k8s.Object, p, peer endpoint, dir string, port float64) bool {
	if p.labels == nil {
		return true
	}
	selected := false
	for _, np := range policies {
		types, _ := k8s.At(np, "spec", "policyTypes").([]any)
		sel, _ := k8s.At(np, "spec", "podSelector").(map[string]any)
		if !slices.Contains(types, any(dir)) || !selects(sel, p.labels) {
			continue
		}
		selected = true
		rules, _ := k8s.At(np, "spec", strings.ToLower(dir)).([]any)
		for _, r := range rules {
			if rulePorts(r, port) && rulePeers(r, dir, peer) {
				return true
			}
		}
	}
	return !selected
}

func selects(sel map[string]any, labels map[string]any) bool {
	want, _ := sel["matchLabels"].(map[string]any)
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// rulePorts reports whether rule r covers port (no ports: every port).
func rulePorts(r any, port float64) bool {
	ps, ok := k8s.At(r, "ports").([]any)
	if !ok {
		return true
	}
	for _, p := range ps {
		lo, _ := k8s.At(p, "port").(float64)
		hi, ok := k8s.At(p, "endPort").(float64)
		if !ok {
			hi = lo
		}
		if port >= lo && port <= hi {
			return true
		}
	}
	return false
}

// rulePeers reports whether rule r covers peer (no peers: everyone). A
// peer in this namespace matches a podSelector alone, or with an empty
// namespaceSelector; one outside matches only a rule open to all.
func rulePeers(r any, dir string, peer endpoint) bool {
	peers, ok := k8s.At(r, map[string]string{"Egress": "to", "Ingress": "from"}[dir]).([]any)
	if !ok {
		return true
	}
	for _, p := range peers {
		ns, hasNS := k8s.At(p, "namespaceSelector").(map[string]any)
		sel, hasPods := k8s.At(p, "podSelector").(map[string]any)
		inNamespace := !hasNS || len(ns) == 0
		if peer.labels != nil && inNamespace && (!hasPods || selects(sel, peer.labels)) {
			return true
		}
	}
	return false
}
