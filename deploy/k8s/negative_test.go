package k8s_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"cafe/deploy/k8s"
)

// Each case breaks the rendered overlay in one way and names what the
// error must say: proof that the schemas and the lint bite.
func TestBrokenManifestsFail(t *testing.T) {
	f := load(t)
	cases := []struct {
		name   string
		break_ func(t *testing.T, objs []k8s.Object) []k8s.Object
		want   string // in one of the errors
	}{
		{"typo'd field in a Deployment", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			c := container(t, must(t, objs, "Deployment", "cafe-cashier"), "cashier")
			c["imagePulPolicy"] = "Always"
			return objs
		}, `unknown field "imagePulPolicy"`},
		{"typo'd field in the RabbitmqCluster", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			spec := k8s.At(must(t, objs, "RabbitmqCluster", "cafe-rabbitmq"), "spec").(map[string]any)
			spec["replica"] = spec["replicas"]
			delete(spec, "replicas")
			return objs
		}, "'replica' not allowed"},
		{"typo'd field in the ScaledObject", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			k8s.At(must(t, objs, "ScaledObject", "cafe-barista"), "spec").(map[string]any)["minReplicas"] = 2
			return objs
		}, "'minReplicas' not allowed"},
		{"wrong type in a Deployment", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			k8s.At(must(t, objs, "Deployment", "cafe-caller"), "spec").(map[string]any)["replicas"] = "two"
			return objs
		}, "replicas"},
		{"wrong type in a Queue", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			k8s.At(must(t, objs, "Queue", "cafe-commands"), "spec").(map[string]any)["durable"] = "yes"
			return objs
		}, "want boolean"},
		{"missing required field in a Deployment (a container's name)", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			delete(container(t, must(t, objs, "Deployment", "cafe-ledger"), "ledger"), "name")
			return objs
		}, `missingProperty":"name"`},
		{"missing required field in a Permission (vhost)", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			delete(k8s.At(must(t, objs, "Permission", "cafe-barista"), "spec").(map[string]any), "vhost")
			return objs
		}, "missing property 'vhost'"},
		{"a NetworkPolicy that selects nothing", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			k8s.At(must(t, objs, "NetworkPolicy", "cafe-barista"), "spec", "podSelector", "matchLabels").(map[string]any)["app.kubernetes.io/name"] = "cafe-baristas"
			return objs
		}, "NetworkPolicy/cafe-barista: podSelector"},
		{"a NetworkPolicy peer that selects nothing", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			k8s.At(must(t, objs, "NetworkPolicy", "cafe-mqtt-core"), "spec", "ingress", 0, "from", 0, "podSelector", "matchLabels").(map[string]any)["app.kubernetes.io/name"] = "barista"
			return objs
		}, "peer 0 podSelector"},
		{"a variable cafe does not know", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			c := container(t, must(t, objs, "Deployment", "cafe-barista"), "barista")
			c["env"] = append(c["env"].([]any), map[string]any{"name": "CAFE_" + "BARISTA_CONCURENCY", "value": "64"})
			return objs
		}, "CAFE_BARISTA_CONCURENCY is not a setting of barista"},
		{"another role's variable", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			c := container(t, must(t, objs, "Deployment", "cafe-caller"), "caller")
			c["env"] = append(c["env"].([]any), map[string]any{"name": "CAFE_BARISTA_GRACE", "value": "10s"})
			return objs
		}, "CAFE_BARISTA_GRACE is not a setting of caller"},
		{"an unknown variable in an envFrom Secret", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			s := secretNamed(t, objs, "cafe-ledger")
			s["data"].(map[string]any)["CAFE_"+"POSTGRESS_URL"] = base64.StdEncoding.EncodeToString([]byte("x"))
			return objs
		}, "CAFE_POSTGRESS_URL is not a setting of ledger"},
		{"a flag cafe setup does not have", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			c := container(t, must(t, objs, "StatefulSet", "cafe-mqtt-core"), "prepare")
			c["args"].([]any)[0] = strings.Replace(c["args"].([]any)[0].(string), "--mosquitto-dir", "--mosquito-dir", 1)
			return objs
		}, "cafe setup has no flag --mosquito-dir"},
		{"a Service aiming at a port its pods do not have", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			k8s.At(must(t, objs, "Service", "cafe-cashier"), "spec", "ports", 0).(map[string]any)["targetPort"] = "https"
			return objs
		}, `targetPort "https"`},
		{"a Secret that does not exist", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			k8s.At(container(t, must(t, objs, "Deployment", "cafe-caller"), "caller"), "envFrom", 0, "secretRef").(map[string]any)["name"] = "cafe-callers"
			return objs
		}, `Secret "cafe-callers"`},
		{"an image without a tag", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			container(t, must(t, objs, "Deployment", "cafe-cashier"), "cashier")["image"] = "ghcr.io/cafe/cashier"
			return objs
		}, "name a tag"},
		{"a kind no schema knows", func(t *testing.T, objs []k8s.Object) []k8s.Object {
			return append(objs, k8s.Object{"apiVersion": "cafe.example/v1", "kind": "Frobnicator", "metadata": map[string]any{"name": "x"}})
		}, "no schema knows"},
	}
	sets := make([][]k8s.Object, len(cases))
	for i, c := range cases {
		sets[i] = c.break_(t, k8s.Clone(f.objs))
	}
	schemaErrs := f.schemas.ValidateSets(sets)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := append(schemaErrs[i], k8s.Lint(sets[i], f.programs)...)
			for _, err := range errs {
				if strings.Contains(err.Error(), c.want) {
					return
				}
			}
			t.Errorf("no error says %q; got %d errors: %v", c.want, len(errs), errs)
		})
	}
}

// secretNamed is the Secret generated from name (name-HASH), or fails.
func secretNamed(t *testing.T, objs []k8s.Object, name string) k8s.Object {
	t.Helper()
	for _, o := range objs {
		if o.Kind() == "Secret" && (o.Name() == name || strings.HasPrefix(o.Name(), name+"-") && len(o.Name()) == len(name)+11) {
			return o
		}
	}
	t.Fatalf("no Secret %s", name)
	return nil
}

// decoded is the value of key k of a Secret, from data (base64) or stringData.
func decoded(t *testing.T, o k8s.Object, k string) string {
	t.Helper()
	if v, ok := k8s.At(o, "stringData", k).(string); ok {
		return v
	}
	v, _ := k8s.At(o, "data", k).(string)
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		t.Fatalf("%s %s: %v", o, k, err)
	}
	return string(raw)
}
