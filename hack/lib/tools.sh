# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Sourced by hack/*.sh: pinned tool versions and where they live. One place to bump a version.
# The cache directory is keyed by tool and version, so a bump installs alongside the old build
# instead of silently reusing it.
AGILITY_CACHE=${AGILITY_CACHE:-$HOME/.cache/agility}
AGILITY_TOOLS=${AGILITY_TOOLS:-$AGILITY_CACHE/tools}

HELM_VERSION=v3.19.5
HELM_MODULE=helm.sh/helm/v3/cmd/helm
# The Kubernetes minor Helm's client libraries target (k8s.io/client-go v0.34 in helm v3.19).
HELM_K8S_MAJOR=1
HELM_K8S_MINOR=34
KUBECONFORM_VERSION=v0.7.0
KUBECONFORM_MODULE=github.com/yannh/kubeconform/cmd/kubeconform

# The Kubernetes release whose API schemas validate our manifests (matches the e2e cluster).
KUBERNETES_VERSION=v1.34.4

HELM=${HELM:-$AGILITY_TOOLS/helm-$HELM_VERSION/bin/helm}
KUBECONFORM=${KUBECONFORM:-$AGILITY_TOOLS/kubeconform-$KUBECONFORM_VERSION/bin/kubeconform}
KUBECTL=${KUBECTL:-$AGILITY_CACHE/kubernetes-$KUBERNETES_VERSION/bin/kubectl}

# Fails with the command to run when a pinned tool is missing.
require_tool() {
  local path=$1
  if [ ! -x "$path" ]; then
    echo "missing $path: run hack/install-tools.sh (or make setup)" >&2
    return 1
  fi
}

# Modules whose shipped API documents we validate against (fetched with `go mod download`, the same
# way the Kubernetes build fetches k8s.io/kubernetes): the Kubernetes OpenAPI document and the
# Prometheus Operator CRDs (ServiceMonitor, PrometheusRule).
KUBERNETES_MODULE=k8s.io/kubernetes
PROMETHEUS_OPERATOR_MODULE=github.com/prometheus-operator/prometheus-operator
PROMETHEUS_OPERATOR_VERSION=v0.85.0

# A python3 that can import yaml (the pyenv one or Debian's python3-yaml).
find_python() {
  local p
  for p in ${PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import yaml' 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "no python3 with PyYAML: apt-get install python3-yaml (hack/install-tools.sh does)" >&2
  return 1
}

# Prints the extracted directory of a Go module version, downloading it through the module proxy
# when the module cache lacks it.
go_module_dir() {
  local mod=$1 python
  python=$(find_python)
  (cd / && GOFLAGS=-mod=mod go mod download -json "$mod") |
    "$python" -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["Error"]) if d.get("Error") else print(d["Dir"])'
}
