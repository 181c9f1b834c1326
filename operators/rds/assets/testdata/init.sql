-- Sample of the init_file the operator mounts from a Secret at /etc/mysql-init/init.sql (test
-- passwords). Runs at every mariadbd start, before clients are accepted; must be idempotent and
-- must not reach the binary log (each node runs it itself; a binlogged copy would give every node
-- its own GTIDs and break gtid_strict_mode replication).
SET sql_log_bin = 0;

CREATE USER IF NOT EXISTS 'agility_admin'@'%' IDENTIFIED BY 'admin-test-password';
ALTER USER 'agility_admin'@'%' IDENTIFIED BY 'admin-test-password';
GRANT ALL PRIVILEGES ON *.* TO 'agility_admin'@'%' WITH GRANT OPTION;

CREATE USER IF NOT EXISTS 'agility_repl'@'%' IDENTIFIED BY 'repl-test-password';
ALTER USER 'agility_repl'@'%' IDENTIFIED BY 'repl-test-password';
GRANT REPLICATION SLAVE, REPLICATION SLAVE ADMIN, BINLOG MONITOR ON *.* TO 'agility_repl'@'%';

CREATE USER IF NOT EXISTS 'agility_monitor'@'%' IDENTIFIED BY 'monitor-test-password';
ALTER USER 'agility_monitor'@'%' IDENTIFIED BY 'monitor-test-password';
GRANT PROCESS, REPLICA MONITOR, BINLOG MONITOR ON *.* TO 'agility_monitor'@'%';
GRANT SELECT ON performance_schema.* TO 'agility_monitor'@'%';
