#!/usr/bin/env bash
# Tier 1: etcd + kube-apiserver only (no kubelet), on loopback, for controller tests against a real
# API server. `up` prints the kubeconfig path as its last line; `down` stops both by PID and removes
# the state directory. Ports differ from the full node's, so both tiers can run at once.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DIR=$STATE_ROOT/apiserver
PIDS=$DIR/pids
ETCD_PORT=${AGILITY_T1_ETCD_PORT:-22379}
API_PORT=${AGILITY_T1_API_PORT:-16443}
KUBECONFIG_FILE=$DIR/kubeconfig
# kubectl's discovery cache in our state dir rather than ~/.kube, so `down` removes it.
export KUBECACHEDIR=$DIR/kubectl-cache

healthy() {
  pid_alive "$PIDS/etcd.pid" && pid_alive "$PIDS/kube-apiserver.pid" &&
    "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null 2>&1
}

up() {
  [ -x "$K8S_BIN/kube-apiserver" ] && [ -x "$ETCD_BIN/etcd" ] && [ -x "$ETCDCTL" ] || "$CLUSTER_DIR/build-components.sh"
  if healthy; then
    log "tier 1 already up"
    echo "$KUBECONFIG_FILE"
    return 0
  fi
  local start=$SECONDS
  mkdir -p "$DIR/pki" "$DIR/logs"
  new_ca "$DIR/pki"
  new_cert "$DIR/pki" apiserver "/CN=kube-apiserver" serverAuth \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.97.0.1"
  new_cert "$DIR/pki" admin "/O=system:masters/CN=agility-e2e-admin" clientAuth
  new_sa_keypair "$DIR/pki"
  write_kubeconfig "$KUBECONFIG_FILE" "https://127.0.0.1:$API_PORT" "$DIR/pki" admin

  start_etcd "$PIDS" "$DIR/logs/etcd.log" tier1 "$DIR/etcd" "$ETCD_PORT" 1073741824

  start_daemon "$PIDS" kube-apiserver "$DIR/logs/kube-apiserver.log" "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$DIR/pki/apiserver.crt" --tls-private-key-file "$DIR/pki/apiserver.key" \
    --client-ca-file "$DIR/pki/ca.crt" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --service-account-key-file "$DIR/pki/sa.pub" --service-account-signing-key-file "$DIR/pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 10.97.0.0/16 \
    --profiling=false
  wait_for 90 "kube-apiserver /readyz" "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz
  # Namespace "default" is created by the apiserver's own controller shortly after readiness.
  wait_for 30 "namespace default" "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get namespace default
  log "tier 1 up in $((SECONDS - start))s (kube-apiserver $K8S_VERSION, etcd $ETCD_VERSION)"
  echo "$KUBECONFIG_FILE"
}

down() {
  stop_daemon "$PIDS" kube-apiserver
  stop_daemon "$PIDS" etcd
  rm -rf "$DIR"
  rmdir "$STATE_ROOT" 2>/dev/null || true
  log "tier 1 down; removed $DIR"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
