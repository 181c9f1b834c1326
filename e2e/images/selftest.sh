#!/usr/bin/env bash
# Proves the built archives work without a cluster: starts a throwaway containerd (own socket, root
# and state under a temp dir, CRI plugin off), imports pause and redis, runs redis-server on the
# host network and asks it PING from the host and from `ctr task exec` inside the container, runs
# pause and checks it exits 0 on SIGTERM, then removes everything it created (containerd by PID).
#   e2e/images/selftest.sh            (needs root and Debian's containerd package)
# Environment: AGILITY_SELFTEST_PORT (redis port on the host, default 16379).
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${AGILITY_SELFTEST_PORT:-16379}
T=$(mktemp -d /tmp/agility-images-selftest.XXXXXX)
SOCK=$T/containerd.sock
C=(ctr --address "$SOCK" -n k8s.io)
RUN_CONTAINERD_EXISTED=0
[ -d /run/containerd ] && RUN_CONTAINERD_EXISTED=1
CONTAINERD_PID=
SUFFIX=$$

cleanup() {
  set +e
  for c in "selftest-redis-$SUFFIX" "selftest-pause-$SUFFIX"; do
    "${C[@]}" task kill -s SIGKILL "$c" >/dev/null 2>&1
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      "${C[@]}" task delete "$c" >/dev/null 2>&1 && break
      "${C[@]}" task ls -q 2>/dev/null | grep -qx "$c" || break
      sleep 0.2
    done
    "${C[@]}" container delete "$c" >/dev/null 2>&1
  done
  if [ -n "$CONTAINERD_PID" ]; then
    kill "$CONTAINERD_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$CONTAINERD_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  # Snapshot and rootfs mounts of this containerd, deepest first.
  awk -v t="$T" '$2 ~ "^"t {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$T"
  # containerd 1.6 puts shim and runc state under /run/containerd whatever `state` says.
  if [ "$RUN_CONTAINERD_EXISTED" = 0 ] && [ -d /run/containerd ]; then
    find /run/containerd -depth -type d -empty -delete
  fi
}
trap cleanup EXIT

command -v containerd >/dev/null || { echo "selftest: containerd is not installed (apt-get install containerd)" >&2; exit 1; }
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "selftest: port $PORT is taken; set AGILITY_SELFTEST_PORT" >&2
  exit 1
fi

cat >"$T/config.toml" <<EOF
version = 2
root = "$T/root"
state = "$T/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$T/debug.sock"
EOF
containerd --config "$T/config.toml" >"$T/containerd.log" 2>&1 &
CONTAINERD_PID=$!
for _ in $(seq 100); do "${C[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done

AGILITY_CONTAINERD_ADDRESS=$SOCK e2e/images/images.sh build pause redis
AGILITY_CONTAINERD_ADDRESS=$SOCK e2e/images/images.sh import pause redis

start=$(date +%s%N)
"${C[@]}" run -d --net-host localhost/agility/redis:7.0.15 "selftest-redis-$SUFFIX" \
  /usr/bin/redis-server --port "$PORT" --save "" --appendonly no
pong=
for _ in $(seq 100); do
  pong=$(redis-cli -p "$PORT" ping 2>/dev/null || true)
  [ "$pong" = PONG ] && break
  sleep 0.05
done
[ "$pong" = PONG ] || { echo "selftest: redis did not answer PING"; cat "$T/containerd.log"; exit 1; }
echo "redis answered PING from the host after $(( ($(date +%s%N) - start) / 1000000 )) ms"
inside=$("${C[@]}" task exec --exec-id "ping-$SUFFIX" "selftest-redis-$SUFFIX" redis-cli -p "$PORT" ping)
[ "$inside" = PONG ] || { echo "selftest: redis-cli inside the container said: $inside"; exit 1; }
who=$("${C[@]}" task exec --exec-id "id-$SUFFIX" "selftest-redis-$SUFFIX" sh -c 'id -u; redis-cli -p '"$PORT"' info server | grep -E "^(redis_version|executable)"')
echo "inside redis: uid and server info: $(echo "$who" | tr -d '\r' | tr '\n' ' ')"
echo "$who" | grep -qx 999 || { echo "selftest: redis does not run as uid 999"; exit 1; }
echo "$who" | grep -q "redis_version:7.0.15" || { echo "selftest: not redis 7.0.15"; exit 1; }

"${C[@]}" run -d localhost/agility/pause:3.10 "selftest-pause-$SUFFIX"
sleep 0.3
"${C[@]}" task ls | grep -q "selftest-pause-$SUFFIX .*RUNNING" || { echo "selftest: pause is not running"; exit 1; }
"${C[@]}" task kill -s SIGTERM "selftest-pause-$SUFFIX"
status=
for _ in $(seq 50); do
  status=$("${C[@]}" task ls | awk -v c="selftest-pause-$SUFFIX" '$1 == c {print $3}')
  [ "$status" = STOPPED ] && break
  sleep 0.1
done
[ "$status" = STOPPED ] || { echo "selftest: pause ignored SIGTERM"; exit 1; }
# `ctr task delete` exits with the task's own exit code when it is not 0.
code=0
"${C[@]}" task delete "selftest-pause-$SUFFIX" || code=$?
[ "$code" = 0 ] || { echo "selftest: pause exited with $code on SIGTERM"; exit 1; }
echo "pause stopped on SIGTERM with exit code 0"
echo "selftest: ok"
