#!/usr/bin/env bash
# Installs the operator on the local cluster from manifests/install.yaml and waits until it is Available.
set -euo pipefail
cd "$(dirname "$0")/.."
kubectl=${KUBECTL:-$HOME/.cache/agility/kubernetes-v1.34.4/bin/kubectl}
export KUBECONFIG=${KUBECONFIG:-/var/lib/agility-e2e/node/kubeconfig}
namespace=${NAMESPACE:-agility-system}
"$kubectl" apply --server-side --force-conflicts -f manifests/install.yaml >&2
# A new operator image under an unchanged tag needs a restart to be picked up.
"$kubectl" -n "$namespace" rollout restart deployment/agility-operator >&2
"$kubectl" -n "$namespace" rollout status deployment/agility-operator --timeout=180s >&2
