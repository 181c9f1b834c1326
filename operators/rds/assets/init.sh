#!/bin/sh
# Init container of an RdsInstance pod (image localhost/agility/mariadb, uid 999, busybox sh):
# creates the system tables in $DATADIR unless they are there. Idempotent and crash-safe: the
# tables are built in $DATADIR.init and renamed into place only when mariadb-install-db succeeded,
# so a half-initialised $DATADIR never exists.
#   DATADIR   data directory (default /var/lib/mysql/data; must match datadir in my.cnf)
#   MYCNF     server config (default /etc/mysql/my.cnf)
set -eu
DATADIR=${DATADIR:-/var/lib/mysql/data}
MYCNF=${MYCNF:-/etc/mysql/my.cnf}

if [ -d "$DATADIR/mysql" ]; then
  echo "init: $DATADIR is initialised"
  exit 0
fi
if [ -e "$DATADIR" ]; then
  # An empty directory (e.g. made by hand) is fine; anything else is not ours to overwrite.
  if [ -n "$(ls -A "$DATADIR")" ]; then
    echo "init: $DATADIR has files but no mysql/ system schema; refusing to initialise over them" >&2
    exit 1
  fi
  rmdir "$DATADIR"
fi

work="$DATADIR.init"
rm -rf "$work"
mkdir -p "$work"
chmod 750 "$work"
echo "init: creating the system tables in $DATADIR"
# root@localhost and mysql@localhost (the container's OS user) log in through the unix socket
# only; the operator's accounts come from init_file at every start (bootstrap does not read
# init_file, so the Secret need not be mounted here). --cross-bootstrap skips the host name lookup
# (resolveip is not in the image) and leaves out the rows for this pod's host name, which
# skip_name_resolve ignores and a clone of the volume on another pod would not match. No binlog
# during bootstrap: the system tables are per node and must not replicate.
mariadb-install-db \
  --defaults-file="$MYCNF" \
  --datadir="$work" \
  --auth-root-authentication-method=socket \
  --auth-root-socket-user=mysql \
  --skip-test-db \
  --cross-bootstrap \
  --skip-log-bin \
  --silent
[ -d "$work/mysql" ] || { echo "init: mariadb-install-db left no $work/mysql" >&2; exit 1; }
mv "$work" "$DATADIR"
echo "init: done"
