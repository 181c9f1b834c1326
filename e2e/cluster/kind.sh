#!/usr/bin/env bash
# The kind path for machines with Docker: same images (loaded from the OCI archives), same tests.
# It cannot run on the project's own machines (no Docker engine); CI does not exercise it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
KIND_VERSION=v0.30.0
KIND=$CACHE/kind-$KIND_VERSION/bin/kind
CLUSTER=${AGILITY_KIND_CLUSTER:-agility}
if [ ! -x "$KIND" ]; then
  GOBIN=$CACHE/kind-$KIND_VERSION/bin go install "sigs.k8s.io/kind@$KIND_VERSION"
fi
case "${1:-}" in
  up)
    if ! "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
      "$KIND" create cluster --name "$CLUSTER" --config "$REPO_DIR/e2e/kind/kind-config.yaml" >&2
    fi
    kc=$STATE_ROOT/kind/kubeconfig
    mkdir -p "$(dirname "$kc")"
    "$KIND" get kubeconfig --name "$CLUSTER" >"$kc"
    PATH=$(dirname "$KIND"):$PATH "$REPO_DIR/e2e/images/images.sh" import --all --kind "$CLUSTER" >&2
    echo "$kc"
    ;;
  down)
    "$KIND" delete cluster --name "$CLUSTER" >&2 || true
    rm -rf "$STATE_ROOT/kind"
    ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
