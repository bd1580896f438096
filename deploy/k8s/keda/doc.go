// Package keda holds, as YAML beside this file, the KEDA ScaledObject that
// sizes the barista Deployment on Kubernetes by the commands queue, and the
// minimal Deployment it targets; its tests check them offline (no cluster):
// the fields KEDA and Kubernetes need, and a termination grace long enough
// for a barista to finish or hand back what it holds. See deploy/README.md.
package keda
