#!/usr/bin/env bash
# deploy/nodejs.sh: make sure Node.js and npm are installed for the offline
# validation of the Kubernetes manifests (deploy/k8s: the npm models of
# kubernetes-models and @kubernetes-models/keda run with node; the test
# installs the pinned packages itself with npm ci). Idempotent: returns at
# once when node and npm are there. Needs root (apt-get), as
# deploy/brokers.sh does. Debian's nodejs (18 on bookworm) is enough.
set -euo pipefail
if command -v node >/dev/null && command -v npm >/dev/null; then
  exit 0
fi
echo "installing Node.js and npm for the manifests' validation (Debian's packages)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq nodejs npm
