#!/usr/bin/env bash
# Installs the pinned helm and kubeconform with `go install` (Go module proxy only) into
# ~/.cache/agility/tools/<tool>-<version>/bin/. Idempotent: an existing binary of the pinned
# version is kept. Prints one `<tool> <path>` line per tool on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib/tools.sh

command -v go >/dev/null || { echo "go is required (Go module proxy builds)" >&2; exit 1; }

# The schema generator reads YAML; lua5.1 runs the Argo CD health check's tests (Argo CD's Lua is 5.1).
missing=()
find_python >/dev/null 2>&1 || missing+=(python3-yaml)
command -v lua5.1 >/dev/null || missing+=(lua5.1)
# SoftHSM2: the KMS's PKCS#11 root key is unit-tested against it.
[ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null || missing+=(softhsm2)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (apt)" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
fi

# install <name> <module> <version> <binary path> [ldflags]
install() {
  local name=$1 module=$2 version=$3 bin=$4 ldflags=${5:-}
  local dir partial
  dir=$(dirname "$(dirname "$bin")")
  if [ -x "$bin" ] && [ -f "$dir/.ldflags" ] && [ "$(cat "$dir/.ldflags")" = "$ldflags" ]; then
    echo "$name $version already installed" >&2
  else
    # Build into a scratch dir and move it in place, so an interrupted build never leaves a
    # half-written binary that the next run would take for a finished one.
    partial="$dir.partial"
    rm -rf "$partial"
    mkdir -p "$partial/bin"
    echo "building $name $version (go install $module@$version)" >&2
    GOBIN="$partial/bin" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath" \
      go install -ldflags "-s -w $ldflags" "$module@$version" >&2
    printf '%s' "$ldflags" >"$partial/.ldflags"
    rm -rf "$dir"
    mv "$partial" "$dir"
  fi
  echo "$name $bin"
}

# Helm's release builds stamp its version and the Kubernetes version it assumes without a cluster
# (`helm template`, `helm lint`); a plain `go install` would leave v1.20 there.
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  helm_ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=$HELM_K8S_MAJOR"
  helm_ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$HELM_K8S_MINOR"
done
kubeconform_ldflags="-X main.version=$KUBECONFORM_VERSION"

install helm "$HELM_MODULE" "$HELM_VERSION" "$HELM" "$helm_ldflags"
install kubeconform "$KUBECONFORM_MODULE" "$KUBECONFORM_VERSION" "$KUBECONFORM" "$kubeconform_ldflags"

# Warm the module cache with the API documents hack/check-chart.sh validates against, so CI's
# check step does not depend on reaching the proxy.
echo "kubernetes-openapi $(go_module_dir "$KUBERNETES_MODULE@$KUBERNETES_VERSION")/api/openapi-spec/swagger.json"
echo "prometheus-operator-crds $(go_module_dir "$PROMETHEUS_OPERATOR_MODULE@$PROMETHEUS_OPERATOR_VERSION")/example/prometheus-operator-crd"

# The KMS e2e client: boto3 (a real AWS SDK) and cryptography (local AES for envelope
# encryption), pinned, in a venv keyed by the versions.
BOTO3_VERSION=1.44.8
CRYPTOGRAPHY_VERSION=50.0.2
venv="$HOME/.cache/agility/venv-kms-boto3-$BOTO3_VERSION-cryptography-$CRYPTOGRAPHY_VERSION"
# A venv records its own path, so it is built in place; `.complete` marks a finished install.
if [ ! -f "$venv/.complete" ]; then
  echo "creating $venv (pip: boto3 $BOTO3_VERSION, cryptography $CRYPTOGRAPHY_VERSION)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet "boto3==$BOTO3_VERSION" "cryptography==$CRYPTOGRAPHY_VERSION" >&2
  touch "$venv/.complete"
fi
echo "python-kms $venv/bin/python"
