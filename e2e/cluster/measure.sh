#!/usr/bin/env bash
# Prints the harness's numbers (nothing is asserted): cold build time of each component (recorded
# when it was built), warm `up` time (down, then up with everything cached), and the median start
# latency of pods running the redis image (create -> Ready) over N pods.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$CLUSTER_DIR/node.sh"
N=${N:-10}

for c in "kubernetes-$K8S_VERSION" "etcd-$ETCD_VERSION" "coredns-$COREDNS_VERSION" "kube-router-$KUBE_ROUTER_VERSION"; do
  if [ -s "$CACHE/$c/build-seconds" ]; then
    echo "cold build $c: $(cat "$CACHE/$c/build-seconds")s"
  fi
done

# Logs of down/up go to stderr; the numbers are the only stdout.
"$CLUSTER_DIR/down.sh" >/dev/null
start=$(date +%s.%N)
kc=$("$CLUSTER_DIR/up.sh" | tail -n 1)
echo "warm up (down, then up.sh until node Ready + DNS answering): $(echo "$(date +%s.%N) - $start" | bc)s"
AGILITY_CONTAINERD_ADDRESS=$CONTAINERD_SOCK "$REPO_DIR/e2e/images/images.sh" build redis >/dev/null
AGILITY_CONTAINERD_ADDRESS=$CONTAINERD_SOCK "$REPO_DIR/e2e/images/images.sh" import redis >/dev/null

k() { "$KUBECTL" --kubeconfig "$kc" "$@"; }
k create namespace measure >/dev/null
k -n measure wait --for=jsonpath='{.metadata.name}'=default serviceaccount/default --timeout=60s >/dev/null
latencies=()
for i in $(seq 1 "$N"); do
  t0=$(date +%s.%N)
  k -n measure run "redis-$i" --image=localhost/agility/redis:7.0.15 --image-pull-policy=IfNotPresent \
    --restart=Never -- --save "" --appendonly no >/dev/null
  k -n measure wait --for=condition=Ready "pod/redis-$i" --timeout=120s >/dev/null
  latencies+=("$(echo "$(date +%s.%N) - $t0" | bc)")
done
k delete namespace measure --wait=false >/dev/null
sorted=$(printf '%s\n' "${latencies[@]}" | sort -n)
median=$(echo "$sorted" | awk -v n="$N" 'NR == int((n + 1) / 2) {print}')
echo "pod start latency, redis image, $N pods (kubectl run -> Ready): median ${median}s, min $(echo "$sorted" | head -1)s, max $(echo "$sorted" | tail -1)s"
