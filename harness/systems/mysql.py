"""What the MySQL-protocol systems (Galera, MMM) share: the clients' database and account.

The node image's data directory ships the account with the password ``IMAGE_PASSWORD``; every server
start replaces it with the run's own (``account_sql``), so a client of another run is refused.
"""

from __future__ import annotations

USER = "harness"
DATABASE = "harness"
IMAGE_PASSWORD = "harness"  # only until the first start of a node: see account_sql


def account_sql(password: str) -> str:
    """Statements run at every server start (``--init-file``), on this node alone (neither binlogged nor
    replicated): the clients' account with the run's password, its grants and database."""
    return f"""SET SESSION sql_log_bin = 0;
SET SESSION wsrep_on = OFF;
CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{password}';
ALTER USER '{USER}'@'%' IDENTIFIED BY '{password}';
GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS {DATABASE};
"""


def storage_cnf(lazy_storage: bool) -> str:
    """InnoDB settings for a data directory on the harness's FUSE storage (``storage: lazyfs``): buffered
    I/O made durable by fsync (no O_DIRECT, no native AIO), so every write and fsync goes through the mount
    the faults act on. Nothing for a plain data directory."""
    if not lazy_storage:
        return ""
    return "innodb_flush_method=fsync\ninnodb_use_native_aio=0\n"
