#!/usr/bin/env bash
# Renders manifests/install.yaml from the chart (for `kubectl apply --server-side -f`): the
# Namespace, then the CRDs, then the operator. Also regenerates the Argo CD health checks from the
# chart's CRDs. Run hack/sync-chart-crds.sh first when crds/ changed (check-drift.sh does both).
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib/tools.sh
require_tool "$HELM"
python=$(find_python)

namespace=agility-system
out=manifests/install.yaml
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
  cat <<HEADER
# Agility: CRDs and the agility-operator, rendered from charts/agility by hack/render-manifests.sh.
# Do not edit: change the chart and re-render (CI fails when this file is stale).
# Install or upgrade: kubectl apply --server-side -f manifests/install.yaml
---
apiVersion: v1
kind: Namespace
metadata:
  name: $namespace
  labels:
    app.kubernetes.io/part-of: agility
    # The operator pods meet the restricted profile; keep anything else out of this namespace.
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
HEADER
  # --include-crds puts the CRDs first, sorted by file name, then the templates.
  "$HELM" template agility charts/agility --namespace "$namespace" \
    --kube-version "${KUBERNETES_VERSION#v}" --include-crds
} >"$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out" >&2

shopt -s nullglob
"$python" hack/argocd_health.py manifests/argocd charts/agility/crds/*.yaml
