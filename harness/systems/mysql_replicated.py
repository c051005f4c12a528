"""What the MySQL systems replicated through proxies share (MMM, async source–replica): MariaDB nodes behind
HAProxy's frontends (``mysql_frontends``: one HAProxy or the balancer pair), a helper daemon beside the
nodes (a monitor or manager), the accounts, pt-heartbeat's table, and direct admin connections for
observation.

Accounts: the workloads' ``harness`` user loses ``READ_ONLY ADMIN`` here, so ``read_only`` really refuses
its writes on a node that is not the writer; the monitor/manager and this module administer the servers as
``mmm_agent``; replication connects as ``repl`` (so killing client connections never hits a binlog dump).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import InfraError
from harness.runtime.base import ContainerSpec, Mount
from harness.runtime.proxies import Link, create_links, links_for, toxiproxy_ip
from harness.runtime.run import Node
from harness.runtime.wait import wait_until
from harness.systems.mysql import DATABASE, IMAGE_PASSWORD, USER, storage_cnf
from harness.systems.mysql_frontends import (
    WRITER_PORT,
    HAProxyFrontends,
    haproxy_config,
)

log = logging.getLogger(__name__)

ADMIN_USER = "mmm_agent"
REPL_USER = "repl"
REPL_FRONT_PORT = 3308  # replicas' way to the source (async replication), behind their nK-repl links
HEARTBEAT_TABLE = "heartbeat"  # pt-heartbeat's table in DATABASE
HEARTBEAT_INTERVAL = 0.1
REPL_PORT_OFFSET = 100  # nK-repl listens 100 above nK-mysql: n1-repl on 11406, n2-repl on 12406
DAEMON_IO = Path(__file__).with_name("daemon_io.py")  # copied beside each standalone daemon
LAG = "replication_lag_s"  # the probes' metric: host now minus the newest pt-heartbeat stamp a node holds


def heartbeat_age(ts: str, now: float | None = None) -> float:
    """Seconds between ``now`` (default: the host's wall clock) and a pt-heartbeat ``--utc`` stamp."""
    stamp = datetime.fromisoformat(ts).replace(tzinfo=UTC).timestamp()
    return (time.time() if now is None else now) - stamp


# pt-heartbeat's own table definition (its MAGIC_create_heartbeat). Created here, on each node and out of
# the binlog, rather than by ``pt-heartbeat --create-table``: with ``--replace`` that option TRUNCATEs the
# table each time pt-heartbeat starts, i.e. each time the writer moves, and the TRUNCATE on the new writer
# breaks replication of the old writer's last, not yet shipped heartbeat (error 1032 on restart).
HEARTBEAT_DDL = (
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.{HEARTBEAT_TABLE} ("
    "ts varchar(26) NOT NULL, server_id int unsigned NOT NULL PRIMARY KEY,"
    " file varchar(255) DEFAULT NULL, position bigint unsigned DEFAULT NULL,"
    " relay_master_log_file varchar(255) DEFAULT NULL, exec_master_log_pos bigint unsigned DEFAULT NULL)"
)


def seed_script(source_ip: str, admin_password: str) -> str:
    """The shell, run in a node's container, that seeds its MariaDB from ``source_ip``: ``mariadb-dump
    --gtid`` of the database (dropped and recreated; ``gtid_slave_pos`` set to the source's position) loaded
    as root over the socket and out of the binlog, then the binlog reset (the node's own errant GTIDs go
    with it) to a state of exactly that position, so the node's next own transaction continues its
    domain's numbering instead of restarting at 1, which a replica later pointed at it would skip as
    applied. Prints ``binlog_state=<position>`` last.

    The position is read first and set as a literal: ``SET GLOBAL gtid_binlog_state=@@gtid_slave_pos``
    deadlocks MariaDB 10.11 (every later connection hangs), seen here."""
    login = f"-u{ADMIN_USER} -p{shlex.quote(admin_password)}"
    return (
        f"set -o pipefail; mariadb-dump -h {source_ip} {login} --gtid --master-data=1 --single-transaction "
        f"--add-drop-database --databases {DATABASE} | mariadb --init-command='SET SESSION sql_log_bin=0' && "
        "pos=$(mariadb -N -B -e 'SELECT @@GLOBAL.gtid_slave_pos') && "
        'mariadb -e "RESET MASTER; SET GLOBAL gtid_binlog_state=\'$pos\'" && echo "binlog_state=$pos"'
    )


def setup_sql(admin: str, repl: str, client: str) -> tuple[str, ...]:
    """On each node before replication starts, kept out of the binlog: pt-heartbeat's table, the
    admin's and replication's accounts, and the clients' account with the run's password (last: the
    connection that runs these authenticated with the node image's)."""
    return (
        "SET SESSION sql_log_bin = 0",
        HEARTBEAT_DDL,
        f"CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'%' IDENTIFIED BY '{admin}'",
        f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%'",
        f"CREATE USER IF NOT EXISTS '{REPL_USER}'@'%' IDENTIFIED BY '{repl}'",
        f"GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'%'",
        f"REVOKE READ_ONLY ADMIN ON *.* FROM '{USER}'@'%'",
        f"ALTER USER '{USER}'@'%' IDENTIFIED BY '{client}'",
    )


class ProxiedMysqlCluster(HAProxyFrontends):
    """Base of MMM and async replication: MariaDB nodes, HAProxy's frontends, helper containers."""

    client_port = 3306
    bootstrap_uses_proxies = True  # replication and HAProxy's backends go through the run's Toxiproxy
    helpers: ClassVar[tuple[str, ...]] = ("haproxy",)  # helper containers whose logs go with the nodes'

    def connect(
        self,
        node: Node,
        *,
        timeout: float = 2.0,
        database: str | None = None,
        user: str = ADMIN_USER,
        password: str | None = None,
    ) -> Any:
        """A direct connection to the node's MariaDB (not through a proxy), as the admin user by default."""
        import pymysql

        password = self.run.credential("admin") if password is None else password
        return pymysql.connect(host=node.ip, port=self.client_port, user=user, password=password,
                               database=database, connect_timeout=timeout, read_timeout=timeout,
                               write_timeout=timeout, autocommit=True)  # fmt: skip

    def query(self, node: Node, sql: str, *, timeout: float = 1.0) -> list[dict[str, Any]]:
        conn = self.connect(node, timeout=timeout)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                names = [d[0] for d in cur.description] if cur.description else []
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            conn.close()

    def slave_status(self, node: Node, *, timeout: float = 1.0) -> dict[str, Any]:
        rows = self.query(node, "SHOW SLAVE STATUS", timeout=timeout)
        return rows[0] if rows else {}

    def read_only(self, node: Node) -> int:
        return int(self.query(node, "SELECT @@read_only AS ro")[0]["ro"])

    def heartbeat_ts(self, node: Node, *, timeout: float = 1.0) -> str | None:
        """The newest pt-heartbeat stamp the node holds (UTC, ``YYYY-MM-DDTHH:MM:SS.ffffff``)."""
        try:
            rows = self.query(
                node, f"SELECT MAX(ts) AS ts FROM {DATABASE}.{HEARTBEAT_TABLE}", timeout=timeout
            )
        except Exception as exc:
            if "doesn't exist" in str(exc):
                return None
            raise
        return rows[0]["ts"] if rows else None

    def _setup_users(self, node: Node) -> bool:
        import pymysql

        client = self.run.credential("client")
        try:
            conn = self.connect(node, user=USER, password=IMAGE_PASSWORD, timeout=1.0)
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != 1045:
                raise
            conn = self.connect(node, user=USER, password=client, timeout=1.0)  # an earlier try got that far
        try:
            with conn.cursor() as cur:
                for statement in setup_sql(self.run.credential("admin"), self.run.credential("repl"), client):
                    cur.execute(statement)
        finally:
            conn.close()
        return True

    def wait_replicating(self, nodes: list[Node], *, timeout: float) -> None:
        def check() -> bool:
            for node in nodes:
                slave = self.slave_status(node)
                if slave.get("Slave_IO_Running") != "Yes" or slave.get("Slave_SQL_Running") != "Yes":
                    error = slave.get("Last_IO_Error") or slave.get("Last_SQL_Error") or ""
                    io, sql = slave.get("Slave_IO_Running"), slave.get("Slave_SQL_Running")
                    raise RuntimeError(f"{node.name}: IO {io} SQL {sql} {error}".strip())
            return True

        wait_until(check, timeout=timeout, interval=0.1, max_interval=0.5,
                   what="replication running both ways", details=self.logs_of_all)  # fmt: skip

    # -- shared by the systems' rendering, bootstrap and health checks -----------------------------
    def server_cnf(self, node: Node, title: str, extra: str = "") -> str:
        """A node's MariaDB settings: server and GTID domain K, binlog with ``log_slave_updates`` and
        ``sync_binlog=1``, ``read_only=1`` at start; ``extra`` lines are the system's own."""
        k = node.number
        pool = self.topology.settings.buffer_pool_size  # type: ignore[attr-defined]
        return f"""# Rendered by ha-harness for run {self.run.id}, node {node.name} ({title} {k})
[mysqld]
bind-address=0.0.0.0
skip-name-resolve
server_id={k}
gtid_domain_id={k}
log_bin=mysql-bin
log_slave_updates=ON
binlog_format=ROW
sync_binlog=1
innodb_flush_log_at_trx_commit=1
innodb_buffer_pool_size={pool}
read_only=ON
relay_log=relay-bin
report_host={node.name}
slave_net_timeout=4
max_connections=500
max_connect_errors=1000000000
{storage_cnf(self.lazy_storage)}{extra}"""

    def render_nodes(
        self, directory: Path, cnf_name: str, title: str | Callable[[Node], str], extra: Callable[[Node], str]
    ) -> None:
        """Each node's ``<cnf_name>`` and its start script (MariaDB with that file, data from the image);
        ``title``: what the node is (or a function of the node)."""
        for node in self.run.nodes:
            what = title(node) if callable(title) else title
            start_sh = f"""#!/bin/sh
# Rendered by ha-harness: start one MariaDB node ({what}; data directory from the node image).
set -e
install -d -o mysql -g mysql /run/mysqld
exec mariadbd --defaults-extra-file=/etc/harness/{cnf_name} --user=mysql
"""
            target = directory / node.name
            target.mkdir(parents=True, exist_ok=True)
            (target / cnf_name).write_text(self.server_cnf(node, what, extra(node)))
            (target / "start.sh").write_text(start_sh)

    def render_helpers(
        self,
        directory: Path,
        haproxy_cfg: str,
        daemon: str,
        files: Mapping[str, Path],
        config: dict[str, Any],
    ) -> None:
        """HAProxy's config, and the daemon's directory: its ``<daemon>.json`` config, its files (name in
        the container → source), and ``daemon_io.py`` beside them (imported as sibling modules)."""
        self.render_frontends(directory, haproxy_cfg)
        target = directory / daemon
        target.mkdir(parents=True, exist_ok=True)
        (target / f"{daemon}.json").write_text(json.dumps(config, indent=2))
        for name, source in {**files, "daemon_io.py": DAEMON_IO}.items():
            shutil.copyfile(source, target / name)

    def container_spec(self, node: Node, *, bootstrap: bool = False) -> ContainerSpec:
        mounts = [Mount(str(self.node_dir(node)), "/etc/harness")]
        return self.base_spec(node, ["sh", "/etc/harness/start.sh"], mounts, user="0")

    def daemon_spec(self, daemon: str, host: int, mount_at: str, script: str) -> ContainerSpec:
        """The monitor's or manager's container: ``python3 <mount_at>/<script> <mount_at>/<daemon>.json``,
        as the host's uid, so that the state file it writes into the run directory stays removable."""
        mount = Mount(str(self.helper_dir(daemon)), mount_at, read_only=False)
        command = ["python3", "-u", f"{mount_at}/{script}", f"{mount_at}/{daemon}.json"]
        return self.helper_spec(daemon, host, command, mount, user=f"{os.getuid()}:{os.getgid()}")

    def seed_from(self, node: Node, source: Node) -> str:
        """Load ``source``'s data into ``node`` (``seed_script``); returns the binlog state ``node`` now has."""
        script = seed_script(source.ip, self.run.credential("admin"))
        done = self.runtime.exec(node.container, ["bash", "-c", script], timeout=120)
        if done.exit_code != 0 or "binlog_state=" not in done.output:
            raise InfraError(f"seeding {node.name} from {source.name} failed: {done.output[-300:]}")
        return done.output.rsplit("binlog_state=", 1)[1].strip()

    def seed_empty(self, node: Node, source: Node) -> str:
        """A node back with the image's data directory (a ``wipe``): once its server answers on its socket,
        seeded from ``source``, then given the run's accounts — last, since until then neither the
        monitor/manager nor a peer's replication can log in and act on a half-loaded node. Returns the
        binlog state it was given."""
        timeout = self.topology.timeouts.startup

        def answers() -> bool:
            done = self.runtime.exec(node.container, ["mariadb", "-e", "SELECT 1"], timeout=5)
            if done.exit_code != 0:
                raise RuntimeError(done.output.strip()[-200:])
            return True

        wait_until(answers, timeout=timeout, interval=0.1, max_interval=0.5,
                   what=f"{node.name} answering on its socket", details=self.logs_of_all)  # fmt: skip
        state = self.seed_from(node, source)
        wait_until(partial(self._setup_users, node), timeout=timeout, interval=0.1, max_interval=0.5,
                   what=f"{node.name}'s accounts", details=self.logs_of_all)  # fmt: skip
        return state

    def prepare_nodes(self, left: Callable[[], float]) -> None:
        """Start every node, wait until each answers and has its accounts, then create the replication
        links (``repl_links``)."""
        self.start_nodes(self.run.nodes)
        for node in self.run.nodes:
            wait_until(partial(self._setup_users, node), timeout=left(), interval=0.1, max_interval=0.5,
                       what=f"{node.name} answering", details=self.logs_of_all)  # fmt: skip
        create_links(self.run, self.repl_links())

    def repl_links(self) -> list[Link]:
        raise NotImplementedError

    def links(self) -> list[Link]:
        return [*links_for(self.run, self.services), *self.repl_links()]

    def heartbeat_config(self) -> dict[str, Any]:
        """pt-heartbeat's connection for the daemon: the writer frontend, as the clients' user."""
        return {"host": self.front_ip, "port": WRITER_PORT, "user": USER, "password": self.run.credential("client"),
                "database": DATABASE, "table": HEARTBEAT_TABLE, "interval": HEARTBEAT_INTERVAL}  # fmt: skip

    def replicate(self, node: Node, gtid: str) -> None:
        """``CHANGE MASTER`` through the node's ``nK-repl`` link (``MASTER_USE_GTID=<gtid>``), then start it.
        The async manager, started before, may repoint the node the same way at the same moment: its
        running slave then refuses this (error 1198), which is left to it (callers wait until replicating)."""
        import pymysql

        link = next(link for link in self.repl_links() if link.node == node.name)
        with contextlib.closing(self.connect(node)) as conn, conn.cursor() as cur:
            try:
                cur.execute("STOP SLAVE")
                cur.execute(
                    "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
                    f"MASTER_USE_GTID={gtid}, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
                    (toxiproxy_ip(self.run), link.listen_port, REPL_USER, self.run.credential("repl")),
                )
                cur.execute("START SLAVE")
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != 1198:
                    raise
                log.info(f"  {node.name}: repointed by the manager meanwhile")

    def haproxy_cfg(
        self, *, readers: bool = False, repl: bool = False, writers: list[Node] | None = None
    ) -> str:
        """The writer frontend on WRITER_PORT and the reader frontend on READER_PORT; every server is a
        node's client proxy. Writer servers start in maintenance (the monitor or manager enables one);
        reader servers too, unless ``readers`` (then reads balance over every node). ``repl``: a third
        frontend on REPL_FRONT_PORT whose servers are the nodes themselves, for replicas to reach whichever
        node is the source (enabled like the writer's). ``writers``: the nodes that may be the writer or
        source (default every node): the writer and repl backends hold only them."""
        proxied = {n.name: self.endpoint(n, "mysql") for n in self.run.nodes}
        may_write = [n.name for n in (self.run.nodes if writers is None else writers)]

        def servers(names: list[str]) -> str:
            return "\n".join(
                f"    server {name} {host}:{port} disabled" for name, (host, port) in proxied.items()
                if name in names
            )  # fmt: skip

        direct = "\n".join(
            f"    server {n.name} {n.ip}:{self.client_port} disabled"
            for n in self.run.nodes
            if n.name in may_write
        )
        repl_section = f"""
frontend repl
    bind 0.0.0.0:{REPL_FRONT_PORT}
    default_backend repl

backend repl
{direct}
"""
        reader_servers = "\n".join(
            f"    server {name} {host}:{port}" for name, (host, port) in proxied.items()
        )
        header = (f"# Rendered by ha-harness for run {self.run.id}: the writer and reader roles as HAProxy "
                  "servers,\n# set through the runtime API by the cluster's monitor or manager.")  # fmt: skip
        reader = f"    balance roundrobin\n{servers(list(proxied)) if not readers else reader_servers}"
        return haproxy_config(
            header, servers(may_write), reader, api=True, extra=repl_section if repl else ""
        )
