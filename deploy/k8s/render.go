package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Object is one rendered Kubernetes object, as JSON decodes it (numbers
// are float64).
type Object map[string]any

// APIVersion, Kind and Name say which object o is.
func (o Object) APIVersion() string { s, _ := o["apiVersion"].(string); return s }
func (o Object) Kind() string       { s, _ := o["kind"].(string); return s }
func (o Object) Name() string       { s, _ := At(o, "metadata", "name").(string); return s }

// String names o in errors: Kind/name.
func (o Object) String() string { return o.Kind() + "/" + o.Name() }

// Render builds the kustomization in dir as `kubectl apply -k dir` would
// (kustomize's own library, default options: files only from inside each
// kustomization's folder).
func Render(dir string) ([]Object, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var out []Object
	for _, r := range m.Resources() {
		raw, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		var o Object
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		out = append(out, o)
	}
	return out, nil
}

// At is the value at path in v (maps by key, lists by index), or nil.
func At(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			if o, ok := v.(Object); ok {
				m = o
			}
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k < 0 || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// Find is the object of kind and name in objs, or nil.
func Find(objs []Object, kind, name string) Object {
	for _, o := range objs {
		if o.Kind() == kind && o.Name() == name {
			return o
		}
	}
	return nil
}

// Clone is a deep copy of objs, for tests that break one on purpose.
func Clone(objs []Object) []Object {
	raw, _ := json.Marshal(objs)
	var out []Object
	_ = json.Unmarshal(raw, &out)
	return out
}

// strictDecode decodes o into v, refusing fields v does not have.
func strictDecode(o Object, v any) error {
	raw, err := json.Marshal(o)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("as %T: %w", v, err)
	}
	return nil
}
