#!/usr/bin/env bash
# Brings up the single-node cluster and prints its kubeconfig path as the last line of stdout
# (logs go to stderr). Idempotent: a healthy cluster is a quick no-op, a half-started one is
# completed. Uses kind instead where Docker works (or AGILITY_CLUSTER_PROVIDER=kind).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$CLUSTER_DIR/node.sh"

if [ "${AGILITY_CLUSTER_PROVIDER:-}" = kind ] || { [ -z "${AGILITY_CLUSTER_PROVIDER:-}" ] && docker info >/dev/null 2>&1; }; then
  exec "$CLUSTER_DIR/kind.sh" up
fi

[ "$(id -u)" = 0 ] || die "the local node needs root (network namespace, mounts, containerd)"
healthy() {
  local d
  for d in "${NODE_DAEMONS[@]}"; do pid_alive "$PIDS/$d.pid" || return 1; done
  node_kubectl get --raw /readyz >/dev/null 2>&1 &&
    [ "$(node_kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
if healthy; then
  log "node already up"
  echo "$KUBECONFIG_FILE"
  exit 0
fi

start=$SECONDS
[ -x "$K8S_BIN/kubelet" ] && [ -x "$ETCD_BIN/etcd" ] && [ -x "$COREDNS_BIN/coredns" ] && [ -x "$KUBE_ROUTER_BIN/kube-router" ] ||
  "$CLUSTER_DIR/build-components.sh"
command -v containerd >/dev/null || die "containerd is missing: run e2e/cluster/setup-host.sh"
mkdir -p "$DIR" "$PKI" "$PIDS" "$LOGS" "$RUN_DIR"
record_host_paths
setup_network
make_pki
write_configs
start_control_plane
start_node

wait_for 120 "node $NODE_NAME Ready" bash -c \
  "[ \"\$('$KUBECTL' --kubeconfig '$KUBECONFIG_FILE' get node $NODE_NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}')\" = True ]"
wait_for 60 "ServiceAccount default" node_kubectl -n default get serviceaccount default
wait_for 60 "kube-proxy rules for the kubernetes Service" \
  bash -c "nsenter --net=$NETNS_PATH iptables -t nat -S KUBE-SERVICES | grep -q -- '-d $KUBERNETES_SVC_IP/32'"
wait_for 60 "CoreDNS answering through $DNS_IP" \
  bash -c "dig +short +time=1 +tries=1 @$DNS_IP kubernetes.default.svc.cluster.local | grep -qx $KUBERNETES_SVC_IP"
log "node up in $((SECONDS - start))s (Kubernetes $K8S_VERSION; logs in $LOGS)"
echo "$KUBECONFIG_FILE"
