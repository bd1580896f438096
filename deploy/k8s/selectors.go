package k8s

import (
	"fmt"
	"slices"
)

// What the objects' label selectors select: the pods the manifests make.

// pod is the labels and named ports of the pods an object makes.
type pod struct {
	owner  string
	labels map[string]string
	ports  map[string]bool // container ports by name
}

// podsOf lists the pods the objects make: their templates, and the pods
// the RabbitMQ Cluster Operator makes for a RabbitmqCluster (its labels).
func podsOf(objs []Object) []pod {
	var out []pod
	for _, o := range objs {
		if o.Kind() == "RabbitmqCluster" {
			out = append(out, pod{o.String(), map[string]string{
				"app.kubernetes.io/name": o.Name(), "app.kubernetes.io/component": "rabbitmq", "app.kubernetes.io/part-of": "rabbitmq",
			}, nil})
		}
		if l, ok := At(o, "spec", "template", "metadata", "labels").(map[string]any); ok {
			ports := map[string]bool{}
			for _, c := range Containers(o) {
				ps, _ := c["ports"].([]any)
				for _, p := range ps {
					if n, ok := At(p, "name").(string); ok {
						ports[n] = true
					}
				}
			}
			out = append(out, pod{o.String(), strs(l), ports})
		}
	}
	return out
}

func strs(m map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k], _ = v.(string)
	}
	return out
}

// matches reports whether a label selector (matchLabels, matchExpressions)
// selects labels; isMap says the selector is a plain map (a Service's).
func matches(sel map[string]any, labels map[string]string, isMap bool) bool {
	want := sel
	if !isMap {
		want, _ = sel["matchLabels"].(map[string]any)
	}
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	if isMap {
		return true
	}
	exprs, _ := sel["matchExpressions"].([]any)
	for _, e := range exprs {
		if !matchesExpr(e, labels) {
			return false
		}
	}
	return true
}

func matchesExpr(e any, labels map[string]string) bool {
	key, _ := At(e, "key").(string)
	op, _ := At(e, "operator").(string)
	var values []string
	vs, _ := At(e, "values").([]any)
	for _, v := range vs {
		s, _ := v.(string)
		values = append(values, s)
	}
	v, has := labels[key]
	switch op {
	case "In":
		return has && slices.Contains(values, v)
	case "NotIn":
		return !has || !slices.Contains(values, v)
	case "Exists":
		return has
	case "DoesNotExist":
		return !has
	}
	return false
}

func selectsAny(pods []pod, sel map[string]any, isMap bool) bool {
	for _, p := range pods {
		if matches(sel, p.labels, isMap) {
			return true
		}
	}
	return false
}

func lintSelectors(pods []pod, o Object) []error {
	var errs []error
	check := func(what string, sel any, isMap bool) {
		m, ok := sel.(map[string]any)
		if !ok {
			return
		}
		if !selectsAny(pods, m, isMap) {
			errs = append(errs, fmt.Errorf("%s: %s %v selects no pod of these manifests", o, what, m))
		}
	}
	switch o.Kind() {
	case "Service":
		check("selector", At(o, "spec", "selector"), true)
		errs = append(errs, lintTargetPorts(pods, o)...)
	case "PodDisruptionBudget":
		check("selector", At(o, "spec", "selector"), false)
	case "NetworkPolicy":
		check("podSelector", At(o, "spec", "podSelector"), false)
		for _, dir := range []string{"ingress", "egress"} {
			rules, _ := At(o, "spec", dir).([]any)
			for i, r := range rules {
				peers, _ := At(r, map[string]string{"ingress": "from", "egress": "to"}[dir]).([]any)
				for j, p := range peers {
					if At(p, "namespaceSelector") == nil { // a peer in this namespace
						check(fmt.Sprintf("%s[%d] peer %d podSelector", dir, i, j), At(p, "podSelector"), false)
					}
				}
			}
		}
	}
	return errs
}

// lintTargetPorts checks that each port a Service targets by name is a
// named container port of every pod it selects.
func lintTargetPorts(pods []pod, svc Object) []error {
	var errs []error
	sel, _ := At(svc, "spec", "selector").(map[string]any)
	ports, _ := At(svc, "spec", "ports").([]any)
	for _, p := range pods {
		if sel == nil || !matches(sel, p.labels, true) {
			continue
		}
		for _, port := range ports {
			if name, ok := At(port, "targetPort").(string); ok && !p.ports[name] {
				errs = append(errs, fmt.Errorf("%s: targetPort %q is not a port of the pods of %s", svc, name, p.owner))
			}
		}
	}
	return errs
}
