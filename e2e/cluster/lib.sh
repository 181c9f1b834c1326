# shellcheck shell=bash
# Shared by the cluster scripts: pinned versions, cache and state paths, daemon helpers, certificates.
# Sourced, never run. Everything a script starts is tracked by a PID file and stopped by that PID.

CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$CLUSTER_DIR/../.." && pwd)
CACHE=${AGILITY_CACHE:-$HOME/.cache/agility}

K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.4
COREDNS_VERSION=v1.12.4
KUBE_ROUTER_VERSION=v2.1.0
K8S_BIN=$CACHE/kubernetes-$K8S_VERSION/bin
ETCD_BIN=$CACHE/etcd-$ETCD_VERSION/bin
ETCDCTL=$CACHE/etcdctl-$ETCD_VERSION/bin/etcdctl
KUBECTL=$K8S_BIN/kubectl
COREDNS_BIN=$CACHE/coredns-$COREDNS_VERSION/bin
KUBE_ROUTER_BIN=$CACHE/kube-router-$KUBE_ROUTER_VERSION/bin

STATE_ROOT=/var/lib/agility-e2e
RUN_ROOT=/run/agility-e2e

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

# pid_alive PIDFILE: true when the file names a live process.
pid_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null
}

# start_daemon PIDDIR NAME LOGFILE CMD...: starts CMD in its own session, records its PID.
start_daemon() {
  local piddir=$1 name=$2 logfile=$3
  shift 3
  mkdir -p "$piddir" "$(dirname "$logfile")"
  if pid_alive "$piddir/$name.pid"; then
    return 0
  fi
  setsid "$@" >>"$logfile" 2>&1 </dev/null &
  echo $! >"$piddir/$name.pid"
}

# stop_daemon PIDDIR NAME: SIGTERM by PID, SIGKILL after 15 s, then forget the PID file.
stop_daemon() {
  local piddir=$1 name=$2 pid i
  [ -s "$piddir/$name.pid" ] || return 0
  pid=$(cat "$piddir/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name ($pid) ignored SIGTERM; killing"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$piddir/$name.pid"
}

# start_etcd PIDDIR LOGFILE NAME DATADIR CLIENT_PORT QUOTA_BYTES: a single-member etcd on loopback
# (peer port CLIENT_PORT+1). fsync is off: these clusters are disposable and the disk is shared.
start_etcd() {
  local piddir=$1 logfile=$2 name=$3 data=$4 port=$5 quota=$6
  local client="http://127.0.0.1:$port" peer="http://127.0.0.1:$((port + 1))"
  start_daemon "$piddir" etcd "$logfile" "$ETCD_BIN/etcd" \
    --name "$name" --data-dir "$data" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "$name=$peer" \
    --unsafe-no-fsync --quota-backend-bytes "$quota"
  wait_for 30 "etcd" curl -sf "$client/health"
}

# stop_daemons PIDDIR NAME...: stop_daemon for several at once (SIGTERM to all, then one shared
# 15 s grace period), for daemons whose stop order no longer matters.
stop_daemons() {
  local piddir=$1 name pid i
  shift
  local -A pids=()
  for name in "$@"; do
    [ -s "$piddir/$name.pid" ] || continue
    pid=$(cat "$piddir/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      pids[$name]=$pid
    else
      rm -f "$piddir/$name.pid"
    fi
  done
  for i in $(seq 1 150); do
    for name in "${!pids[@]}"; do
      if ! kill -0 "${pids[$name]}" 2>/dev/null; then
        log "stopped $name (pid ${pids[$name]})"
        rm -f "$piddir/$name.pid"
        unset "pids[$name]"
      fi
    done
    [ ${#pids[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  for name in "${!pids[@]}"; do
    log "$name (${pids[$name]}) ignored SIGTERM; killing"
    kill -KILL "${pids[$name]}" 2>/dev/null || true
    rm -f "$piddir/$name.pid"
  done
}

# wait_for SECONDS DESCRIPTION CMD...: polls CMD every 0.5 s.
wait_for() {
  local seconds=$1 what=$2 i
  shift 2
  for i in $(seq 1 $((seconds * 2))); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  die "timed out after ${seconds}s waiting for $what"
}

# new_ca DIR: a cluster CA (EC P-256, 10 years) unless one exists.
new_ca() {
  local dir=$1
  mkdir -p "$dir"
  [ -s "$dir/ca.crt" ] && return 0
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=agility-e2e-ca" -days 3650 \
    -out "$dir/ca.crt" 2>/dev/null
}

# new_cert DIR NAME SUBJECT USAGE [SAN]: a leaf cert signed by DIR/ca; USAGE is clientAuth, serverAuth or both.
new_cert() {
  local dir=$1 name=$2 subject=$3 usage=$4 san=${5:-}
  [ -s "$dir/$name.crt" ] && return 0
  local ext="$dir/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$ext"
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/$name.key" 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "$subject" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 3650 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext"
}

# write_kubeconfig FILE SERVER CADIR CERTNAME: a kubeconfig with embedded client cert.
write_kubeconfig() {
  local file=$1 server=$2 dir=$3 cert=$4
  cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: agility-e2e
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$dir/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $(base64 -w0 <"$dir/$cert.crt")
    client-key-data: $(base64 -w0 <"$dir/$cert.key")
contexts:
- name: agility-e2e
  context: {cluster: agility-e2e, user: $cert}
current-context: agility-e2e
KC
  chmod 600 "$file"
}

# new_sa_keypair DIR: the service-account token signing key pair.
new_sa_keypair() {
  local dir=$1
  [ -s "$dir/sa.key" ] && return 0
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
}
