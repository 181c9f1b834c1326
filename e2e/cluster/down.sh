#!/usr/bin/env bash
# Tears the single-node cluster down completely and checks that nothing is left:
# containers and sandboxes, processes (by PID), mounts, network namespaces, the veth pair, host
# routes, firewall state (the harness adds none on the host) and state directories.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$CLUSTER_DIR/node.sh"

if [ "${AGILITY_CLUSTER_PROVIDER:-}" = kind ] || { [ -z "${AGILITY_CLUSTER_PROVIDER:-}" ] && docker info >/dev/null 2>&1; }; then
  exec "$CLUSTER_DIR/kind.sh" down
fi

# 1. Stop the kubelet first so it does not restart what we remove, then every container and
#    sandbox through containerd (their shims are containerd's children, not ours to kill by name).
stop_daemon "$PIDS" kubelet
if pid_alive "$PIDS/containerd.pid"; then
  ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
  for task in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
  done
  sleep 1
  for task in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks delete -f "$task" >/dev/null 2>&1 || true
  done
  for c in $(ctr_ containers ls -q 2>/dev/null); do
    ctr_ containers delete "$c" >/dev/null 2>&1 || true
  done
  log "removed containers: $(ctr_ containers ls -q 2>/dev/null | wc -l) left"
fi

# 2. Every daemon by its PID file, in reverse start order.
for d in "${NODE_DAEMONS[@]}"; do
  stop_daemon "$PIDS" "$d"
done

# 3. Mounts under our directories (pod volumes, overlay rootfs, sandbox netns, the kubelet's
#    shared bind mount), deepest first.
for root in "$DIR" "$RUN_ROOT" /run/netns/cni-; do
  awk -v r="$root" 'index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null && log "unmounted $m"
  done
done

# 4. Pod network namespaces the CNI plugins created, and our own.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^cni-' || true); do
  ip netns delete "$ns" 2>/dev/null && log "deleted netns $ns"
done
if [ -e "$NETNS_PATH" ]; then
  ip netns delete "$NETNS" && log "deleted netns $NETNS"
fi

# 5. Host side of the network: the veth goes with the namespace; routes go with the veth.
ip link delete "$VETH_HOST" 2>/dev/null && log "deleted veth $VETH_HOST" || true
ip route del "$POD_CIDR" 2>/dev/null || true
ip route del "$SERVICE_CIDR" 2>/dev/null || true

# 6. State.
rm -rf "$DIR" "$RUN_ROOT/containerd" "$RUN_DIR" /var/lib/cni/networks/agility /var/lib/cni/results/agility-* 2>/dev/null || true

# The checklist: fail loudly if anything survived.
left=()
for d in "${NODE_DAEMONS[@]}"; do [ -e "$PIDS/$d.pid" ] && left+=("pid file $d"); done
grep -qE " ($DIR|$RUN_ROOT)" /proc/self/mounts && left+=("mounts under $DIR or $RUN_ROOT")
[ -e "$NETNS_PATH" ] && left+=("netns $NETNS")
ip netns list 2>/dev/null | grep -q '^cni-' && left+=("cni-* network namespaces")
ip link show "$VETH_HOST" >/dev/null 2>&1 && left+=("veth $VETH_HOST")
ip route show | grep -qE "^($POD_CIDR|$SERVICE_CIDR) " && left+=("host routes")
iptables-save 2>/dev/null | grep -qiE 'KUBE-|agility' && left+=("host iptables rules")
[ -e "$DIR" ] && left+=("state dir $DIR")
if [ ${#left[@]} -gt 0 ]; then
  die "left behind: ${left[*]}"
fi
log "down: no processes, mounts, namespaces, interfaces, routes, firewall rules or state left"
