// Package k8s renders and checks cafe's Kubernetes manifests offline: the
// kustomize base (deploy/k8s/base) and its dev overlay
// (deploy/k8s/overlays/dev), with no cluster.
//
// Render builds a kustomization with kustomize's own library, as `kubectl
// apply -k` does. Schemas validates every rendered object (k8s.io/api's
// Go types decoded strictly; the npm models kubernetes-models and
// @kubernetes-models/keda, run with node; JSON Schemas made from the
// operators' CRDs, vendored with their versions in validate/crds). Lint
// checks what schemas cannot: references resolve, selectors select,
// every variable given to a container of cafe's is a setting of the
// program it runs, resources and image tags are set. The tests (go test
// ./deploy/k8s) run all of it on the overlay, check the manifests against
// cafe's own code (topology, RabbitMQ grants, settings, ops routes,
// shutdown graces, the dev secrets against their key), and break the
// manifests on purpose to show that each check fails. deploy/README.md,
// "Kubernetes", says how to apply them.
package k8s
