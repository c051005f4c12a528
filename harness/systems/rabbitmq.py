"""RabbitMQ: a cluster formed by peer discovery (``classic_config``), not by sequential ``join_cluster``.

Every node gets the same Erlang cookie; n1 (the seed) starts first listing only itself, the others
start together and discover it. Partition handling and queue type come from the topology.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any, ClassVar

from harness.model.topology import RabbitTopology
from harness.runtime.cluster import Node
from harness.runtime.docker import ContainerSpec, Mount
from harness.runtime.wait import wait_until
from harness.systems.base import ClusterSystem, NodeStatus, Say

USER = "harness"
PASSWORD = "harness"

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


class RabbitCluster(ClusterSystem):
    name = "rabbitmq"
    client_port = 5672
    services: ClassVar[dict[str, int]] = {"amqp": 5672}
    topology: RabbitTopology

    def rabbitmq_conf(self, node: Node) -> str:
        s = self.topology.settings
        # The seed (n1) starts alone and must not wait for peers that are not started yet; the others
        # retry until they find it. A retrying node holds the discovery lock, so the seed goes first.
        # It lists only itself: probing peers whose containers do not exist yet costs connect timeouts.
        seed = node == self.run.nodes[0]
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
default_user = {USER}
default_pass = {PASSWORD}
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
            (target / "enabled_plugins").write_text("[].\n")
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

    def bootstrap(self, say: Say) -> None:
        nodes = self.run.nodes
        timeout = self.topology.timeouts.startup
        started = time.monotonic()
        seed, rest = nodes[0], nodes[1:]
        self.start_nodes([seed])
        self.wait_amqp([seed], timeout=timeout)
        say(f"  {seed.name} (seed) is up ({time.monotonic() - started:.1f}s); {len(rest)} discovering it")
        self.start_nodes(rest)
        self.wait_amqp(rest, timeout=timeout - (time.monotonic() - started))
        self.wait_ready(nodes, timeout=timeout - (time.monotonic() - started))
        say(f"  rabbitmq: {len(nodes)} nodes running and clustered ({time.monotonic() - started:.1f}s)")

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
        try:
            status = self.cluster_status(node, timeout=10)
        except Exception as exc:
            return NodeStatus(node.name, "-", node.ip, "no answer", False, self.uptime(node), str(exc)[:80])
        running = status.get("running_nodes", [])
        partitions = status.get("partitions", {})
        text = f"running, sees {len(running)}/{len(self.run.nodes)}"
        if partitions:
            text += f", partitions: {json.dumps(partitions)}"
        healthy = len(running) == len(self.run.nodes) and not partitions
        role = "disc"
        return NodeStatus(node.name, role, node.ip, text, healthy, self.uptime(node))
