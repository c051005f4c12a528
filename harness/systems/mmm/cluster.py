"""MMM: two MariaDB masters replicating from each other, one writer at a time, managed MMM-style.

Layout of a run (addresses in the run's /24, see ``harness.runtime.cluster``):

* ``n1``, ``n2`` (``.11``, ``.12``): MariaDB 10.11 from the node image, no Galera. ``server_id`` and
  ``gtid_domain_id`` K, binlog with ``log_slave_updates``, ``sync_binlog=1``, ``auto_increment_increment=2``
  and offset K (MMM's standard), ``read_only=1`` at start (the monitor lifts it on the writer).
* Replication both ways, GTID (``MASTER_USE_GTID=slave_pos``), each replica through its **own** Toxiproxy
  link: ``n2-repl`` is n2's connection to its source n1 (the run's Toxiproxy listens, upstream n1:3306),
  ``n1-repl`` likewise, so a replication link can be slowed or cut on its own (``nemesis.link("n2-repl")``).
* HAProxy (``hh-<run>-haproxy``, ``.3``): frontend ``writer`` on 3306 and ``reader`` on 3307; every backend
  server is a master's *client* proxy (``n1-mysql``, ``n2-mysql``), so client-link faults still apply.
  Servers start in maintenance; the monitor sets their states through the runtime API on 9999.
* The monitor (``hh-<run>-monitor``, ``.4``): ``mmm_monitor.py`` (MMM's checks, states and roles, plus the
  agents' ``read_only`` switching) serving its state on ``:8080/show`` and writing it to
  ``<run dir>/monitor/state.json``, and pt-heartbeat ``--update`` through the writer frontend every 100 ms
  into ``harness.heartbeat``.

Clients reach the cluster as applications do: ``endpoint(node)`` is the writer frontend whatever the node
(a workload's op still records the node its client was assigned to — its slot, not the server that ran
it; the server is whichever master held the writer role then). Per-node reads (final reads, checksums)
run inside ``node_endpoints()``, which gives each node's own client proxy.

Users: the workloads' ``harness`` user loses ``READ_ONLY ADMIN`` here, so ``read_only`` really refuses its
writes on the standby; the monitor and this module administer the servers as ``mmm_agent``; replication
connects as ``repl`` (so the monitor's killing of client connections never hits a binlog dump).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import InfraError
from harness.runtime.base import ContainerSpec, Mount
from harness.runtime.proxies import Link, create_links, links_for, listen_port, toxiproxy_ip
from harness.runtime.run import Node
from harness.runtime.wait import wait_until
from harness.systems.base import ClusterSystem, NodeStatus
from harness.systems.mmm import SYSTEM
from harness.systems.mmm.settings import MmmTopology
from harness.systems.mysql import DATABASE, IMAGE_PASSWORD, USER

log = logging.getLogger(__name__)

ADMIN_USER = "mmm_agent"
REPL_USER = "repl"
HAPROXY_HOST = 3  # .3 of the run's subnet
MONITOR_HOST = 4
WRITER_PORT = 3306
READER_PORT = 3307
HAPROXY_API_PORT = 9999
MONITOR_PORT = 8080
HEARTBEAT_TABLE = "heartbeat"  # pt-heartbeat's table in DATABASE
HEARTBEAT_INTERVAL = 0.1
REPL_PORT_OFFSET = 100  # nK-repl listens 100 above nK-mysql: n1-repl on 11406, n2-repl on 12406
MONITOR_SCRIPT = Path(__file__).with_name("monitor.py")

START_SH = """#!/bin/sh
# Rendered by ha-harness: start one MMM master (MariaDB, data directory from the node image).
set -e
install -d -o mysql -g mysql /run/mysqld
exec mariadbd --defaults-extra-file=/etc/harness/mmm.cnf --user=mysql
"""


# pt-heartbeat's own table definition (its MAGIC_create_heartbeat). Created here, on each master and out
# of the binlog, rather than by ``pt-heartbeat --create-table``: with ``--replace`` that option TRUNCATEs the
# table each time pt-heartbeat starts, i.e. each time the writer moves, and the TRUNCATE on the new writer
# breaks replication of the old writer's last, not yet shipped heartbeat (error 1032 on restart).
HEARTBEAT_DDL = (
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.{HEARTBEAT_TABLE} ("
    "ts varchar(26) NOT NULL, server_id int unsigned NOT NULL PRIMARY KEY,"
    " file varchar(255) DEFAULT NULL, position bigint unsigned DEFAULT NULL,"
    " relay_master_log_file varchar(255) DEFAULT NULL, exec_master_log_pos bigint unsigned DEFAULT NULL)"
)


def setup_sql(admin: str, repl: str, client: str) -> tuple[str, ...]:
    """On each master before replication starts, kept out of the binlog: pt-heartbeat's table, the
    agent's and replication's accounts, and the clients' account with the run's password (last: the
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


class MmmCluster(ClusterSystem):
    name = "mmm"
    client_port = 3306
    services: ClassVar[Mapping[str, int]] = SYSTEM.services
    bootstrap_uses_proxies = True  # replication and HAProxy's backends go through the run's Toxiproxy
    topology: MmmTopology

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._local = threading.local()

    # -- addresses --------------------------------------------------------------------------------
    @property
    def haproxy_ip(self) -> str:
        return self.run.ip(HAPROXY_HOST)

    @property
    def monitor_ip(self) -> str:
        return self.run.ip(MONITOR_HOST)

    def peer(self, node: Node) -> Node:
        return next(n for n in self.run.nodes if n != node)

    def repl_links(self) -> list[Link]:
        """``nK-repl``: nK's replica connection to its source (the other master), through Toxiproxy."""
        out = []
        for k, node in enumerate(self.run.nodes, start=1):
            source = self.peer(node)
            port = listen_port(k, self.client_port) + REPL_PORT_OFFSET
            out.append(Link(f"{node.name}-repl", node.name, "repl", port, f"{source.ip}:{self.client_port}"))
        return out

    def links(self) -> list[Link]:
        return [*links_for(self.run, self.services), *self.repl_links()]

    def endpoint(self, node: Node, service: str | None = None) -> tuple[str, int]:
        """The writer frontend (what applications use), the ``reader`` frontend, or with ``mysql`` (and
        inside ``node_endpoints()``) the node's own client proxy."""
        if service == "mysql" or getattr(self._local, "direct", False):
            return super().endpoint(node, "mysql")
        if service == "reader":
            return self.haproxy_ip, READER_PORT
        if service not in (None, "writer"):
            raise InfraError(f"mmm has no service {service!r} (writer, reader, mysql)")
        return self.haproxy_ip, WRITER_PORT

    @contextlib.contextmanager
    def node_endpoints(self) -> Iterator[None]:
        previous = getattr(self._local, "direct", False)
        self._local.direct = True
        try:
            yield
        finally:
            self._local.direct = previous

    # -- rendering --------------------------------------------------------------------------------
    def mmm_cnf(self, node: Node) -> str:
        k = self.run.nodes.index(node) + 1
        return f"""# Rendered by ha-harness for run {self.run.id}, node {node.name} (MMM master {k})
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
innodb_buffer_pool_size={self.topology.settings.buffer_pool_size}
auto_increment_increment=2
auto_increment_offset={k}
read_only=ON
relay_log=relay-bin
report_host={node.name}
slave_net_timeout=4
max_connections=500
max_connect_errors=1000000000
"""

    def haproxy_cfg(self) -> str:
        proxied = {n.name: self.endpoint(n, "mysql") for n in self.run.nodes}

        def servers(extra: str = "") -> str:
            return "\n".join(
                f"    server {name} {host}:{port} disabled{extra}" for name, (host, port) in proxied.items()
            )

        return f"""# Rendered by ha-harness for run {self.run.id}: MMM's writer and reader roles as HAProxy
# servers. Every server starts in maintenance; the monitor sets states through the runtime API.
global
    maxconn 4096
    stats socket ipv4@0.0.0.0:{HAPROXY_API_PORT} level admin

defaults
    mode tcp
    timeout connect 2s
    timeout client 1h
    timeout server 1h

frontend writer
    bind 0.0.0.0:{WRITER_PORT}
    default_backend writer

backend writer
{servers()}

frontend reader
    bind 0.0.0.0:{READER_PORT}
    default_backend reader

backend reader
    balance roundrobin
{servers()}
"""

    def monitor_config(self) -> dict[str, Any]:
        timers = ("check_period", "trap_period", "timeout", "max_backlog", "auto_set_online", "rep_grace",
                  "flap_count", "flap_duration")  # fmt: skip
        settings = {name: getattr(self.topology.settings, name) for name in timers}
        heartbeat = {"host": self.haproxy_ip, "port": WRITER_PORT, "user": USER,
                     "password": self.run.credential("client"),
                     "database": DATABASE, "table": HEARTBEAT_TABLE,
                     "interval": HEARTBEAT_INTERVAL}  # fmt: skip
        return {
            "hosts": [{"name": n.name, "ip": n.ip, "peer": self.peer(n).name} for n in self.run.nodes],
            "user": ADMIN_USER,
            "password": self.run.credential("admin"),
            "app_user": USER,
            "mysql_port": self.client_port,
            "settings": settings,
            "haproxy": {"host": self.haproxy_ip, "port": HAPROXY_API_PORT},
            "http_port": MONITOR_PORT,
            "state_file": "/etc/mmm/state.json",
            "heartbeat": heartbeat,
        }

    def helper_dir(self, name: str) -> Path:
        return self.node_dir(self.run.nodes[0]).parent / name

    def render(self, directory: Path) -> None:
        for node in self.run.nodes:
            target = directory / node.name
            target.mkdir(parents=True, exist_ok=True)
            (target / "mmm.cnf").write_text(self.mmm_cnf(node))
            (target / "start.sh").write_text(START_SH)
        haproxy = directory / "haproxy"
        haproxy.mkdir(parents=True, exist_ok=True)
        (haproxy / "haproxy.cfg").write_text(self.haproxy_cfg())
        monitor = directory / "monitor"
        monitor.mkdir(parents=True, exist_ok=True)
        (monitor / "monitor.json").write_text(json.dumps(self.monitor_config(), indent=2))
        shutil.copyfile(MONITOR_SCRIPT, monitor / "mmm_monitor.py")
        # its state machine, imported as a sibling module by the script
        shutil.copyfile(MONITOR_SCRIPT.with_name("monitor_state.py"), monitor / "monitor_state.py")

    # -- containers -------------------------------------------------------------------------------
    def container_spec(self, node: Node, *, bootstrap: bool = False) -> ContainerSpec:
        mounts = [Mount(str(self.node_dir(node)), "/etc/harness")]
        return self.base_spec(node, ["sh", "/etc/harness/start.sh"], mounts, user="0")

    def helper_spec(self, name: str, host: int, command: list[str], mount: Mount, **kw: Any) -> ContainerSpec:
        return ContainerSpec(
            name=f"hh-{self.run.id}-{name}",
            image=self.run.image,
            command=command,
            hostname=name,
            network=self.run.network,
            ip=self.run.ip(host),
            labels=self.run.labels(name),
            mounts=[mount],
            extra_hosts={n.name: n.ip for n in self.run.nodes},
            **kw,
        )

    def haproxy_spec(self) -> ContainerSpec:
        mount = Mount(str(self.helper_dir("haproxy")), "/etc/harness")
        return self.helper_spec(
            "haproxy", HAPROXY_HOST, ["haproxy", "-db", "-f", "/etc/harness/haproxy.cfg"], mount
        )

    def monitor_spec(self) -> ContainerSpec:
        mount = Mount(str(self.helper_dir("monitor")), "/etc/mmm", read_only=False)
        command = ["python3", "-u", "/etc/mmm/mmm_monitor.py", "/etc/mmm/monitor.json"]
        # The host's uid, so that the state file it writes into the run directory stays removable.
        return self.helper_spec("monitor", MONITOR_HOST, command, mount, user=f"{os.getuid()}:{os.getgid()}")

    # -- bootstrap --------------------------------------------------------------------------------
    def bootstrap(self) -> None:
        started = time.monotonic()
        timeout = self.topology.timeouts.startup
        nodes = self.run.nodes

        def left() -> float:
            return max(1.0, timeout - (time.monotonic() - started))

        self.start_nodes(nodes)
        for node in nodes:
            wait_until(partial(self._setup_users, node), timeout=left(), interval=0.1, max_interval=0.5,
                       what=f"{node.name} answering", details=self.logs_of_all)  # fmt: skip
        create_links(self.run, self.repl_links())
        for node in nodes:
            self._replicate(node)
        self.wait_replicating(nodes, timeout=left())
        log.info(
            f"  mmm: masters replicating both ways via n1-repl/n2-repl ({time.monotonic() - started:.1f}s)"
        )
        self.runtime.run(self.haproxy_spec())
        self.runtime.run(self.monitor_spec())
        for node in nodes:  # an operator's first step after installing MMM: `mmm_control set_online`
            wait_until(partial(self.set_online, node.name), timeout=left(), interval=0.1, max_interval=0.3,
                       what=f"monitor sets {node.name} online", details=self.logs_of_all)  # fmt: skip
        self.wait_ready(timeout=left())
        log.info(f"  mmm: writer {self.primary().name}, both masters ONLINE, heartbeats flowing "
            f"({time.monotonic() - started:.1f}s)")  # fmt: skip

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

    def _replicate(self, node: Node) -> None:
        link = next(link for link in self.repl_links() if link.node == node.name)
        conn = self.connect(node)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
                    "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
                    (toxiproxy_ip(self.run), link.listen_port, REPL_USER, self.run.credential("repl")),
                )
                cur.execute("START SLAVE")
        finally:
            conn.close()

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

    def wait_ready(self, *, timeout: float) -> None:
        """Both masters replicating and ONLINE, a writer holding writes, the writer frontend reaching it,
        and pt-heartbeat's row visible on both masters."""

        def check() -> bool:
            show = self.monitor_state()
            states = {name: h["state"] for name, h in show["hosts"].items()}
            if any(state != "ONLINE" for state in states.values()):
                raise RuntimeError(f"monitor: {states}")
            writer = show.get("writer")
            if not writer or not show.get("writer_active"):
                raise RuntimeError(f"monitor: writer {writer}, active {show.get('writer_active')}")
            for node in self.run.nodes:
                slave = self.slave_status(node)
                if slave.get("Slave_IO_Running") != "Yes" or slave.get("Slave_SQL_Running") != "Yes":
                    raise RuntimeError(f"{node.name}: replication not running")
            conn = self.connect_endpoint(self.endpoint(self.run.nodes[0]), timeout=1.0)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT @@hostname")
                    (served_by,) = cur.fetchone()
            finally:
                conn.close()
            if served_by != writer:
                raise RuntimeError(f"writer frontend reaches {served_by}, the monitor's writer is {writer}")
            for node in self.run.nodes:
                if self.heartbeat_ts(node) is None:
                    raise RuntimeError(f"{node.name}: no pt-heartbeat row yet")
            return True

        wait_until(check, timeout=timeout, interval=0.1, max_interval=0.5,
                   what="mmm ready (both ONLINE, writer active, heartbeats on both)",
                   details=self.logs_of_all)  # fmt: skip

    # -- observation ------------------------------------------------------------------------------
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

    def connect_endpoint(self, endpoint: tuple[str, int], *, timeout: float = 2.0) -> Any:
        """A client connection as the workloads' user to an endpoint (writer/reader frontend, a proxy)."""
        import pymysql

        host, port = endpoint
        user, password = self.client_credentials()
        return pymysql.connect(host=host, port=port, user=user, password=password, database=DATABASE,
                               connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
                               autocommit=True)  # fmt: skip

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

    def monitor_state(self, *, timeout: float = 2.0) -> dict[str, Any]:
        """The monitor's ``mmm_control show``: hosts, states, roles, checks, writer, last changes."""
        with urllib.request.urlopen(f"http://{self.monitor_ip}:{MONITOR_PORT}/show", timeout=timeout) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def set_online(self, host: str) -> bool:
        """``mmm_control set_online HOST``; True once the host is ONLINE."""
        request = urllib.request.Request(
            f"http://{self.monitor_ip}:{MONITOR_PORT}/set_online/{host}", method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=2.0) as r:
                return bool(json.loads(r.read()).get("ok"))
        except urllib.error.HTTPError as exc:
            raise RuntimeError(json.loads(exc.read()).get("message", str(exc))) from None

    def primary(self) -> Node:
        """The monitor's writer; n1 when the monitor does not answer or no host holds the role."""
        with contextlib.suppress(Exception):
            writer = self.monitor_state(timeout=1.0).get("writer")
            if writer:
                return self.run.node(writer)
        return self.run.nodes[0]

    def node_status(self, node: Node) -> NodeStatus:
        state = self.container_state(node)
        if state != "running":
            return NodeStatus(node.name, "-", node.ip, state, False, None)
        try:
            host = self.monitor_state(timeout=1.0)["hosts"][node.name]
            mmm_state, roles = str(host["state"]), ",".join(host["roles"]) or "-"
        except Exception:
            mmm_state, roles = "monitor?", "?"
        try:
            slave = self.slave_status(node)
            ro = self.read_only(node)
        except Exception as exc:
            return NodeStatus(node.name, roles, node.ip, f"{mmm_state}, no answer", False, self.uptime(node),
                              str(exc)[:80])  # fmt: skip
        io, sql = slave.get("Slave_IO_Running"), slave.get("Slave_SQL_Running")
        behind = slave.get("Seconds_Behind_Master")
        text = f"{mmm_state} io={io} sql={sql} behind={behind if behind is not None else 'NULL'} ro={ro}"
        healthy = io == "Yes" and sql == "Yes" and mmm_state == "ONLINE"
        return NodeStatus(node.name, roles, node.ip, text, healthy, self.uptime(node))

    def logs_of_all(self, tail: int = 15) -> str:
        parts = [super().logs_of_all(tail)]
        for helper in ("monitor", "haproxy"):
            text = self.runtime.logs(f"hh-{self.run.id}-{helper}", tail=tail).rstrip()
            indented = "\n".join(f"    {line}" for line in text.splitlines()[-tail:])
            parts.append(f"  {helper} last log lines:\n{indented}")
        return "\n".join(parts)
