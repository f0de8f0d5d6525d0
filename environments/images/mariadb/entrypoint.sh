#!/bin/sh
# Starts MariaDB for a drill: a throwaway data directory, root reachable over
# the network with the password "firedrill", and a database "firedrill".
# Extra arguments are passed to mariadbd (e.g. --max-connections=60).
set -eu
datadir=/var/lib/mysql
mkdir -p /run/mysqld "$datadir"
if [ ! -d "$datadir/mysql" ]; then
  mariadb-install-db --user=root --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
fi
cat >/run/mysqld/init.sql <<'SQL'
CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY 'firedrill';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS firedrill;
FLUSH PRIVILEGES;
SQL
# Port 3307 is the admin path (extra_port, its own 32 connections beyond
# max_connections): the harness and the fault injectors use it, so a drill
# that exhausts max_connections cannot lock them out.
# Durability settings are relaxed on purpose: drills measure load behaviour,
# and a throwaway database that fsyncs every commit would measure the disk.
exec mariadbd --user=root --datadir="$datadir" --bind-address=0.0.0.0 --port=3306 \
  --skip-name-resolve --skip-log-bin --init-file=/run/mysqld/init.sql \
  --innodb-buffer-pool-size=512M --innodb-flush-log-at-trx-commit=2 \
  --innodb-doublewrite=0 --local-infile=1 --extra-port=3307 --extra-max-connections=32 "$@"
