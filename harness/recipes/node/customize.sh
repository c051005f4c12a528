#!/bin/sh
# Runs inside the node image's root file system, after the packages are installed.
# Used by both build paths: mmdebstrap (offline, as a customize hook) and the Dockerfile (registry).
set -eu

# MariaDB: one pre-initialised data directory with the harness's client user, so that every node
# starts from identical data and Galera joiners need no state transfer on first start.
rm -rf /var/lib/mysql/* /etc/mysql/mariadb.conf.d/50-server.cnf
mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db \
    --auth-root-authentication-method=socket >/dev/null
mariadbd --bootstrap --user=mysql --datadir=/var/lib/mysql --log-error=/tmp/bootstrap.err <<'SQL'
USE mysql;
FLUSH PRIVILEGES;
CREATE USER 'harness'@'%' IDENTIFIED BY 'harness';
GRANT ALL PRIVILEGES ON *.* TO 'harness'@'%' WITH GRANT OPTION;
CREATE DATABASE harness;
SQL
rm -f /tmp/bootstrap.err /var/lib/mysql/*.err
install -d -o mysql -g mysql /run/mysqld

# RabbitMQ: nothing ships enabled; the harness renders rabbitmq.conf and enabled_plugins per run.
rm -f /var/lib/rabbitmq/.erlang.cookie
rm -rf /var/lib/rabbitmq/mnesia

# Keep the image small.
rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /var/cache/apt/*.bin /var/lib/apt/lists/*
