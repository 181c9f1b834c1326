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
    # Same reach as the local node: route the pod and Service ranges to kind's node container, so
    # the tests connect to pod IPs and ClusterIPs and resolve names through 10.96.0.10 directly.
    node_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$CLUSTER-control-plane")
    ip route replace 10.244.0.0/16 via "$node_ip"
    ip route replace 10.96.0.0/16 via "$node_ip"
    echo "$kc"
    ;;
  down)
    ip route del 10.244.0.0/16 2>/dev/null || true
    ip route del 10.96.0.0/16 2>/dev/null || true
    "$KIND" delete cluster --name "$CLUSTER" >&2 || true
    rm -rf "$STATE_ROOT/kind"
    ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
