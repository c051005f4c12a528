"""RabbitMQ: a cluster formed by peer discovery (``classic_config``), not by sequential ``join_cluster``.

Every node gets the same Erlang cookie; n1 (the seed) starts first listing only itself, the others
start together and discover it. Partition handling and queue type come from the topology.

Partitions: when nodes that each saw the other go down reconnect, Mnesia reports an inconsistent
database and every node lists the peers it was partitioned from in ``cluster_status`` → ``partitions``
(each node reports only for the nodes of its own side). ``pause_minority`` mostly avoids that (the
minority stops itself); ``autoheal`` restarts the losing side by itself once the network is back;
``ignore`` stays split until an operator restarts the losing side: ``recover_partitions``.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import InfraError
from harness.runtime.base import ContainerSpec, Mount
from harness.runtime.run import Node
from harness.runtime.wait import WaitTimeout, wait_until
from harness.systems.base import ClusterSystem, NodeStatus
from harness.systems.rabbitmq import SYSTEM
from harness.systems.rabbitmq.partitions import Membership, losing_side, merge_partitions
from harness.systems.rabbitmq.settings import RabbitTopology

log = logging.getLogger(__name__)


START_SH = r"""#!/bin/sh
# Rendered by ha-harness: start one RabbitMQ node (offline Debian image or the official image).
set -e
for home in /var/lib/rabbitmq "$HOME"; do
  install -d "$home"
  cp /etc/harness/erlang.cookie "$home/.erlang.cookie"
  chmod 400 "$home/.erlang.cookie"
  id rabbitmq >/dev/null 2>&1 && chown rabbitmq:rabbitmq "$home/.erlang.cookie" "$home" || true
done
cp /etc/harness/rabbitmq.conf /etc/harness/advanced.config /etc/harness/enabled_plugins /etc/rabbitmq/
cp /etc/harness/rabbitmq-env.conf /etc/rabbitmq/rabbitmq-env.conf
exec rabbitmq-server
"""


def node_name(node: Node) -> str:
    return f"rabbit@{node.name}"


def short(name: str) -> str:
    """``rabbit@n3`` → ``n3``."""
    return name.rpartition("@")[2]


class RabbitCluster(ClusterSystem):
    name = "rabbitmq"
    client_port = 5672
    services: ClassVar[Mapping[str, int]] = SYSTEM.services
    data_dir: ClassVar[str] = SYSTEM.data_dir
    topology: RabbitTopology

    def rabbitmq_conf(self, node: Node, *, joining: bool = False) -> str:
        s = self.topology.settings
        # The seed (n1) starts alone and must not wait for peers that are not started yet; the others
        # retry until they find it. A retrying node holds the discovery lock, so the seed goes first.
        # It lists only itself: probing peers whose containers do not exist yet costs connect timeouts.
        # A node joining a running cluster (back empty after a wipe) lists every node, the seed too.
        seed = node == self.run.nodes[0] and not joining
        retries = 1 if seed else 120
        peers = "\n".join(
            f"cluster_formation.classic_config.nodes.{i} = {node_name(n)}"
            for i, n in enumerate([node] if seed else self.run.nodes, start=1)
        )
        return f"""# Rendered by ha-harness for run {self.run.id}
cluster_formation.peer_discovery_backend = classic_config
{peers}
cluster_formation.discovery_retry_limit = {retries}
cluster_formation.discovery_retry_interval = 500
cluster_partition_handling = {s.partition_handling}
listeners.tcp.default = {self.client_port}
loopback_users = none
default_user = {self.client_credentials()[0]}
default_pass = {self.client_credentials()[1]}
log.console = true
log.console.level = info
log.file = false
"""

    def advanced_config(self) -> str:
        return f"[{{kernel, [{{net_ticktime, {self.topology.settings.net_ticktime}}}]}}].\n"

    def render(self, directory: Path) -> None:
        cookie = secrets.token_hex(16)
        for node in self.run.nodes:
            target = directory / node.name
            target.mkdir(parents=True, exist_ok=True)
            (target / "rabbitmq.conf").write_text(self.rabbitmq_conf(node))
            (target / "advanced.config").write_text(self.advanced_config())
            # the management plugin: the probe reads its HTTP API (rabbitmqctl costs a CPU-second a call)
            (target / "enabled_plugins").write_text("[rabbitmq_management].\n")
            (target / "rabbitmq-env.conf").write_text(f"NODENAME={node_name(node)}\n")
            (target / "erlang.cookie").write_text(cookie)
            (target / "start.sh").write_text(START_SH)

    def container_spec(self, node: Node, *, bootstrap: bool = False) -> ContainerSpec:
        return self.base_spec(
            node,
            ["sh", "/etc/harness/start.sh"],
            [Mount(str(self.node_dir(node)), "/etc/harness")],
            env={"RABBITMQ_NODENAME": node_name(node)},
            user="0",
        )

    def bootstrap(self) -> None:
        nodes = self.run.nodes
        timeout = self.topology.timeouts.startup
        started = time.monotonic()
        seed, rest = nodes[0], nodes[1:]
        self.start_nodes([seed])
        self.wait_amqp([seed], timeout=timeout)
        log.info(
            f"  {seed.name} (seed) is up ({time.monotonic() - started:.1f}s); {len(rest)} discovering it"
        )
        self.start_nodes(rest)
        self.wait_amqp(rest, timeout=timeout - (time.monotonic() - started))
        self.wait_ready(nodes, timeout=timeout - (time.monotonic() - started))
        log.info(f"  rabbitmq: {len(nodes)} nodes running and clustered ({time.monotonic() - started:.1f}s)")

    # -- observation ------------------------------------------------------------------------------
    def cluster_status(self, node: Node, *, timeout: float = 15.0) -> dict[str, Any]:
        result = self.runtime.exec(
            node.container, ["rabbitmqctl", "-q", "cluster_status", "--formatter", "json"], timeout=timeout
        )
        if result.exit_code != 0:
            raise RuntimeError(f"{node.name}: rabbitmqctl cluster_status exit {result.exit_code}: "
                               f"{result.output.strip()[-200:]}")  # fmt: skip
        text = result.output
        return dict(json.loads(text[text.index("{") :]))

    def membership(self, node: Node, *, timeout: float = 10.0) -> Membership:
        """``node``'s running nodes and partition report (raises when it does not answer)."""
        status = self.cluster_status(node, timeout=timeout)
        partitions = {short(k): frozenset(map(short, v)) for k, v in (status.get("partitions") or {}).items()}
        return Membership(node.name, frozenset(map(short, status.get("running_nodes", []))),
                          {k: v for k, v in partitions.items() if v})  # fmt: skip

    def memberships(self, *, timeout: float = 10.0) -> dict[str, Membership | None]:
        """Every node's view, asked in parallel; None for a node that is down or does not answer."""

        def one(node: Node) -> Membership | None:
            if self.container_state(node) != "running":
                return None
            try:
                return self.membership(node, timeout=timeout)
            except Exception:
                return None

        with ThreadPoolExecutor(max_workers=len(self.run.nodes)) as pool:
            return dict(zip(self.topology.node_names, pool.map(one, self.run.nodes), strict=True))

    def partitions(self) -> dict[str, frozenset[str]]:
        """Partitions as ``cluster_status`` reports them: node → peers it was partitioned from (empty: none)."""
        return merge_partitions(self.memberships())

    def whole(self, views: Mapping[str, Membership | None]) -> bool:
        want = frozenset(self.topology.node_names)
        return all(v is not None and v.running == want and not v.partitions for v in views.values())

    # -- recovery ---------------------------------------------------------------------------------
    def after_heal(self) -> None:
        """Under ``ignore``, a partition recorded after the heal is recovered here. Under ``autoheal`` and
        ``pause_minority`` RabbitMQ merges by itself, mostly: 3.10's autoheal can loop when the loser is back
        before the winner saw it stop, and a node that was paused (SIGSTOP) past the net tick comes back to
        peers that saw it down, so Mnesia records a partition that no mode's rule resolves (no side is a
        minority any more). If the cluster is not whole within ``settings.autoheal_grace``, the same recovery
        runs. Either recovery is an event of the run (an operator's action can itself discard messages)."""
        mode = self.topology.settings.partition_handling
        grace = self.topology.settings.autoheal_grace
        if mode == "ignore":
            self.recover_partitions()
            return
        try:
            wait_until(lambda: self.whole(self.memberships()), timeout=grace, interval=0.5, max_interval=1.0,
                       what=f"rabbitmq whole again under {mode}")  # fmt: skip
        except WaitTimeout:
            log.info(f"  rabbitmq: {mode} has not merged the cluster in {grace:g}s; recovering")
            self.recover_partitions(reason=f"{mode} had not merged the cluster in {grace:g}s")

    def recover_partitions(self, *, timeout: float | None = None, reason: str = "partition_handling ignore"
                           ) -> list[str]:  # fmt: skip
        """Merge a cluster split by a partition, as an operator does under ``ignore``; the nodes restarted.

        Waits until the cluster is either whole (nothing to do: returns []) or ``partitions`` is non-empty
        (right after the network heals, the sides are still reconnecting). Then restarts the rabbit app
        (``stop_app``; ``start_app``) on every node outside the side that stays (``losing_side``) and
        waits until every node lists every node as running and no partitions. One deadline
        (``timeouts.heal`` by default) covers all of it.
        """
        deadline = time.monotonic() + (self.topology.timeouts.heal if timeout is None else timeout)
        order = self.topology.node_names

        def settled() -> dict[str, Membership | None]:
            views = self.memberships()
            if self.whole(views) or merge_partitions(views):
                return views
            raise RuntimeError(_describe(views))

        views = wait_until(settled, timeout=max(deadline - time.monotonic(), 1.0), interval=0.2,
                           max_interval=1.0, what="rabbitmq whole again or a partition reported",
                           details=self.logs_of_all)  # fmt: skip
        if self.whole(views):
            return []
        losers = losing_side(views, order)
        restart = f"restarting the rabbit app on {','.join(losers)}" if losers else "no node to restart"
        log.info(f"  rabbitmq: partitions {_fmt(merge_partitions(views))}; {restart}")
        started = time.monotonic()
        by_name = {n.name: n for n in self.run.nodes}
        detail = {"reason": reason, "partitions": {k: sorted(v) for k, v in merge_partitions(views).items()}}
        with (
            self.events.action("operator-recovery", "rabbitmqctl stop_app/start_app", losers, detail),
            ThreadPoolExecutor(max_workers=max(1, len(losers))) as pool,
        ):
            list(pool.map(lambda name: self.restart_app(by_name[name], deadline), losers))

        def merged() -> bool:
            views = self.memberships()
            if not self.whole(views):
                raise RuntimeError(_describe(views))
            return True

        wait_until(merged, timeout=max(deadline - time.monotonic(), 1.0), interval=0.2, max_interval=1.0,
                   what="rabbitmq whole again after restarting the losing side",
                   details=self.logs_of_all)  # fmt: skip
        log.info(f"  rabbitmq: whole again, no partitions ({time.monotonic() - started:.1f}s)")
        return losers

    # -- a node lost with its disk ------------------------------------------------------------------
    def return_empty(self, node: Node) -> None:
        """A node back with an empty data directory (``wipe``), brought in as an operator does: the cluster
        still lists it as a member (a fresh node of that name would be refused, and the seed would start a
        cluster of its own), so a survivor forgets it (``forget_cluster_node``, which also drops it from
        every quorum queue); the new node joins (peer discovery, or ``join_cluster`` if it did not), and
        the quorum queues grow back onto it. Mirrored classic queues mirror onto it by their policy. The seed
        of the first bring-up returns listing every node, so it finds the cluster as the others do."""
        deadline = time.monotonic() + self.topology.timeouts.heal
        survivor = next(n for n in self.run.nodes if n != node and self.container_state(n) == "running")
        detail = {"via": survivor.name, "why": "its data directory was lost (wipe)"}
        steps = "rabbitmqctl forget_cluster_node; join_cluster; rabbitmq-queues grow"
        marks: list[str] = []
        with self.events.action("operator-reseed", steps, node.name, detail):
            started = time.monotonic()

            def mark(what: str) -> None:
                marks.append(f"{what} {time.monotonic() - started:.1f}s")

            # the survivor must have seen the node go down first (it refuses to forget a running node)
            wait_until(lambda: self.ctl(survivor, ["forget_cluster_node", node_name(node)], deadline),
                       timeout=max(deadline - time.monotonic(), 1.0), interval=0.5, max_interval=1.0,
                       what=f"{survivor.name} forgetting {node_name(node)}")  # fmt: skip
            mark("forgotten")
            (self.node_dir(node) / "rabbitmq.conf").write_text(self.rabbitmq_conf(node, joining=True))
            self.runtime.run(self.container_spec(node))
            self.wait_amqp([node], timeout=deadline - time.monotonic())
            mark("started")
            if self.membership(node).running != set(self.topology.node_names):
                for verb in (["stop_app"], ["reset"], ["join_cluster", node_name(survivor)], ["start_app"]):
                    self.ctl(node, verb, deadline)
                mark("join_cluster")
            self.wait_ready(self.run.nodes, timeout=deadline - time.monotonic())
            mark("clustered")
            self.ctl(survivor, ["grow", node_name(node), "all"], deadline, tool="rabbitmq-queues")
            mark("quorum queues grown")
        log.info(f"  rabbitmq: {node.name} back empty: {', '.join(marks)}")

    def ctl(self, node: Node, args: list[str], deadline: float, *, tool: str = "rabbitmqctl") -> bool:
        """``rabbitmqctl ARGS`` (or another of RabbitMQ's CLI tools) on ``node`` within ``deadline``."""
        result = self.runtime.exec(node.container, [tool, "-q", *args],
                                   timeout=max(deadline - time.monotonic(), 5.0))  # fmt: skip
        if result.exit_code != 0:
            raise InfraError(f"{node.name}: {tool} {' '.join(args)} exit {result.exit_code}: "
                             f"{result.output.strip()[-200:]}")  # fmt: skip
        return True

    def restart_app(self, node: Node, deadline: float) -> None:
        """``rabbitmqctl stop_app; start_app``: the node leaves and rejoins, resyncing from the others."""
        for verb in ("stop_app", "start_app"):
            self.ctl(node, [verb], deadline)

    def wait_amqp(self, nodes: list[Node], *, timeout: float) -> None:
        """Cheap first readiness signal: every node accepts TCP on the AMQP port."""
        import socket

        def check() -> bool:
            for node in nodes:
                if self.container_state(node) != "running":
                    raise RuntimeError(f"{node.name} is {self.container_state(node)}")
                socket.create_connection((node.ip, self.client_port), timeout=0.5).close()
            return True

        wait_until(check, timeout=max(timeout, 1.0), interval=0.1, max_interval=0.25,
                   what=f"AMQP port on {','.join(n.name for n in nodes)}", details=self.logs_of_all)  # fmt: skip

    def wait_ready(self, nodes: list[Node], *, timeout: float) -> None:
        from concurrent.futures import ThreadPoolExecutor

        want = {node_name(n) for n in self.run.nodes}

        def one(node: Node) -> str | None:
            state = self.container_state(node)
            if state != "running":
                return f"{node.name} is {state}"
            status = self.cluster_status(node)
            running = set(status.get("running_nodes", []))
            if running != want:
                return f"{node.name} sees running {sorted(running)}"
            return None

        def check() -> bool:
            with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
                problems = [p for p in pool.map(one, nodes) if p]
            if problems:
                raise RuntimeError("; ".join(problems))
            return True

        wait_until(check, timeout=max(timeout, 1.0), interval=0.5, max_interval=1.0,
                   what="rabbitmq nodes running and listed in every node's cluster_status",
                   details=self.logs_of_all)  # fmt: skip

    def node_status(self, node: Node) -> NodeStatus:
        state = self.container_state(node)
        if state != "running":
            return NodeStatus(node.name, "-", node.ip, state, False, None)
        # rabbitmqctl (a CPU-second a call), not the management API: the API's partition lists are node
        # statistics, refreshed every few seconds, so right after a recovery they still show the split
        try:
            view = self.membership(node, timeout=10)
        except Exception as exc:
            return NodeStatus(node.name, "-", node.ip, "no answer", False, self.uptime(node), str(exc)[:80])
        text = f"running, sees {len(view.running)}/{len(self.run.nodes)}"
        if node.name in view.partitions:
            text += f", partitioned from {','.join(sorted(view.partitions[node.name]))}"
        # A partition reported anywhere on this node's side means the cluster is still split.
        healthy = view.running == set(self.topology.node_names) and not view.partitions
        detail = f"partitions {_fmt(view.partitions)}" if view.partitions else ""
        return NodeStatus(node.name, "disc", node.ip, text, healthy, self.uptime(node), detail)


def _fmt(partitions: Mapping[str, frozenset[str]]) -> str:
    """``n1:n3 n2:n3 n3:n1,n2``: each reporting node and the peers it was partitioned from."""
    return " ".join(f"{k}:{','.join(sorted(v))}" for k, v in sorted(partitions.items()))


def _describe(views: Mapping[str, Membership | None]) -> str:
    parts = []
    for name, view in views.items():
        if view is None:
            parts.append(f"{name}: no answer")
            continue
        lost = view.partitions.get(name)
        extra = f", partitioned from {','.join(sorted(lost))}" if lost else ""
        parts.append(f"{name} sees {','.join(sorted(view.running))}{extra}")
    return "; ".join(parts)
