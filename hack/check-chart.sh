#!/usr/bin/env bash
# Chart checks, fully offline: `helm lint --strict`, then `helm template | kubeconform -strict`
# against Kubernetes 1.34 schemas generated from the k8s.io/kubernetes module's OpenAPI document
# and against our own CRDs' schemas, plus hack/chart_policy.py (no RBAC wildcards, restricted pods).
# Renders several value sets so optional templates (monitoring, every product) are checked too.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib/tools.sh
require_tool "$HELM"
require_tool "$KUBECONFORM"
python=$(find_python)

chart=charts/agility
k8s=${KUBERNETES_VERSION#v}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Built-in kinds: generated once per Kubernetes version and generator revision.
swagger="$(go_module_dir "$KUBERNETES_MODULE@$KUBERNETES_VERSION")/api/openapi-spec/swagger.json"
builtin="$AGILITY_CACHE/kubeconform-schemas-$KUBERNETES_VERSION"
stamp=$(sha256sum hack/kubeconform_schemas.py "$swagger" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$builtin/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$builtin.partial"
  "$python" hack/kubeconform_schemas.py builtin "$swagger" "$builtin.partial" "$k8s"
  echo "$stamp" >"$builtin.partial/.stamp"
  rm -rf "$builtin"
  mv "$builtin.partial" "$builtin"
fi

# Custom kinds: ours (regenerated every run, they change with the code) and the Prometheus
# Operator's, for the optional ServiceMonitor and PrometheusRule.
promcrds="$(go_module_dir "$PROMETHEUS_OPERATOR_MODULE@$PROMETHEUS_OPERATOR_VERSION")/example/prometheus-operator-crd"
shopt -s nullglob
our_crds=("$chart"/crds/*.yaml)
"$python" hack/kubeconform_schemas.py crds "$swagger" "$work/crd-schemas" \
  "${our_crds[@]}" "$promcrds/monitoring.coreos.com_servicemonitors.yaml" \
  "$promcrds/monitoring.coreos.com_prometheusrules.yaml"

kubeconform() {
  "$KUBECONFORM" -strict -summary -kubernetes-version "$k8s" \
    -schema-location "$builtin" \
    -schema-location "$work/crd-schemas/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
    "$@"
}

# Every product controller listed in values.yaml, enabled at once: proves each has its RBAC template.
all_controllers=()
while read -r name; do
  [ -n "$name" ] && all_controllers+=(--set "controllers.$name.enabled=true")
done < <("$python" -c 'import sys, yaml; [print(k) for k in (yaml.safe_load(open(sys.argv[1])).get("controllers") or {})]' "$chart/values.yaml")

scenarios=(
  "defaults|"
  "monitoring|--set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true"
  "single-replica|--set operator.replicas=1 --set operator.leaderElection.enabled=false --set operator.podAntiAffinity=none"
  "hard-anti-affinity+digests|--set operator.podAntiAffinity=hard --set operator.image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000 --set images.redis.digest=sha256:1111111111111111111111111111111111111111111111111111111111111111"
  "all-controllers|${all_controllers[*]:-}"
)

failed=0
for scenario in "${scenarios[@]}"; do
  name=${scenario%%|*}
  read -r -a args <<<"${scenario#*|}"
  echo "== $name" >&2
  if ! "$HELM" lint --strict --kube-version "$k8s" "$chart" "${args[@]}" >"$work/lint.log" 2>&1; then
    cat "$work/lint.log" >&2
    failed=1
    continue
  fi
  if ! "$HELM" template agility "$chart" --namespace agility-system --kube-version "$k8s" \
    --include-crds "${args[@]}" >"$work/rendered.yaml"; then
    failed=1
    continue
  fi
  kubeconform "$work/rendered.yaml" || failed=1
  "$python" hack/chart_policy.py <"$work/rendered.yaml" || failed=1
done

# The committed install manifests, GitOps snippets and samples.
echo "== manifests/" >&2
manifest_files=(manifests/install.yaml manifests/argocd/health-checks*.yaml manifests/samples/*.yaml)
kubeconform "${manifest_files[@]}" || failed=1
"$python" hack/chart_policy.py <manifests/install.yaml || failed=1

# The Argo CD health check shipped in manifests/argocd, run by Lua 5.1 as Argo CD runs it.
echo "== argocd health.lua" >&2
if command -v lua5.1 >/dev/null; then
  "$python" hack/argocd_health.py test || failed=1
else
  echo "lua5.1 missing: run hack/install-tools.sh" >&2
  failed=1
fi

if [ "$failed" -ne 0 ]; then
  echo "check-chart: FAILED" >&2
  exit 1
fi
echo "check-chart: ok (${#scenarios[@]} value sets + manifests)" >&2
