#!/usr/bin/env bash
# Builds the cluster components from the Go module proxy at pinned versions into
# ~/.cache/agility/<component>-<version>/bin. A build goes to <dir>.partial and is renamed when
# complete, so an interrupted build is never reused. Logs (stderr) each component's state and the
# elapsed time: the cold build time on the first run, seconds on a warm one.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# build_module NAME VERSION MODULE_DIR GO_BUILD_ARGS...: go build inside the pinned module.
build_module() {
  local name=$1 version=$2 module=$3
  shift 3
  local out=$CACHE/$name-$version
  if [ -d "$out/bin" ]; then
    log "$name $version: cached in $out (cold build took $(cat "$out/build-seconds" 2>/dev/null || echo '?')s)"
    return 0
  fi
  log "building $name $version (cold; cached afterwards in $out)"
  rm -rf "$out.partial"
  mkdir -p "$out.partial/bin"
  local start=$SECONDS
  (cd "$module" && go build -trimpath -o "$out.partial/bin/" "$@")
  echo "$((SECONDS - start))" >"$out.partial/build-seconds"
  mv "$out.partial" "$out"
  log "built $name $version in $((SECONDS - start))s"
}

command -v go >/dev/null || die "go is required (the machine image provides it)"
all_start=$SECONDS

v=k8s.io/component-base/version
build_module kubernetes "$K8S_VERSION" "$CLUSTER_DIR/components/kubernetes" \
  -ldflags "-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=34 -X $v.gitTreeState=clean \
    -X $v.buildDate=2026-01-01T00:00:00Z -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy \
  k8s.io/kubernetes/cmd/kubectl

build_module etcd "$ETCD_VERSION" "$CLUSTER_DIR/components/etcd" -ldflags "-s -w" .
# etcdctl, to read what the API server stored (e.g. that Secrets are encrypted at rest).
build_module etcdctl "$ETCD_VERSION" "$CLUSTER_DIR/components/etcdctl" -ldflags "-s -w" go.etcd.io/etcd/etcdctl/v3

# Cluster DNS, run by the node harness as a host process in the node's network namespace.
build_module coredns "$COREDNS_VERSION" "$CLUSTER_DIR/components/coredns" -ldflags "-s -w" github.com/coredns/coredns

# NetworkPolicy enforcement (iptables + ipset; see README.md for why not kube-network-policies).
build_module kube-router "$KUBE_ROUTER_VERSION" "$CLUSTER_DIR/components/kube-router" -ldflags "-s -w" \
  github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
log "components ready in $((SECONDS - all_start))s"
