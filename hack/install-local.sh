#!/usr/bin/env bash
# Installs the operator and the KMS on the local cluster from manifests/install.yaml and waits until
# both are Available.
set -euo pipefail
cd "$(dirname "$0")/.."
kubectl=${KUBECTL:-$HOME/.cache/agility/kubernetes-v1.34.4/bin/kubectl}
export KUBECONFIG=${KUBECONFIG:-/var/lib/agility-e2e/node/kubeconfig}
namespace=${NAMESPACE:-agility-system}
existed=false
"$kubectl" -n "$namespace" get deployment/agility-operator >/dev/null 2>&1 && existed=true
# The KMS runs the same image as a Deployment of its own.
deployments=(deployment/agility-operator deployment/agility-kms)
"$kubectl" apply --server-side --force-conflicts -f manifests/install.yaml >&2
# The local node has 2 cores: let data pods request a fraction of what their class promises (the
# limits stay as the class says). Real clusters keep the chart default of 100%.
"$kubectl" -n "$namespace" set env deployment/agility-operator \
  AGILITY_REDIS_REQUEST_PERCENT="${AGILITY_REDIS_REQUEST_PERCENT:-5}" \
  AGILITY_RDS_REQUEST_PERCENT="${AGILITY_RDS_REQUEST_PERCENT:-5}" >&2
# A rebuilt operator image keeps its tag, so a running Deployment needs a restart to pick it up.
if $existed; then
  "$kubectl" -n "$namespace" rollout restart "${deployments[@]}" >&2
fi
for d in "${deployments[@]}"; do
  "$kubectl" -n "$namespace" rollout status "$d" --timeout=180s >&2
done
