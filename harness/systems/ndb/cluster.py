"""NDB Cluster on the official image (``mysql/mysql-cluster:8.0``), as the harness would run it.

Never run here (no registry reachable, so the image is absent and ``up`` refuses before anything
starts); the configuration, the bring-up order and the parsers it relies on are unit-tested.

Bootstrap walks ``bringup_plan``: management server, every data node at once (an initial start), then
the SQL nodes, then the clients' database. Each node's start script passes ``--initial`` only while its
file system (data node) or configuration cache (management node) does not exist, so a killed node that is
started again does a normal node restart and rejoins.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from harness.runtime.base import ContainerSpec, Mount
from harness.runtime.run import Node
from harness.runtime.wait import wait_until
from harness.systems.base import ClusterSystem, NodeStatus
from harness.systems.ndb import SYSTEM
from harness.systems.ndb.bringup import Sql, Start, Step, WaitFor, bringup_plan
from harness.systems.ndb.render import (
    CONFIG_DIR,
    MGM_PORT,
    SQL_PORT,
    account_sql,
    config_ini,
    my_cnf,
    start_sh,
)
from harness.systems.ndb.settings import NdbTopology, Role
from harness.systems.ndb.status import NODES_SQL, Show, parse_ndbinfo_nodes, parse_show

log = logging.getLogger(__name__)

MGM_TIMEOUT = 10.0  # one ndb_mgm call (it retries its connection once)


class NdbCluster(ClusterSystem):
    name = "ndb"
    client_port = SQL_PORT
    services: ClassVar[Mapping[str, int]] = SYSTEM.services
    data_dir: ClassVar[str] = SYSTEM.data_dir
    topology: NdbTopology

    # -- the topology on this run -------------------------------------------------------------------
    @property
    def ips(self) -> dict[str, str]:
        return {n.name: n.ip for n in self.run.nodes}

    def nodes_with(self, role: Role) -> list[Node]:
        return [self.run.node(n) for n in self.topology.nodes_with(role)]

    def node_of_id(self, node_id: int) -> Node | None:
        names = {i: n for n, i in self.topology.settings.ids().items()}
        return self.run.node(names[node_id]) if node_id in names else None

    # -- configuration ------------------------------------------------------------------------------
    def render(self, directory: Path) -> None:
        roles = self.topology.settings.roles()
        for node in self.run.nodes:
            target = directory / node.name
            target.mkdir(parents=True, exist_ok=True)
            (target / "start.sh").write_text(start_sh(self.topology, self.ips, node.name))
            if roles[node.name] == "mgm":
                (target / "config.ini").write_text(config_ini(self.topology, self.ips, self.run.id))
            elif roles[node.name] == "sql":
                (target / "my.cnf").write_text(my_cnf(self.topology, self.ips, node.name, self.run.id))
                (target / "init.sql").write_text(account_sql(self.run.credential("client")))

    def container_spec(self, node: Node, *, bootstrap: bool = False) -> ContainerSpec:
        return self.base_spec(node, ["sh", f"{CONFIG_DIR}/start.sh"], [Mount(str(self.node_dir(node)), CONFIG_DIR)],
                              user="0")  # fmt: skip

    # -- bring-up -----------------------------------------------------------------------------------
    def bootstrap(self) -> None:
        started = time.monotonic()
        deadline = started + self.topology.timeouts.startup
        for step in bringup_plan(self.topology, self.ips):
            self.take(step, max(1.0, deadline - time.monotonic()))
            log.info(f"  ndb: {step.describe()} ({time.monotonic() - started:.1f}s)")

    def take(self, step: Step, timeout: float) -> None:
        if isinstance(step, Start):
            self.start_nodes([self.run.node(n) for n in step.nodes])
        elif isinstance(step, WaitFor):
            check = {"mgm-answers": self._mgm_answers, "data-nodes-started": self._data_nodes_started,
                     "sql-nodes-connected": self._sql_nodes_connected}[step.condition]  # fmt: skip
            wait_until(check, timeout=timeout, interval=0.5, max_interval=2.0,
                       what=f"ndb: {step.describe()}", details=self.logs_of_all)  # fmt: skip
        elif isinstance(step, Sql):
            conn = self.connect(self.run.node(step.node), timeout=10.0)
            try:
                with conn.cursor() as cur:
                    cur.execute(step.statement)
            finally:
                conn.close()

    def _mgm_answers(self) -> bool:
        self.show()
        return True

    def _data_nodes_started(self) -> bool:
        show = self.show()
        data = show.of("NDB")
        if len(data) != self.topology.settings.data_nodes or not show.all_data_nodes_started:
            raise RuntimeError("data nodes: " + ", ".join(f"{n.node_id} {n.state}" for n in data))
        return True

    def _sql_nodes_connected(self) -> bool:
        show = self.show()
        ids = self.topology.settings.ids()
        for node in self.nodes_with("sql"):
            entry = show.node(ids[node.name])
            if entry is None or not entry.connected:
                raise RuntimeError(f"{node.name} (id {ids[node.name]}) not connected to the cluster")
            self.connect(node, timeout=2.0).close()
        return True

    # -- observation --------------------------------------------------------------------------------
    def show(self) -> Show:
        """``ndb_mgm -e SHOW`` on the first management node that answers."""
        errors = []
        for node in self.nodes_with("mgm"):
            if self.container_state(node) != "running":
                errors.append(f"{node.name} {self.container_state(node)}")
                continue
            cmd = [
                "ndb_mgm",
                f"--ndb-connectstring={node.ip}:{MGM_PORT}",
                "--connect-retries=1",
                "-e",
                "SHOW",
            ]
            result = self.runtime.exec(node.container, cmd, timeout=MGM_TIMEOUT)
            try:
                if result.exit_code == 0:
                    return parse_show(result.output)
                errors.append(f"{node.name}: ndb_mgm exit {result.exit_code}: {result.output.strip()[:120]}")
            except ValueError as exc:
                errors.append(f"{node.name}: {exc}")
        raise RuntimeError("no management server answers: " + "; ".join(errors))

    def connect(self, node: Node, *, timeout: float = 2.0, database: str | None = None) -> Any:
        import pymysql

        user, password = self.client_credentials()
        return pymysql.connect(
            host=node.ip, port=self.client_port, user=user, password=password, database=database,
            connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout, autocommit=True,
        )  # fmt: skip

    def ndbinfo_nodes(self, node: Node) -> dict[int, Any]:
        """``ndbinfo.nodes`` read on an SQL node: the data nodes it sees, by node id."""
        conn = self.connect(node, timeout=1.0)
        try:
            with conn.cursor() as cur:
                cur.execute(NODES_SQL)
                return parse_ndbinfo_nodes(cur.fetchall())
        finally:
            conn.close()

    def primary(self) -> Node:
        """The president data node (SHOW's ``*``); the first data node when no management server answers."""
        try:
            president = self.show().president
        except Exception:
            president = None
        node = None if president is None else self.node_of_id(president)
        return node or self.nodes_with("data")[0]

    def node_status(self, node: Node) -> NodeStatus:
        role = self.topology.settings.roles()[node.name]
        state = self.container_state(node)
        if state != "running":
            return NodeStatus(node.name, role, node.ip, state, False, None)
        if role == "sql":
            return self.sql_status(node)
        try:
            show = self.show()
        except Exception as exc:
            return NodeStatus(node.name, role, node.ip, "no answer", False, self.uptime(node), str(exc)[:80])
        entry = show.node(self.topology.settings.ids()[node.name])
        if entry is None:
            return NodeStatus(node.name, role, node.ip, "not in SHOW", False, self.uptime(node))
        if role == "mgm":
            data = show.of("NDB")
            started = sum(n.started for n in data)
            arbitrator = self.topology.settings.ranks()[node.name] == 1
            return NodeStatus(node.name, "management (arbitrator)" if arbitrator else "management", node.ip,
                              f"{started}/{len(data)} data nodes started", entry.connected, self.uptime(node))  # fmt: skip
        label = f"data (group {entry.node_group}{', president' if entry.president else ''})"
        return NodeStatus(node.name, label, node.ip, entry.state, entry.started, self.uptime(node))

    def sql_status(self, node: Node) -> NodeStatus:
        """An SQL node is healthy when it answers and sees every data node STARTED (ndbinfo.nodes)."""
        try:
            nodes = self.ndbinfo_nodes(node)
        except Exception as exc:
            return NodeStatus(node.name, "sql", node.ip, "no answer", False, self.uptime(node), str(exc)[:80])
        expected = self.topology.settings.data_nodes
        started = sum(n.started for n in nodes.values())
        return NodeStatus(node.name, "sql", node.ip, f"{started}/{expected} data nodes STARTED",
                          started == expected, self.uptime(node))  # fmt: skip
