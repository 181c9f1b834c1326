#!/usr/bin/env bash
# Applies every sample under manifests/samples/ and waits until each custom object reports Ready.
set -euo pipefail
cd "$(dirname "$0")/.."
kubectl=${KUBECTL:-$HOME/.cache/agility/kubernetes-v1.34.4/bin/kubectl}
export KUBECONFIG=${KUBECONFIG:-/var/lib/agility-e2e/node/kubeconfig}
shopt -s nullglob
samples=(manifests/samples/*.yaml)
if [ ${#samples[@]} -eq 0 ]; then
  echo "no samples yet: no product kinds are installed" >&2
  exit 0
fi
for f in "${samples[@]}"; do
  "$kubectl" apply --server-side -f "$f" >&2
done
for f in "${samples[@]}"; do
  "$kubectl" wait --for=condition=Ready --timeout=600s -f "$f" >&2
done
"$kubectl" get agility -A
