"""Async replication: a MariaDB source and replicas (GTID), failed over by a replication manager.

Layout of a run (addresses in the run's /24):

* ``n1``…``nN`` (``.11``…): MariaDB 10.11 from the node image. ``server_id`` and ``gtid_domain_id`` K,
  binlog with ``log_slave_updates`` and ``sync_binlog=1``, ``read_only=1`` at start (the manager lifts it
  on the source). n1 is the first source; every other node replicates from it.
* Each node's replication connection goes through its **own** Toxiproxy link ``nK-repl`` (n1-repl is unused
  until n1 replicates from someone), so a replication link can be slowed or cut on its own, to HAProxy's
  ``repl`` frontend, whose one enabled server is the source itself: the link names stay the replica's
  whoever the source is (retargeting a Toxiproxy proxy whose upstream is dead hangs its API).
* HAProxy (``.3``): frontend ``writer`` on 3306 (the source's server ready, every other in maintenance),
  ``reader`` on 3307 (every node, round robin), both over the nodes' client proxies ``nK-mysql``, and
  ``repl`` on 3308 over the nodes themselves (the source's server ready, like the writer's).
* The manager (``.4``): ``manager.py`` (checks, failover, repointing; its rules in ``failover_state.py``),
  serving its state on ``:8080/show`` and into ``<run dir>/manager/state.json``, and pt-heartbeat
  ``--update`` through the writer frontend every 100 ms into ``harness.heartbeat`` for the lag probe. It
  checks each node through the node's client proxy, as HAProxy reaches it: a cut client link is a dead
  source to it.
* ``semi_sync``: every node has MariaDB's semi-sync replica side on; the manager turns the source side on
  where it promotes (``AFTER_SYNC``: a commit is acknowledged once a replica has it in its relay log, or
  after ``semi_sync_timeout``, when the source falls back to async until a replica catches up).

What the manager cannot decide is the harness's, as an operator's action (an event of the run, so the
result says it stepped in): a former source that comes back with transactions the new source never got
is *diverged*; after the heal it is rebuilt from the source (``mariadb-dump --gtid`` into an emptied
database, its binlog reset), which discards those writes for good — that is the cost of async failover
the set checker then reports as lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from harness.runtime.base import ContainerSpec
from harness.runtime.proxies import Link, listen_port, toxiproxy_ip
from harness.runtime.run import Node
from harness.runtime.wait import wait_until
from harness.systems.base import NodeStatus
from harness.systems.mysql import USER
from harness.systems.mysql_replicated import (
    ADMIN_USER,
    REPL_FRONT_PORT,
    REPL_PORT_OFFSET,
    REPL_USER,
    ProxiedMysqlCluster,
)
from harness.systems.replication import SYSTEM
from harness.systems.replication.settings import AsyncTopology

log = logging.getLogger(__name__)

MANAGER_HOST = 4
MANAGER_PORT = 8080
MANAGER_SCRIPT = Path(__file__).with_name("manager.py")


class AsyncCluster(ProxiedMysqlCluster):
    name = "mysql-async"
    services: ClassVar[Mapping[str, int]] = SYSTEM.services
    data_dir: ClassVar[str] = SYSTEM.data_dir
    helpers: ClassVar[tuple[str, ...]] = ("manager", "haproxy")
    topology: AsyncTopology

    # -- addresses --------------------------------------------------------------------------------
    @property
    def manager_ip(self) -> str:
        return self.run.ip(MANAGER_HOST)

    @property
    def first_source(self) -> Node:
        return self.run.nodes[0]

    def repl_links(self) -> list[Link]:
        """``nK-repl``: nK's replication connection to HAProxy's ``repl`` frontend, i.e. to whichever node
        is the source (n1's is unused until it is a replica)."""
        out = []
        for node in self.run.nodes:
            port = listen_port(node.number, self.client_port) + REPL_PORT_OFFSET
            out.append(
                Link(f"{node.name}-repl", node.name, "repl", port, f"{self.front_ip}:{REPL_FRONT_PORT}")
            )
        return out

    # -- rendering --------------------------------------------------------------------------------
    def cnf_extra(self, node: Node) -> str:
        """Relay log recovery (a restarted replica refetches what its relay log may have lost), and
        semi-sync's settings: the replica side on everywhere, the source side left to the manager."""
        s = self.topology.settings
        semi = (
            "rpl_semi_sync_slave_enabled=ON\nrpl_semi_sync_master_enabled=OFF\n"
            "rpl_semi_sync_master_wait_point=AFTER_SYNC\n"
            f"rpl_semi_sync_master_timeout={int(s.semi_sync_timeout * 1000)}\n"
        )
        return "relay_log_recovery=ON\n" + (semi if s.semi_sync else "")

    def async_cnf(self, node: Node) -> str:
        return self.server_cnf(node, "async replication, server", self.cnf_extra(node))

    def manager_config(self) -> dict[str, Any]:
        s = self.topology.settings
        hosts = []
        for node in self.run.nodes:
            check_host, check_port = self.endpoint(node, "mysql")
            hosts.append({"name": node.name, "ip": node.ip, "check_host": check_host, "check_port": check_port,
                          "repl_port": listen_port(node.number, self.client_port) + REPL_PORT_OFFSET})  # fmt: skip
        return {
            "hosts": hosts,
            "source": self.first_source.name,
            "user": ADMIN_USER,
            "password": self.run.credential("admin"),
            "app_user": USER,
            "mysql_port": self.client_port,
            "check_timeout": s.check_timeout,
            "settings": {
                "check_period": s.check_period,
                "failover_after": s.failover_after,
                "apply_timeout": s.apply_timeout,
                "action_timeout": s.apply_timeout + 2 * s.check_timeout + 3.0,
            },
            "semi_sync": s.semi_sync,
            "repl": {
                "host": toxiproxy_ip(self.run),
                "user": REPL_USER,
                "password": self.run.credential("repl"),
            },
            "haproxy": self.haproxy_api_config(),
            "http_port": MANAGER_PORT,
            "state_file": "/etc/manager/state.json",
            "heartbeat": self.heartbeat_config(),
        }

    def render(self, directory: Path) -> None:
        self.render_nodes(directory, "async.cnf", "async replication, server", self.cnf_extra)
        files = {
            "manager.py": MANAGER_SCRIPT,
            "failover_state.py": MANAGER_SCRIPT.with_name("failover_state.py"),
        }
        self.render_helpers(directory, self.haproxy_cfg(readers=True, repl=True), "manager", files,
                            self.manager_config())  # fmt: skip

    def manager_spec(self) -> ContainerSpec:
        return self.daemon_spec("manager", MANAGER_HOST, "/etc/manager", "manager.py")

    # -- bootstrap --------------------------------------------------------------------------------
    def bootstrap(self) -> None:
        started = time.monotonic()
        timeout = self.topology.timeouts.startup
        nodes = self.run.nodes

        def left() -> float:
            return max(1.0, timeout - (time.monotonic() - started))

        self.prepare_nodes(left)
        self.start_frontends()
        self.runtime.run(self.manager_spec())  # it makes n1 writable and routes writer/n1 and repl/n1
        replicas = [n for n in nodes if n != self.first_source]
        for node in replicas:
            self.replicate(node, "current_pos")
        self.wait_replicating(replicas, timeout=left())
        log.info(f"  mysql-async: {len(replicas)} replica(s) of n1 ({time.monotonic() - started:.1f}s)")
        self.wait_ready(timeout=left())
        log.info(f"  mysql-async: source {self.primary().name} routed, replicas replicating, heartbeats "
                 f"flowing ({time.monotonic() - started:.1f}s)")  # fmt: skip

    def wait_ready(self, *, timeout: float) -> None:
        """The manager's source writable and routed, every replica replicating from it, the writer
        frontend reaching it, and pt-heartbeat's row on every node."""

        def check() -> bool:
            problems = self.problems()
            if problems:
                raise RuntimeError("; ".join(problems))
            for node in self.run.nodes:
                if self.heartbeat_ts(node) is None:
                    raise RuntimeError(f"{node.name}: no pt-heartbeat row yet")
            return True

        wait_until(check, timeout=timeout, interval=0.1, max_interval=0.5,
                   what="mysql-async ready (source routed, replicas replicating, heartbeats on every node)",
                   details=self.logs_of_all)  # fmt: skip

    def problems(self) -> list[str]:
        """Why the cluster is not in its steady state (empty when it is): the manager's view, each node's
        own, and the writer frontend."""
        show = self.manager_state()
        source = show.get("source")
        if show.get("phase") != "steady" or not source or show.get("routed") != source:
            return [f"manager: phase {show.get('phase')}, source {source}, routed {show.get('routed')}"]
        out = [f"{name}: diverged from {source}" for name in show.get("diverged", [])]
        for node in self.run.nodes:
            try:
                ro = self.read_only(node)
                slave = self.slave_status(node)
            except Exception as exc:
                out.append(f"{node.name}: {type(exc).__name__}")
                continue
            if node.name == source:
                if ro != 0:
                    out.append(f"{node.name}: source still read_only")
            elif ro != 1 or slave.get("Slave_IO_Running") != "Yes" or slave.get("Slave_SQL_Running") != "Yes":
                out.append(f"{node.name}: read_only {ro}, io {slave.get('Slave_IO_Running')}, "
                           f"sql {slave.get('Slave_SQL_Running')}")  # fmt: skip
        if not out:
            served_by = self.writer_serves()
            if served_by != source:
                out.append(f"writer frontend reaches {served_by}, the manager's source is {source}")
        return out

    # -- healing ----------------------------------------------------------------------------------
    def after_heal(self) -> None:
        """Once every node answers the manager again, rebuild any former source it found diverged (an
        operator's action: it discards that node's writes the source never got)."""
        deadline = time.monotonic() + self.topology.timeouts.heal

        def settled() -> tuple[bool, list[str]]:
            show = self.manager_state()
            hosts = show["hosts"]
            if show.get("phase") != "steady" or show.get("routed") != show.get("source"):
                raise RuntimeError(f"manager: phase {show.get('phase')}, routed {show.get('routed')}")
            waiting = [n for n, h in hosts.items() if not h["answers"]]
            if waiting:
                raise RuntimeError(f"manager: {', '.join(waiting)} not answering")
            unsettled = [n for n, h in hosts.items() if n != show["source"] and not h["diverged"]
                         and not (h["upstream"] == show["source"] and h["io_running"])]  # fmt: skip
            if unsettled:
                raise RuntimeError(f"manager: {', '.join(unsettled)} not replicating from the source yet")
            return True, list(show.get("diverged", []))

        _, diverged = wait_until(settled, timeout=max(1.0, deadline - time.monotonic()), interval=0.2,
                              max_interval=0.5, what="the manager settled after the heal")  # fmt: skip
        if diverged:
            self.rebuild([self.run.node(n) for n in diverged])

    def rebuild(self, nodes: list[Node]) -> None:
        source = self.primary()
        detail = {"source": source.name, "why": "transactions the source never got (async failover)"}
        with self.events.action("operator-rebuild", "mariadb-dump --gtid", [n.name for n in nodes], detail):
            for node in nodes:
                self._rebuild(node, source)

    def _rebuild(self, node: Node, source: Node) -> None:
        with contextlib.closing(self.connect(node, timeout=10.0)) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL read_only = 1")
            cur.execute("STOP SLAVE")
            cur.execute("RESET SLAVE ALL")
        # The dump drops and recreates the database and sets gtid_slave_pos to the source's position. The
        # binlog (its errant GTIDs) is reset only after that: until then the manager still sees the node
        # diverged and leaves it alone, so nothing starts replication while the import runs.
        state = self.seed_from(node, source)
        log.info(f"  mysql-async: {node.name} rebuilt from {source.name} (binlog state {state or 'empty'})")

    def reseed(self, node: Node) -> None:
        """A node back empty (``wipe``): once the manager has another source (it fails a wiped source over
        first), seeded from it by a dump, as an operator would; the manager then repoints it."""

        def other_source() -> Node | None:
            source = self.manager_state(timeout=1.0).get("source")
            return self.run.node(source) if source and source != node.name else None

        source = wait_until(other_source, timeout=self.topology.timeouts.heal, interval=0.2, max_interval=0.5,
                            what=f"the manager's source other than {node.name}")  # fmt: skip
        detail = {"source": source.name, "why": "its data directory was lost (wipe)"}
        with self.events.action("operator-reseed", "mariadb-dump --gtid", node.name, detail):
            state = self.seed_empty(node, source)
        log.info(f"  mysql-async: {node.name} seeded from {source.name} (binlog state {state})")

    # -- observation ------------------------------------------------------------------------------
    def manager_state(self, *, timeout: float = 2.0) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{self.manager_ip}:{MANAGER_PORT}/show", timeout=timeout) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def primary(self) -> Node:
        """The manager's source; n1 when the manager does not answer or has none."""
        with contextlib.suppress(Exception):
            source = self.manager_state(timeout=1.0).get("source")
            if source:
                return self.run.node(source)
        return self.first_source

    def node_status(self, node: Node) -> NodeStatus:
        state = self.container_state(node)
        if state != "running":
            return NodeStatus(node.name, "-", node.ip, state, False, None)
        try:
            show = self.manager_state(timeout=1.0)
            host = show["hosts"][node.name]
            is_source = show.get("source") == node.name
            role = "source" if is_source else "replica"
            steady = show.get("phase") == "steady" and show.get("routed") == show.get("source")
            diverged = bool(host.get("diverged"))
            upstream = host.get("upstream")
        except Exception:
            role, is_source, steady, diverged, upstream = "manager?", False, False, False, None
        try:
            slave = self.slave_status(node)
            ro = self.read_only(node)
        except Exception as exc:
            return NodeStatus(node.name, role, node.ip, "no answer", False, self.uptime(node), str(exc)[:80])
        io, sql = slave.get("Slave_IO_Running"), slave.get("Slave_SQL_Running")
        behind = slave.get("Seconds_Behind_Master")
        text = f"ro={ro} io={io} sql={sql} behind={behind if behind is not None else 'NULL'}"
        if upstream:
            text += f" from={upstream}"
        if diverged:
            text += " DIVERGED"
        replicating = io == "Yes" and sql == "Yes" and ro == 1 and not diverged
        healthy = steady and ((is_source and ro == 0) or (not is_source and replicating))
        return NodeStatus(node.name, role, node.ip, text, healthy, self.uptime(node))
