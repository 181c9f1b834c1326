#!/usr/bin/env bash
# Proves the mariadb image and the pod scripts of this directory without Kubernetes: unpacks the
# image's root filesystem, runs init.sh and then start.sh for two "pods" (x-0, x-1) the way the
# StatefulSet does (uid 999, read-only root, writable /var/lib/mysql, /run/mysqld and /tmp, my.cnf
# at /etc/mysql, testdata/init.sql at /etc/mysql-init), each in its own mount namespace on the
# host network, and checks with the host's mariadb client:
#   - init.sh initialises once and is a no-op the second time; bootstrap writes no binlog;
#   - init_file created the system accounts although read_only=ON, and nothing reached the binlog;
#   - server ids from the hostname ordinal, report_host from POD_HOST, socket login as mysql;
#   - x-0 made writable, x-1 replicating from it with GTID (slave_pos), semi-sync ON both sides;
#   - a write replicates; ENGINE=MyISAM/MEMORY become InnoDB (and fail with NO_ENGINE_SUBSTITUTION);
#   - a user without READ_ONLY ADMIN cannot write on the read-only replica (SUPER does not help);
#   - mariadb-backup | mbstream and --prepare work inside the container; clean shutdown on SIGTERM.
# Kills what it started (by PID) and removes its temp dir on exit, also on failure.
#   operators/rds/assets/selftest.sh     (root; archive from `e2e/images/images.sh build mariadb`;
#                                          the host needs mariadb-client, util-linux, coreutils)
# Environment: AGILITY_MARIADB_ARCHIVE (default ~/.cache/agility/images/mariadb.tar),
#              AGILITY_SELFTEST_PORT (x-0's port, x-1 uses the next one; default 23306),
#              KEEP=1 (keep the temp dir for inspection).
set -euo pipefail
ASSETS=$(cd "$(dirname "$0")" && pwd)
ARCHIVE=${AGILITY_MARIADB_ARCHIVE:-$HOME/.cache/agility/images/mariadb.tar}
PORT0=${AGILITY_SELFTEST_PORT:-23306}
PORT1=$((PORT0 + 1))
ADMIN_PW=admin-test-password
REPL_PW=repl-test-password
MON_PW=monitor-test-password

fail() { echo "selftest: FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root (mount namespaces, chroot)"
[ -f "$ARCHIVE" ] || fail "no $ARCHIVE; run e2e/images/images.sh build mariadb"
command -v mariadb >/dev/null || fail "the host needs the mariadb client (apt-get install mariadb-client)"
for p in "$PORT0" "$PORT1"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    fail "port $p is taken; set AGILITY_SELFTEST_PORT"
  fi
done

T=$(mktemp -d /tmp/agility-rds-selftest.XXXXXX)
declare -A PID=()

stop() { # node: SIGTERM, wait up to 60 s, then SIGKILL
  local n=$1 pid=${PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "selftest: x-$n did not stop on SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  PID[$n]=
}

cleanup() {
  local rc=$?
  set +e
  for n in 0 1; do stop "$n"; done
  if [ "$rc" != 0 ]; then
    for n in 0 1; do
      [ -f "$T/x-$n.log" ] && { echo "--- x-$n log (tail)" >&2; tail -n 40 "$T/x-$n.log" >&2; }
    done
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
  [ "$rc" = 0 ] && echo "selftest: all checks passed" || echo "selftest: failed (rc $rc)" >&2
}
trap cleanup EXIT

# --- The image's root filesystem (its single layer) -------------------------------------------
mkdir -p "$T/oci" "$T/rootfs"
tar -xf "$ARCHIVE" -C "$T/oci"
manifest=$(sed -n 's/.*"digest":"sha256:\([0-9a-f]*\)".*/\1/p' "$T/oci/index.json")
layer=$(sed -n 's/.*"layers":\[{[^}]*"digest":"sha256:\([0-9a-f]*\)".*/\1/p' "$T/oci/blobs/sha256/$manifest")
[ -n "$layer" ] || fail "no layer in the manifest of $ARCHIVE"
tar -xzf "$T/oci/blobs/sha256/$layer" -C "$T/rootfs" --numeric-owner --same-permissions
rm -rf "$T/oci"
R=$T/rootfs
# What the container runtime adds: mount points for /dev, /proc and /sys.
mkdir -p "$R/dev" "$R/proc" "$R/sys"
ok "image rootfs unpacked ($(du -sh "$R" | cut -f1))"

mkdir -p "$T/secret"
cp "$ASSETS/testdata/init.sql" "$T/secret/init.sql"
chmod 644 "$T/secret/init.sql"
for n in 0 1; do
  N=$T/x-$n
  mkdir -p "$N/vol" "$N/run" "$N/tmp" "$N/etc"
  chown 999:999 "$N/vol" "$N/run" "$N/tmp"
  chmod 750 "$N/vol"; chmod 755 "$N/run"; chmod 1777 "$N/tmp"
  cp "$ASSETS/my.cnf" "$ASSETS/init.sh" "$ASSETS/start.sh" "$N/etc/"
  chmod 644 "$N/etc/"*
done

# pod_cmd NODE [ENV=VALUE...] -- COMMAND...: sets POD_CMD to the command line that runs COMMAND in
# the pod's view of the image as 999:999: its own mount namespace, read-only root, the volume and
# emptyDirs bound at /var/lib/mysql, /run/mysqld and /tmp, config and secret read-only.
pod_cmd() {
  local n=$1; shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  POD_CMD=(unshare --mount --propagation private -- /bin/sh -eu -c '
    R=$1; N=$2; S=$3; shift 3
    mount --bind "$R" "$R"
    mount -o remount,bind,ro "$R"
    mount --bind "$N/vol" "$R/var/lib/mysql"
    mount --bind "$N/run" "$R/run/mysqld"
    mount --bind "$N/tmp" "$R/tmp"
    mount --bind -o ro "$N/etc" "$R/etc/mysql"
    mount --bind -o ro "$S" "$R/etc/mysql-init"
    mount -t proc proc "$R/proc"
    mount --rbind /sys "$R/sys"
    mount -t tmpfs -o mode=755,nosuid tmpfs "$R/dev"
    for d in null zero full random urandom; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
    exec "$@"
  ' sh "$R" "$T/x-$n" "$T/secret"
    env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/var/lib/mysql "HOSTNAME=x-$n" "${envs[@]}"
    /usr/sbin/chroot --userspec=999:999 --groups=999 "$R" "$@")
}
in_pod() { pod_cmd "$@"; "${POD_CMD[@]}"; }
# start_pod NODE ENV... -- COMMAND...: in the background; PID[NODE] is mariadbd's own PID (every
# step execs the next).
start_pod() {
  local n=$1
  pod_cmd "$@"
  "${POD_CMD[@]}" >"$T/x-$n.log" 2>&1 &
  PID[$n]=$!
}

# q NODE USER PASSWORD SQL: one query over TCP, tab-separated, no headers.
q() {
  local port=$PORT0; [ "$1" = 1 ] && port=$PORT1
  mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$port" -u"$2" -p"$3" -N -B -e "$4"
}
admin() { q "$1" agility_admin "$ADMIN_PW" "$2"; }
status_var() { admin "$1" "SHOW GLOBAL STATUS LIKE '$2'" | cut -f2; }
slave_field() { # FIELD of x-1's SHOW SLAVE STATUS (vertical output needs the column names)
  mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$PORT1" -uagility_admin -p"$ADMIN_PW" \
    -e 'SHOW SLAVE STATUS\G' | sed -n "s/^ *$1: //p"
}
expect() { [ "$2" = "$3" ] || fail "$1: expected '$3', got '$2'"; ok "$1 = $2"; }

# --- init.sh ------------------------------------------------------------------------------------
for n in 0 1; do
  in_pod "$n" -- /bin/sh /etc/mysql/init.sh >"$T/x-$n.init.log" 2>&1 || { cat "$T/x-$n.init.log"; fail "init.sh on x-$n"; }
  [ -d "$T/x-$n/vol/data/mysql" ] || fail "init.sh left no data/mysql on x-$n"
done
ok "init.sh created the system tables"
out=$(in_pod 0 -- /bin/sh /etc/mysql/init.sh 2>&1) || fail "init.sh second run: $out"
case "$out" in *"is initialised"*) ok "init.sh again is a no-op" ;; *) fail "init.sh second run did something: $out" ;; esac
[ ! -e "$T/x-0/vol/data.init" ] || fail "init.sh left data.init behind"
if ls "$T/x-0/vol/data/" | grep -q '^mysql-bin'; then fail "bootstrap wrote a binlog"; fi
ok "bootstrap wrote no binlog"
[ "$(stat -c %u:%g "$T/x-0/vol/data/mysql")" = 999:999 ] || fail "data/mysql not owned by 999"

# --- start.sh, two pods -------------------------------------------------------------------------
start_pod 0 POD_HOST=x-0.x.test -- /bin/sh /etc/mysql/start.sh --port="$PORT0"
start_pod 1 POD_HOST=x-1.x.test -- /bin/sh /etc/mysql/start.sh --port="$PORT1"
for n in 0 1; do
  up=
  for _ in $(seq 600); do
    kill -0 "${PID[$n]}" 2>/dev/null || fail "mariadbd x-$n exited"
    if q "$n" agility_monitor "$MON_PW" "SELECT 1" >/dev/null 2>&1; then up=1; break; fi
    sleep 0.1
  done
  [ -n "$up" ] || fail "mariadbd x-$n did not accept agility_monitor within 60 s"
  [ "$(cat "$T/x-$n/run/mysqld.pid")" = "${PID[$n]}" ] || fail "PID ${PID[$n]} is not x-$n's mariadbd"
done
ok "both servers up; the init_file accounts log in over TCP"

expect "x-0 CURRENT_USER() as agility_admin" "$(admin 0 'SELECT CURRENT_USER()')" "agility_admin@%"
expect "x-1 agility_repl login" "$(q 1 agility_repl "$REPL_PW" 'SELECT CURRENT_USER()')" "agility_repl@%"
expect "x-0 server_id" "$(admin 0 'SELECT @@server_id')" 1
expect "x-1 server_id" "$(admin 1 'SELECT @@server_id')" 2
expect "x-1 report_host" "$(admin 1 'SELECT @@report_host')" x-1.x.test
expect "x-0 read_only at start" "$(admin 0 'SELECT @@read_only')" 1
expect "x-1 read_only at start" "$(admin 1 'SELECT @@read_only')" 1
expect "x-0 gtid_binlog_pos after init_file" "$(admin 0 'SELECT @@gtid_binlog_pos')" ""
for n in 0 1; do
  if mariadb-binlog "$T/x-$n/vol/data/"mysql-bin.0* 2>/dev/null | grep -qi 'agility_'; then
    fail "init_file statements reached x-$n's binlog"
  fi
done
ok "init_file statements are not in the binlogs"
expect "socket login inside the pod" "$(in_pod 0 -- mariadb -N -B -e 'SELECT CURRENT_USER()')" "mysql@localhost"
expect "x-0 semi-sync built in (no plugin to load)" "$(admin 0 'SELECT @@rpl_semi_sync_master_enabled')" 0
expect "x-0 wait point" "$(admin 0 'SELECT @@rpl_semi_sync_master_wait_point')" AFTER_SYNC
expect "x-0 character_set_server" "$(admin 0 'SELECT @@character_set_server')" utf8mb4
expect "x-0 IPv6 loopback" "$(mariadb --no-defaults -h::1 -P"$PORT0" -uagility_monitor -p"$MON_PW" -N -B -e 'SELECT 1' 2>/dev/null || echo none)" 1

# --- Primary x-0, semi-sync GTID replica x-1 ----------------------------------------------------
admin 0 "SET GLOBAL rpl_semi_sync_master_enabled=ON; SET GLOBAL read_only=OFF"
admin 1 "SET GLOBAL rpl_semi_sync_slave_enabled=ON;
  CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$PORT0, MASTER_USER='agility_repl',
    MASTER_PASSWORD='$REPL_PW', MASTER_USE_GTID=slave_pos, MASTER_HEARTBEAT_PERIOD=1,
    MASTER_CONNECT_RETRY=1;
  START SLAVE"
for _ in $(seq 100); do
  [ "$(slave_field Slave_IO_Running)" = Yes ] && [ "$(status_var 0 Rpl_semi_sync_master_status)" = ON ] && break
  sleep 0.1
done
expect "x-1 Slave_IO_Running" "$(slave_field Slave_IO_Running)" Yes
expect "x-1 Slave_SQL_Running" "$(slave_field Slave_SQL_Running)" Yes
expect "x-1 Using_Gtid" "$(slave_field Using_Gtid)" Slave_Pos
expect "x-0 Rpl_semi_sync_master_status" "$(status_var 0 Rpl_semi_sync_master_status)" ON
expect "x-0 Rpl_semi_sync_master_clients" "$(status_var 0 Rpl_semi_sync_master_clients)" 1
expect "x-1 Rpl_semi_sync_slave_status" "$(status_var 1 Rpl_semi_sync_slave_status)" ON
expect "x-0 SHOW SLAVE HOSTS" "$(admin 0 'SHOW SLAVE HOSTS' | cut -f1,2)" "$(printf '2\tx-1.x.test')"

yes_before=$(status_var 0 Rpl_semi_sync_master_yes_tx)
admin 0 "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20));
  INSERT INTO app.t VALUES (1, 'replicated')"
yes_after=$(status_var 0 Rpl_semi_sync_master_yes_tx)
[ "$yes_after" -gt "$yes_before" ] || fail "no semi-sync acknowledged transaction ($yes_before -> $yes_after)"
ok "Rpl_semi_sync_master_yes_tx $yes_before -> $yes_after, no_tx $(status_var 0 Rpl_semi_sync_master_no_tx)"
sync_replica() {
  local pos; pos=$(admin 0 'SELECT @@gtid_binlog_pos')
  expect "x-1 MASTER_GTID_WAIT('$pos')" "$(admin 1 "SELECT MASTER_GTID_WAIT('$pos', 10)")" 0
}
sync_replica
expect "x-1 replicated row" "$(admin 1 'SELECT v FROM app.t WHERE id=1')" replicated

# --- Every table is InnoDB ----------------------------------------------------------------------
out=$(admin 0 "CREATE TABLE app.m (id INT) ENGINE=MyISAM; SHOW WARNINGS; CREATE TABLE app.h (id INT) ENGINE=MEMORY")
case "$out" in *1266*) ok "CREATE TABLE ... ENGINE=MyISAM gives: $(echo "$out" | tr '\t\n' '  ')" ;; *) fail "no note 1266: $out" ;; esac
sync_replica
engines="SELECT GROUP_CONCAT(TABLE_NAME, '=', ENGINE ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA='app'"
expect "x-0 engines" "$(admin 0 "$engines")" "h=InnoDB,m=InnoDB,t=InnoDB"
expect "x-1 engines" "$(admin 1 "$engines")" "h=InnoDB,m=InnoDB,t=InnoDB"
out=$(admin 0 "SET SESSION sql_mode=CONCAT(@@sql_mode, ',NO_ENGINE_SUBSTITUTION'); CREATE TABLE app.n (id INT) ENGINE=MyISAM" 2>&1 || true)
out=$(echo "$out" | grep ERROR)
case "$out" in *"ERROR 1290"*NO_ENGINE_SUBSTITUTION*) ok "with NO_ENGINE_SUBSTITUTION: $out" ;; *) fail "NO_ENGINE_SUBSTITUTION: $out" ;; esac

# --- read_only fences everyone without READ_ONLY ADMIN ------------------------------------------
admin 0 "CREATE USER app@'%' IDENTIFIED BY 'app-pw'; GRANT ALL ON app.* TO app@'%';
  CREATE USER sup@'%' IDENTIFIED BY 'sup-pw'; GRANT SUPER ON *.* TO sup@'%'; GRANT ALL ON app.* TO sup@'%'"
sync_replica
q 0 app app-pw "INSERT INTO app.t VALUES (2, 'on primary')"
ok "app can write on the primary"
for u in app sup; do
  out=$(q 1 "$u" "$u-pw" "INSERT INTO app.t VALUES (3, 'on replica')" 2>&1 || true)
  out=$(echo "$out" | grep ERROR || echo "$out")
  case "$out" in *"ERROR 1290"*read-only*) ok "$u (no READ_ONLY ADMIN) on read-only x-1: $out" ;; *) fail "$u wrote on read-only x-1: $out" ;; esac
done
# agility_admin has ALL PRIVILEGES, which includes READ_ONLY ADMIN: it is not fenced.
out=$(admin 1 "SET SESSION sql_log_bin=0; CREATE DATABASE ro_probe; DROP DATABASE ro_probe" 2>&1 && echo allowed || true)
echo "   agility_admin DDL on read-only x-1 (not binlogged): $out"
sync_replica
expect "x-1 Last_SQL_Error" "$(slave_field Last_SQL_Error)" ""
expect "x-1 rows" "$(admin 1 'SELECT COUNT(*) FROM app.t')" 2

# --- Backup tools inside the pod ----------------------------------------------------------------
in_pod 1 -- /bin/sh -ec '
  mariadb-backup --defaults-file=/etc/mysql/my.cnf --backup --stream=mbstream --target-dir=/tmp 2>/tmp/backup.log \
    | (mkdir -p /tmp/bk && mbstream -x -C /tmp/bk)
  mariadb-backup --prepare --target-dir=/tmp/bk 2>/tmp/prepare.log
  test -f /tmp/bk/app/t.ibd && test -f /tmp/bk/xtrabackup_binlog_info' \
  || { tail -n 20 "$T/x-1/tmp/backup.log" "$T/x-1/tmp/prepare.log" 2>/dev/null; fail "mariadb-backup in the pod"; }
ok "mariadb-backup --stream | mbstream -x, --prepare in the pod ($(du -sh "$T/x-1/tmp/bk" | cut -f1); binlog pos $(tr '\t' ' ' <"$T/x-1/tmp/bk/xtrabackup_binlog_info"))"

# --- Shutdown -----------------------------------------------------------------------------------
if grep -n '\[ERROR\]' "$T/x-0.log" "$T/x-1.log"; then fail "[ERROR] lines in the server logs"; fi
ok "no [ERROR] in the server logs"
for n in 1 0; do
  stop "$n"
  grep -q 'Shutdown complete' "$T/x-$n.log" || fail "x-$n did not shut down cleanly"
done
ok "both shut down cleanly on SIGTERM"
