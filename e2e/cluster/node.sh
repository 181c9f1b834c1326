# shellcheck shell=bash
# The local single node: layout, configuration files and the start order. Sourced by up.sh,
# down.sh and measure.sh, never run.
#
# The node's networking lives in its own network namespace, so nothing touches the host's
# interfaces or firewall except one veth pair and two routes:
#
#   host  10.250.0.1/30  agn-host <-> agn-node  10.250.0.2/30  netns agility-node
#         routes 10.244.0.0/24 (pods), 10.96.0.0/16 (Services) via 10.250.0.2
#
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler run on the host (the API server
# on 10.250.0.1:6443); containerd, kubelet, kube-proxy, CoreDNS and kube-router run inside the
# namespace through `nsenter --net` (not `ip netns exec`, which would also give them a private
# mount namespace and hide containerd's mounts from the kubelet).

NODE_NAME=agility-node
NETNS=agility-node
NETNS_PATH=/run/netns/$NETNS
VETH_HOST=agn-host
VETH_NODE=agn-node
HOST_IP=10.250.0.1
NODE_IP=10.250.0.2
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
DNS_IP=10.96.0.10
API_PORT=6443
ETCD_PORT=32379

DIR=$STATE_ROOT/node
PKI=$DIR/pki
PIDS=$DIR/pids
LOGS=$DIR/logs
KUBECONFIG_FILE=$DIR/kubeconfig
RUN_DIR=$RUN_ROOT/node
CONTAINERD_SOCK=$RUN_ROOT/containerd/containerd.sock
KUBELET_DIR=$DIR/kubelet

in_node() { nsenter --net="$NETNS_PATH" "$@"; }

# kubectl's discovery cache lives in the node's state, not in ~/.kube, so down.sh removes it.
export KUBECACHEDIR=$DIR/kubectl-cache

# Host paths the node's components create outside our state directories whatever they are told:
# the kubelet's device-plugin socket and log symlinks are hard-coded, containerd 1.6 keeps shim
# sockets and runc state under /run/containerd, libcni caches results under /var/lib/cni and
# `ip netns add` bind-mounts /run/netns onto itself. up.sh records which of them did not exist
# before the first start; down.sh removes those (when empty) and our entries in the others.
HOST_PATHS=(/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /run/containerd /run/netns)
HOST_PATHS_RECORD=$DIR/host-paths-created

record_host_paths() {
  [ -e "$HOST_PATHS_RECORD" ] && return 0
  local p
  mkdir -p "$DIR"
  : >"$HOST_PATHS_RECORD.tmp"
  for p in "${HOST_PATHS[@]}"; do
    [ -e "$p" ] || echo "$p" >>"$HOST_PATHS_RECORD.tmp"
  done
  mv "$HOST_PATHS_RECORD.tmp" "$HOST_PATHS_RECORD"
}

node_kubectl() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

setup_network() {
  if [ ! -e "$NETNS_PATH" ]; then
    ip netns add "$NETNS"
    log "created network namespace $NETNS"
  fi
  if ! ip link show "$VETH_HOST" >/dev/null 2>&1; then
    ip link add "$VETH_HOST" type veth peer name "$VETH_NODE"
    ip link set "$VETH_NODE" netns "$NETNS"
    ip addr add "$HOST_IP/30" dev "$VETH_HOST"
    ip link set "$VETH_HOST" up
    in_node ip addr add "$NODE_IP/30" dev "$VETH_NODE"
    in_node ip link set "$VETH_NODE" up
    in_node ip link set lo up
    in_node ip route add default via "$HOST_IP"
    log "created veth $VETH_HOST <-> $VETH_NODE"
  fi
  ip route replace "$POD_CIDR" via "$NODE_IP" dev "$VETH_HOST"
  ip route replace "$SERVICE_CIDR" via "$NODE_IP" dev "$VETH_HOST"
  # Forwarding and the bridge netfilter hooks only inside the node's namespace.
  in_node sysctl -qw net.ipv4.ip_forward=1
  in_node sysctl -qw net.ipv4.conf.all.route_localnet=1
  in_node sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
}

make_pki() {
  new_ca "$PKI"
  new_sa_keypair "$PKI"
  new_cert "$PKI" apiserver "/CN=kube-apiserver" serverAuth \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$HOST_IP,IP:$KUBERNETES_SVC_IP"
  new_cert "$PKI" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  new_cert "$PKI" admin "/O=system:masters/CN=agility-e2e-admin" clientAuth
  new_cert "$PKI" controller-manager "/CN=system:kube-controller-manager" clientAuth
  new_cert "$PKI" scheduler "/CN=system:kube-scheduler" clientAuth
  new_cert "$PKI" kube-proxy "/CN=system:kube-proxy" clientAuth
  new_cert "$PKI" kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  new_cert "$PKI" kubelet-serving "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,IP:$NODE_IP"
  new_cert "$PKI" coredns "/CN=agility:coredns" clientAuth
  new_cert "$PKI" kube-router "/CN=agility:kube-router" clientAuth
  # Front proxy (API aggregation): its own CA, so its client cert cannot log in as a user.
  new_ca "$PKI/front-proxy"
  new_cert "$PKI/front-proxy" front-proxy-client "/CN=front-proxy-client" clientAuth
  local server="https://$HOST_IP:$API_PORT" c
  for c in admin controller-manager scheduler kube-proxy kubelet coredns kube-router; do
    write_kubeconfig "$DIR/$c.kubeconfig" "$server" "$PKI" "$c"
  done
  cp "$DIR/admin.kubeconfig" "$KUBECONFIG_FILE"
}

write_configs() {
  mkdir -p "$DIR/cni/net.d" "$DIR/containerd" "$KUBELET_DIR"
  cat >"$DIR/cni/net.d/10-agility.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "agility",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$DIR/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
  cat >"$DIR/containerd/config.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$RUN_ROOT/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$RUN_ROOT/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/agility/pause:3.10"
  restrict_oom_score_adj = true
  tolerate_missing_hugetlb_controller = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
EOF
  # Pods use the cluster DNS; this file only seeds the kubelet's search path.
  echo "nameserver $DNS_IP" >"$DIR/resolv.conf"
  cat >"$DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $DIR/resolv.conf
failSwapOn: false
podLogsDir: $DIR/pod-logs
oomScoreAdj: 0
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
healthzBindAddress: $NODE_IP
healthzPort: 10248
EOF
  cat >"$DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $DIR/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
nodePortAddresses: [primary]
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: $NODE_IP:10256
metricsBindAddress: $NODE_IP:10249
oomScoreAdj: 0
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  cat >"$DIR/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    health $NODE_IP:8080
    ready $NODE_IP:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $DIR/coredns.kubeconfig agility-e2e
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
}

# RBAC for the two host-process add-ons, and the selectorless kube-dns Service whose endpoint is
# CoreDNS on the node address.
apply_addons() {
  node_kubectl apply --server-side --force-conflicts -f - >&2 <<EOF
# Volumes for PVCs (the ObjectStore's nodes): the controller-manager's built-in hostPath
# provisioner makes a directory under /tmp/hostpath_pv per claim and removes it with the claim.
# Single-node development only; its directories are root-owned 0750, so pods that run as
# non-root need their volume chowned (ObjectStore spec.storage.volumePermissions).
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-hostpath
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "agility:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "agility:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "agility:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "agility:coredns"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "agility:kube-router"}
rules:
- {apiGroups: [""], resources: [pods, namespaces, nodes, services, endpoints], verbs: [get, list, watch]}
- {apiGroups: [networking.k8s.io], resources: [networkpolicies], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "agility:kube-router"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "agility:kube-router"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "agility:kube-router"}]
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
subsets:
- addresses: [{ip: $NODE_IP}]
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
EOF
}

start_control_plane() {
  start_etcd "$PIDS" "$LOGS/etcd.log" node "$DIR/etcd" "$ETCD_PORT" 2147483648

  local encryption=${AGILITY_ENCRYPTION_CONFIG:-$DIR/encryption.yaml}
  if [ -z "${AGILITY_ENCRYPTION_CONFIG:-}" ]; then
    # The hook for encryption at rest: identity by default; a KMS v2 provider plugs in through
    # AGILITY_ENCRYPTION_CONFIG.
    cat >"$encryption" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers: [{identity: {}}]
EOF
  fi
  local audit=()
  if [ "${AGILITY_AUDIT:-0}" = 1 ]; then
    printf 'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n' >"$DIR/audit-policy.yaml"
    audit=(--audit-policy-file "$DIR/audit-policy.yaml" --audit-log-path "$LOGS/audit.log")
  fi
  start_daemon "$PIDS" kube-apiserver "$LOGS/kube-apiserver.log" "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$HOST_IP" --advertise-address "$HOST_IP" --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
    --requestheader-client-ca-file "$PKI/front-proxy/ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy/front-proxy-client.crt" \
    --proxy-client-key-file "$PKI/front-proxy/front-proxy-client.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --encryption-provider-config "$encryption" \
    --allow-privileged=true --profiling=false "${audit[@]}"
  wait_for 90 "kube-apiserver /readyz" node_kubectl get --raw /readyz

  start_daemon "$PIDS" kube-controller-manager "$LOGS/kube-controller-manager.log" \
    "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --use-service-account-credentials=true --service-cluster-ip-range "$SERVICE_CIDR" \
    --allocate-node-cidrs=false --profiling=false \
    --enable-hostpath-provisioner=true
  start_daemon "$PIDS" kube-scheduler "$LOGS/kube-scheduler.log" "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --profiling=false
}

start_node() {
  mkdir -p "$RUN_ROOT/containerd" "$KUBELET_DIR"
  start_daemon "$PIDS" containerd "$LOGS/containerd.log" \
    nsenter --net="$NETNS_PATH" containerd --config "$DIR/containerd/config.toml"
  wait_for 30 "containerd" ctr --address "$CONTAINERD_SOCK" version
  AGILITY_CONTAINERD_ADDRESS=$CONTAINERD_SOCK "$REPO_DIR/e2e/images/images.sh" build pause >&2
  AGILITY_CONTAINERD_ADDRESS=$CONTAINERD_SOCK "$REPO_DIR/e2e/images/images.sh" import pause >&2

  # The kubelet's root is a shared mount of its own, so mount propagation works for pods without
  # changing the propagation of the host's /.
  if ! mountpoint -q "$KUBELET_DIR"; then
    mount --bind "$KUBELET_DIR" "$KUBELET_DIR"
    mount --make-rshared "$KUBELET_DIR"
  fi
  start_daemon "$PIDS" kubelet "$LOGS/kubelet.log" \
    nsenter --net="$NETNS_PATH" "$K8S_BIN/kubelet" \
    --config "$DIR/kubelet.yaml" --kubeconfig "$DIR/kubelet.kubeconfig" \
    --root-dir "$KUBELET_DIR" --cert-dir "$DIR/kubelet-pki" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
  start_daemon "$PIDS" kube-proxy "$LOGS/kube-proxy.log" \
    nsenter --net="$NETNS_PATH" "$K8S_BIN/kube-proxy" --config "$DIR/kube-proxy.yaml"
  apply_addons
  start_daemon "$PIDS" coredns "$LOGS/coredns.log" \
    nsenter --net="$NETNS_PATH" "$COREDNS_BIN/coredns" -conf "$DIR/Corefile"
  # kube-router exits at once if the kubelet has not registered the Node yet, and then no
  # NetworkPolicy is enforced for the whole run: wait for the Node object first.
  wait_for 90 "the Node object" node_kubectl get node "$NODE_NAME"
  start_daemon "$PIDS" kube-router "$LOGS/kube-router.log" \
    nsenter --net="$NETNS_PATH" "$KUBE_ROUTER_BIN/kube-router" \
    --kubeconfig "$DIR/kube-router.kubeconfig" --hostname-override "$NODE_NAME" \
    --run-firewall=true --run-router=false --run-service-proxy=false --run-loadbalancer=false \
    --metrics-port 0 --health-port 20244
}

# The daemons in stop order (reverse of start).
NODE_DAEMONS=(kube-router coredns kube-proxy kubelet containerd kube-scheduler kube-controller-manager kube-apiserver etcd)
