#!/bin/sh
# Main container of an RdsInstance pod (image localhost/agility/mariadb, uid 999, busybox sh):
# execs mariadbd with a server id unique in the instance: the pod's ordinal (the number after the
# last '-' of $HOSTNAME, e.g. db-2 -> 2) plus $SERVER_ID_BASE (default 1, so ids start at 1).
#   POD_HOST   when set, --report-host (how replicas are listed in SHOW SLAVE HOSTS)
#   MYCNF      server config (default /etc/mysql/my.cnf)
# Extra arguments are passed to mariadbd.
set -eu
MYCNF=${MYCNF:-/etc/mysql/my.cnf}
: "${HOSTNAME:=$(hostname)}"
ordinal=${HOSTNAME##*-}
base=${SERVER_ID_BASE:-1}
case "$ordinal" in
  ''|*[!0-9]*) echo "start: no ordinal at the end of hostname '$HOSTNAME'" >&2; exit 1 ;;
esac
case "$base" in
  ''|*[!0-9]*) echo "start: SERVER_ID_BASE '$base' is not a number" >&2; exit 1 ;;
esac
id=$((base + ordinal))
if [ "$id" -lt 1 ] || [ "$id" -gt 4294967295 ]; then
  echo "start: server id $id is out of range 1..4294967295" >&2
  exit 1
fi
echo "start: server id $id"
if [ -n "${POD_HOST:-}" ]; then
  exec mariadbd --defaults-file="$MYCNF" --server-id="$id" --report-host="$POD_HOST" "$@"
fi
exec mariadbd --defaults-file="$MYCNF" --server-id="$id" "$@"
