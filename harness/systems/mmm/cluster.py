"""MMM: two MariaDB masters replicating from each other, one writer at a time, managed MMM-style, and
optionally read-only slaves of the active master (``settings.slaves``: n3 and on, MMM's ``mode slave``).

Layout of a run (addresses in the run's /24, see ``harness.runtime.cluster``):

* ``n1``, ``n2`` (``.11``, ``.12``): MariaDB 10.11 from the node image, no Galera. ``server_id`` and
  ``gtid_domain_id`` K, binlog with ``log_slave_updates``, ``sync_binlog=1``, ``auto_increment_increment=2``
  and offset K (MMM's standard), ``read_only=1`` at start (the monitor lifts it on the writer).
* Replication both ways, GTID (``MASTER_USE_GTID=slave_pos``), each replica through its **own** Toxiproxy
  link: ``n2-repl`` is n2's connection to its source n1 (the run's Toxiproxy listens, upstream n1:3306),
  ``n1-repl`` likewise, so a replication link can be slowed or cut on its own (``nemesis.link("n2-repl")``).
* Slaves (``n3``…, ``.13``…): MariaDB like the masters (``server_id``/``gtid_domain_id`` K, binlog,
  ``read_only=1`` always: the monitor never lifts it), with ``relay_log_recovery``. Each replicates
  through its own link ``nK-repl`` too, but that link's upstream is HAProxy's ``repl`` frontend (3308),
  whose servers are the masters themselves and whose one ready server is the writer's, so the link name
  stays the slave's whoever the active master is (Toxiproxy cannot be retargeted reliably: its API hangs
  when the old upstream is dead). When the writer moves, the monitor moves ``repl/<host>`` with it and then
  runs mmm_agentd's ``set_active_master`` on each slave: apply what the relay log holds, ``STOP SLAVE``,
  ``CHANGE MASTER ... MASTER_USE_GTID=slave_pos`` through the link, ``START SLAVE`` — MMM's own steps, the
  GTID position in place of the binlog coordinates MMM reads on the new master (GTID resumes exactly
  after what the slave applied: nothing skipped, nothing applied twice). HAProxy alone would also move
  the slave's connection; the explicit repoint keeps MMM's order (the slave caught up first, then told
  its new master) and lets the monitor check, by ``Master_Server_Id``, that each slave follows the writer.
* HAProxy (``hh-<run>-haproxy``, ``.3``): frontend ``writer`` on 3306 and ``reader`` on 3307; every backend
  server is a node's *client* proxy (``n1-mysql``, ``n2-mysql``, a slave's too), so client-link faults
  still apply; the writer backend holds only the masters. With slaves, frontend ``repl`` on 3308 (above).
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
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from harness.runtime.base import ContainerSpec
from harness.runtime.proxies import Link, listen_port, toxiproxy_ip
from harness.runtime.run import Node
from harness.runtime.wait import wait_until
from harness.systems.base import NodeStatus
from harness.systems.mmm import SYSTEM
from harness.systems.mmm.settings import MmmTopology
from harness.systems.mysql import USER
from harness.systems.mysql_replicated import (
    ADMIN_USER,
    REPL_FRONT_PORT,
    REPL_PORT_OFFSET,
    REPL_USER,
    ProxiedMysqlCluster,
)

log = logging.getLogger(__name__)

MONITOR_HOST = 4
MONITOR_PORT = 8080
MONITOR_SCRIPT = Path(__file__).with_name("monitor.py")


class MmmCluster(ProxiedMysqlCluster):
    name = "mmm"
    services: ClassVar[Mapping[str, int]] = SYSTEM.services
    data_dir: ClassVar[str] = SYSTEM.data_dir
    helpers: ClassVar[tuple[str, ...]] = ("monitor", "haproxy")
    topology: MmmTopology

    # -- addresses --------------------------------------------------------------------------------
    @property
    def monitor_ip(self) -> str:
        return self.run.ip(MONITOR_HOST)

    @property
    def masters(self) -> list[Node]:
        return [n for n in self.run.nodes if n.name in self.topology.masters]

    @property
    def slaves(self) -> list[Node]:
        return [n for n in self.run.nodes if n.name in self.topology.slaves]

    def is_slave(self, node: Node) -> bool:
        return node.name in self.topology.slaves

    def peer(self, node: Node) -> Node:
        """A master's other master."""
        return next(n for n in self.masters if n != node)

    def repl_port(self, node: Node) -> int:
        return listen_port(node.number, self.client_port) + REPL_PORT_OFFSET

    def repl_links(self) -> list[Link]:
        """``nK-repl``: nK's replica connection through Toxiproxy: a master's to the other master, a
        slave's to HAProxy's ``repl`` frontend (the active master)."""
        out = []
        for node in self.run.nodes:
            if self.is_slave(node):
                upstream = f"{self.front_ip}:{REPL_FRONT_PORT}"
            else:
                upstream = f"{self.peer(node).ip}:{self.client_port}"
            out.append(Link(f"{node.name}-repl", node.name, "repl", self.repl_port(node), upstream))
        return out

    # -- rendering --------------------------------------------------------------------------------
    def cnf_extra(self, node: Node) -> str:
        """MMM's standard: each master takes every other auto-increment value (offset K); a slave never
        writes, and a restarted one refetches what its relay log may have lost."""
        if self.is_slave(node):
            return "relay_log_recovery=ON\n"
        return f"auto_increment_increment=2\nauto_increment_offset={node.number}\n"

    def node_title(self, node: Node) -> str:
        return "MMM slave" if self.is_slave(node) else "MMM master"

    def monitor_config(self) -> dict[str, Any]:
        timers = ("check_period", "trap_period", "timeout", "max_backlog", "auto_set_online", "rep_grace",
                  "flap_count", "flap_duration")  # fmt: skip
        settings = {name: getattr(self.topology.settings, name) for name in timers}
        hosts: list[dict[str, Any]] = []
        for n in self.run.nodes:
            if self.is_slave(n):
                hosts.append({"name": n.name, "ip": n.ip, "mode": "slave", "repl_port": self.repl_port(n)})
            else:
                hosts.append({"name": n.name, "ip": n.ip, "peer": self.peer(n).name})
        config: dict[str, Any] = {
            "hosts": hosts,
            "user": ADMIN_USER,
            "password": self.run.credential("admin"),
            "app_user": USER,
            "mysql_port": self.client_port,
            "settings": settings,
            "haproxy": self.haproxy_api_config(),
            "http_port": MONITOR_PORT,
            "state_file": "/etc/mmm/state.json",
            "heartbeat": self.heartbeat_config(),
        }
        if self.slaves:  # their set_active_master: through their link, as replication's user
            config["repl"] = {"host": toxiproxy_ip(self.run), "user": REPL_USER,
                              "password": self.run.credential("repl")}  # fmt: skip
        return config

    def haproxy(self) -> str:
        """HAProxy's config: the writer backend over the masters; with slaves, the ``repl`` frontend."""
        slaves = bool(self.slaves)
        return self.haproxy_cfg(repl=slaves, writers=self.masters if slaves else None)

    def render(self, directory: Path) -> None:
        self.render_nodes(directory, "mmm.cnf", self.node_title, self.cnf_extra)
        # the script, and its state machine imported as a sibling module
        files = {
            "mmm_monitor.py": MONITOR_SCRIPT,
            "monitor_state.py": MONITOR_SCRIPT.with_name("monitor_state.py"),
        }
        self.render_helpers(directory, self.haproxy(), "monitor", files, self.monitor_config())

    def monitor_spec(self) -> ContainerSpec:
        return self.daemon_spec("monitor", MONITOR_HOST, "/etc/mmm", "mmm_monitor.py")

    # -- bootstrap --------------------------------------------------------------------------------
    def bootstrap(self) -> None:
        started = time.monotonic()
        timeout = self.topology.timeouts.startup
        nodes = self.run.nodes

        def left() -> float:
            return max(1.0, timeout - (time.monotonic() - started))

        self.prepare_nodes(left)
        for node in self.masters:
            self.replicate(node, "slave_pos")
        self.wait_replicating(self.masters, timeout=left())
        log.info(
            f"  mmm: masters replicating both ways via n1-repl/n2-repl ({time.monotonic() - started:.1f}s)"
        )
        self.start_frontends()
        # the slaves' replication is the monitor's: its set_active_master once a writer is routed
        self.runtime.run(self.monitor_spec())
        for node in nodes:  # an operator's first step after installing MMM: `mmm_control set_online`
            wait_until(partial(self.set_online, node.name), timeout=left(), interval=0.1, max_interval=0.3,
                       what=f"monitor sets {node.name} online", details=self.logs_of_all)  # fmt: skip
        self.wait_ready(timeout=left())
        slaves = f", slaves {', '.join(n.name for n in self.slaves)} following it" if self.slaves else ""
        log.info(f"  mmm: writer {self.primary().name}{slaves}, every host ONLINE, heartbeats flowing "
            f"({time.monotonic() - started:.1f}s)")  # fmt: skip

    def wait_ready(self, *, timeout: float) -> None:
        """Every host replicating and ONLINE (each slave from the writer), a writer holding writes, the
        writer frontend reaching it, and pt-heartbeat's row visible on every node."""

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
                source = self.source_of(slave)
                if self.is_slave(node) and source != writer:
                    raise RuntimeError(f"{node.name}: replicates from {source}, the writer is {writer}")
            served_by = self.writer_serves()
            if served_by != writer:
                raise RuntimeError(f"writer frontend reaches {served_by}, the monitor's writer is {writer}")
            for node in self.run.nodes:
                if self.heartbeat_ts(node) is None:
                    raise RuntimeError(f"{node.name}: no pt-heartbeat row yet")
            return True

        wait_until(check, timeout=timeout, interval=0.1, max_interval=0.5,
                   what="mmm ready (every host ONLINE, writer active, slaves following it, heartbeats)",
                   details=self.logs_of_all)  # fmt: skip

    def reseed(self, node: Node) -> None:
        """A master back empty (``wipe``): once the monitor has taken its roles (it is no longer ONLINE),
        seeded from the other master by a dump, as an operator would, then replicating from it again, and
        the other master's replication from it restarted; the monitor sets it online after
        ``auto_set_online``. A slave likewise, from the writer, replicating again through its link."""
        peer = self.primary() if self.is_slave(node) else self.peer(node)

        def offline() -> bool:
            state = self.monitor_state(timeout=1.0)["hosts"][node.name]["state"]
            if state == "ONLINE":
                raise RuntimeError(f"monitor: {node.name} still ONLINE")
            return True

        wait_until(offline, timeout=self.topology.timeouts.heal, interval=0.2, max_interval=0.5,
                   what=f"the monitor taking {node.name}'s roles")  # fmt: skip
        detail = {"source": peer.name, "why": "its data directory was lost (wipe)"}
        with self.events.action("operator-reseed", "mariadb-dump --gtid", node.name, detail):
            state = self.seed_empty(node, peer)
            self.replicate(node, "slave_pos")
            if self.is_slave(node):  # nobody replicates from a slave
                log.info(f"  mmm: {node.name} seeded from {peer.name} (binlog state {state})")
                return
            # The peer asks from its slave position, which lacks its own domain; the seeded binlog starts
            # at a state holding both, so MariaDB would call that position purged (1236): it asks from its
            # current position (slave position plus its own binlog's domain) instead.
            with contextlib.closing(self.connect(peer)) as conn, conn.cursor() as cur:
                cur.execute("STOP SLAVE")
                cur.execute("CHANGE MASTER TO MASTER_USE_GTID=current_pos")
                cur.execute("START SLAVE")
        log.info(f"  mmm: {node.name} seeded from {peer.name} (binlog state {state})")

    # -- observation ------------------------------------------------------------------------------
    def source_of(self, slave: dict[str, Any]) -> str | None:
        """The node a replica's IO thread is connected to (``Master_Server_Id`` is K of nK), or None."""
        if slave.get("Slave_IO_Running") != "Yes":
            return None
        number = int(slave.get("Master_Server_Id") or 0)
        return next((n.name for n in self.run.nodes if n.number == number), None)

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
        writer = None
        try:
            show = self.monitor_state(timeout=1.0)
            host, writer = show["hosts"][node.name], show.get("writer")
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
        if self.is_slave(node):  # a slave follows the writer, and is never writable
            source = self.source_of(slave)
            text += f" from={source or '-'}"
            healthy = healthy and source == writer and ro == 1
        return NodeStatus(node.name, roles, node.ip, text, healthy, self.uptime(node))
