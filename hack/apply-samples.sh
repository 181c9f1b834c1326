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
# Only our kinds report Ready (a sample may also hold e.g. a ResourceQuota).
for f in "${samples[@]}"; do
  mapfile -t names < <("$kubectl" get -f "$f" -o name)
  mapfile -t namespaces < <("$kubectl" get -f "$f" -o custom-columns=NS:.metadata.namespace --no-headers)
  for i in "${!names[@]}"; do
    case "${names[$i]}" in
      *.agility.dev/*) "$kubectl" wait --for=condition=Ready --timeout=600s -n "${namespaces[$i]}" "${names[$i]}" >&2 ;;
    esac
  done
done
"$kubectl" get agility -A
