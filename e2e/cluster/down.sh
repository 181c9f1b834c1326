#!/usr/bin/env bash
# Tears the single-node cluster down completely and checks that nothing is left: containers and
# sandboxes, processes (by PID), mounts, cgroups, network namespaces, the veth pair, host routes,
# firewall state (the harness adds none on the host), host paths the components create and state
# directories. The checklist is in README.md ("What down.sh removes and checks").
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$CLUSTER_DIR/node.sh"

if [ "${AGILITY_CLUSTER_PROVIDER:-}" = kind ] || { [ -z "${AGILITY_CLUSTER_PROVIDER:-}" ] && docker info >/dev/null 2>&1; }; then
  exec "$CLUSTER_DIR/kind.sh" down
fi
[ "$(id -u)" = 0 ] || die "the local node needs root to be removed"

# 1. The kubelet first, so it restarts nothing we remove; then every container and sandbox
#    through containerd. The shims are containerd's children, not ours to kill by name, so a
#    containerd that died is started again (same config, PID-tracked) just to remove them.
stop_daemon "$PIDS" kubelet
if ! pid_alive "$PIDS/containerd.pid" && [ -s "$DIR/containerd/config.toml" ] && [ -e "$NETNS_PATH" ] &&
  [ -d "$DIR/containerd/root" ]; then
  log "containerd is not running; starting it to remove the containers it owns"
  start_daemon "$PIDS" containerd "$LOGS/containerd.log" \
    nsenter --net="$NETNS_PATH" containerd --config "$DIR/containerd/config.toml"
  wait_for 30 "containerd" ctr --address "$CONTAINERD_SOCK" version
fi
if pid_alive "$PIDS/containerd.pid"; then
  ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
  tasks=$(ctr_ tasks ls -q 2>/dev/null || true)
  for task in $tasks; do
    ctr_ tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
  done
  for task in $tasks; do
    for _ in $(seq 1 50); do
      ctr_ tasks delete -f "$task" >/dev/null 2>&1 && break
      ctr_ tasks ls -q 2>/dev/null | grep -qx "$task" || break
      sleep 0.1
    done
  done
  n=0
  for c in $(ctr_ containers ls -q 2>/dev/null || true); do
    ctr_ containers delete "$c" >/dev/null 2>&1 && n=$((n + 1))
  done
  if [ "$n" -gt 0 ]; then
    log "removed $n containers and sandboxes ($(ctr_ containers ls -q 2>/dev/null | wc -l) left)"
  fi
fi

# 2. Every daemon by its PID file: the node's first (their clients go before the API server),
#    then the control plane, each group at once.
stop_daemons "$PIDS" kube-router coredns kube-proxy containerd
stop_daemons "$PIDS" kube-scheduler kube-controller-manager kube-apiserver
stop_daemon "$PIDS" etcd
for d in "${NODE_DAEMONS[@]}"; do
  stop_daemon "$PIDS" "$d"
done

# 3. Mounts under our directories (pod volumes, overlay rootfs, sandbox /dev/shm, pod network
#    namespaces, the kubelet's shared bind mount), deepest first.
for root in "$DIR/" "$RUN_ROOT/" /run/netns/cni-; do
  awk -v r="$root" 'index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null && log "unmounted $m"
  done
done
mountpoint -q "$DIR" 2>/dev/null && umount -l "$DIR" && log "unmounted $DIR"

# 4. The pods' cgroups (the kubelet's cgroupfs driver makes kubepods/ in every hierarchy; runc
#    removes only the containers' own), and k8s.io/, which containerd makes for tasks started in
#    its k8s.io namespace outside the CRI (`ctr run`, as the images self-test does). rmdir only
#    removes empty cgroups, so nothing in use goes.
for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/k8s.io; do
  [ -d "$h" ] || continue
  find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  [ -d "$h" ] || log "removed cgroup $h"
done

# 5. Pod network namespaces the CNI plugins created, and our own.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^cni-' || true); do
  ip netns delete "$ns" 2>/dev/null && log "deleted netns $ns"
done
if [ -e "$NETNS_PATH" ]; then
  ip netns delete "$NETNS" && log "deleted netns $NETNS"
fi

# 6. Host side of the network: the veth goes with the namespace; routes go with the veth.
if ip link show "$VETH_HOST" >/dev/null 2>&1; then
  ip link delete "$VETH_HOST" && log "deleted veth $VETH_HOST"
fi
ip route del "$POD_CIDR" 2>/dev/null && log "deleted route $POD_CIDR" || true
ip route del "$SERVICE_CIDR" 2>/dev/null && log "deleted route $SERVICE_CIDR" || true

# 7. What the components leave outside our directories: the kubelet's log symlinks pointing into
#    our state and its device-plugin socket, libcni's cached results for our network, and the
#    host paths that did not exist before the first up (removed only when nothing else is in them).
for l in /var/log/containers/*.log; do
  [ -L "$l" ] || continue
  case "$(readlink "$l")" in "$DIR"/* | /var/log/pods/*) rm -f "$l" ;; esac
done
rm -f /var/lib/kubelet/device-plugins/kubelet.sock
# Volumes of the hostPath provisioner (StorageClass local-hostpath): only this node uses it.
if [ -d /tmp/hostpath_pv ]; then
  rm -rf /tmp/hostpath_pv && log "removed /tmp/hostpath_pv (hostPath volumes)"
fi
for r in /var/lib/cni/results/agility-*-eth0; do
  [ -e "$r" ] || continue
  id=${r#/var/lib/cni/results/agility-}
  id=${id%-eth0}
  rm -f "$r" "/var/lib/cni/results/cni-loopback-$id-lo"
done
if [ -s "$HOST_PATHS_RECORD" ]; then
  while read -r p; do
    case "$p" in
      /run/netns)
        if [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
          while mountpoint -q /run/netns; do umount /run/netns || break; done
          rmdir /run/netns && log "removed /run/netns"
        fi
        ;;
      *)
        # /var/log/pods only ever held our pods' logs if it did not exist before.
        [ "$p" = /var/log/pods ] && rm -rf /var/log/pods
        [ -d "$p" ] && find "$p" -depth -type d -empty -delete 2>/dev/null
        [ -e "$p" ] || log "removed $p"
        ;;
    esac
  done <"$HOST_PATHS_RECORD"
fi

# 8. State.
rm -rf "$DIR" "$RUN_ROOT/containerd" "$RUN_DIR"
# The shared roots go when the API-server tier does not use them either.
rmdir "$RUN_ROOT" "$STATE_ROOT" 2>/dev/null || true

# The checklist: fail loudly if anything survived.
left=()
for d in "${NODE_DAEMONS[@]}"; do [ -e "$PIDS/$d.pid" ] && left+=("pid file $d"); done
pgrep -f -- "--config $DIR/" >/dev/null && left+=("processes started with $DIR configs")
pgrep -f -- "-address $CONTAINERD_SOCK" >/dev/null && left+=("containerd shims")
grep -qE " ($DIR|$RUN_ROOT)[/ ]" /proc/self/mounts && left+=("mounts under $DIR or $RUN_ROOT")
grep -q " /run/netns/cni-" /proc/self/mounts && left+=("pod netns mounts")
compgen -G "/sys/fs/cgroup/*/kubepods" >/dev/null && left+=("kubepods cgroups")
compgen -G "/sys/fs/cgroup/*/k8s.io" >/dev/null && left+=("k8s.io cgroups")
[ -e "$NETNS_PATH" ] && left+=("netns $NETNS")
ip netns list 2>/dev/null | grep -q '^cni-' && left+=("cni-* network namespaces")
ip link show "$VETH_HOST" >/dev/null 2>&1 && left+=("veth $VETH_HOST")
ip link show cni0 >/dev/null 2>&1 && left+=("host bridge cni0")
ip route show | grep -qE "^($POD_CIDR|$SERVICE_CIDR) " && left+=("host routes")
iptables-save 2>/dev/null | grep -qiE 'KUBE-|KUBE-ROUTER|agility' && left+=("host iptables rules")
ipset list -n 2>/dev/null | grep -qiE '^(KUBE-|inet6?:KUBE-)' && left+=("host ipsets")
compgen -G "/var/lib/cni/results/agility-*" >/dev/null && left+=("libcni results")
for l in /var/log/containers/*.log; do
  [ -L "$l" ] && case "$(readlink "$l")" in "$DIR"/*) left+=("log symlink $l") ;; esac
done
[ -e "$DIR" ] && left+=("state dir $DIR")
[ -e "$RUN_ROOT/containerd" ] && left+=("state dir $RUN_ROOT/containerd")
if [ ${#left[@]} -gt 0 ]; then
  die "left behind: ${left[*]}"
fi
log "down: no processes, containers, mounts, cgroups, namespaces, interfaces, routes, firewall rules, host paths or state left"
