package keda_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"cafe/barista"
	"cafe/contracts"
)

// docs are the YAML documents of file, each as a generic map.
func docs(t *testing.T, file string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var out []map[string]any
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, d)
	}
}

// at is the value at path in d (maps by key, lists by index), or nil.
func at(d any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := d.(map[string]any)
			d = m[k]
		case int:
			l, _ := d.([]any)
			if k >= len(l) {
				return nil
			}
			d = l[k]
		}
	}
	return d
}

func kind(t *testing.T, file, k string) map[string]any {
	t.Helper()
	for _, d := range docs(t, file) {
		if d["kind"] == k {
			return d
		}
	}
	t.Fatalf("%s has no %s", file, k)
	return nil
}

func TestScaledObjectTargetsTheBaristaDeployment(t *testing.T) {
	so := kind(t, "scaledobject.yaml", "ScaledObject")
	dep := kind(t, "deployment.yaml", "Deployment")
	checks := []struct {
		what      string
		got, want any
	}{
		{"apiVersion", so["apiVersion"], "keda.sh/v1alpha1"},
		{"scaleTargetRef.name", at(so, "spec", "scaleTargetRef", "name"), at(dep, "metadata", "name")},
		{"trigger type", at(so, "spec", "triggers", 0, "type"), "rabbitmq"},
		{"trigger protocol (http counts unacked too)", at(so, "spec", "triggers", 0, "metadata", "protocol"), "http"},
		{"trigger mode", at(so, "spec", "triggers", 0, "metadata", "mode"), "QueueLength"},
		{"queue", at(so, "spec", "triggers", 0, "metadata", "queueName"), contracts.DefaultTopology().CommandsQueue()},
		{"authentication", at(so, "spec", "triggers", 0, "authenticationRef", "name"), at(kind(t, "scaledobject.yaml", "TriggerAuthentication"), "metadata", "name")},
		{"one pod at a time down", at(so, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "policies", 0, "value"), 1},
		{"up at once", at(so, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleUp", "stabilizationWindowSeconds"), 0},
		{"selector matches the pods", at(dep, "spec", "selector", "matchLabels", "app.kubernetes.io/name"), at(dep, "spec", "template", "metadata", "labels", "app.kubernetes.io/name")},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	lo, _ := at(so, "spec", "minReplicaCount").(int)
	hi, _ := at(so, "spec", "maxReplicaCount").(int)
	if lo < 1 || hi < lo {
		t.Errorf("replicas %d..%d: want 1 <= min <= max", lo, hi)
	}
	if v, _ := at(so, "spec", "triggers", 0, "metadata", "value").(string); v == "" || v == "0" {
		t.Errorf("trigger value %q: want a positive backlog per replica, as a string", v)
	}
}

// The pod's termination grace must outlast the barista's own grace (the
// one it is given, and the default) plus the few seconds it takes to hand
// back and close its links; otherwise a scale-down kills it mid-command.
func TestTerminationGraceOutlastsTheBaristaGrace(t *testing.T) {
	dep := kind(t, "deployment.yaml", "Deployment")
	spec := at(dep, "spec", "template", "spec")
	secs, ok := at(spec, "terminationGracePeriodSeconds").(int)
	if !ok {
		t.Fatal("deployment.yaml sets no terminationGracePeriodSeconds")
	}
	grace := barista.Defaults().Grace
	env, _ := at(spec, "containers", 0, "env").([]any)
	for _, e := range env {
		if at(e, "name") == barista.SettingGrace.Env {
			d, err := time.ParseDuration(at(e, "value").(string))
			if err != nil {
				t.Fatalf("%s: %v", barista.SettingGrace.Env, err)
			}
			grace = max(grace, d)
		}
	}
	const closeMargin = 5 * time.Second
	if got := time.Duration(secs) * time.Second; got < grace+closeMargin {
		t.Errorf("terminationGracePeriodSeconds %d: want at least the barista grace %v + %v", secs, grace, closeMargin)
	}
}
