"""RabbitMQ probe: every second, each node's own view of the cluster and of its queues.

Read from the management plugin's HTTP API on the node (cheap; ``rabbitmqctl`` starts an Erlang VM per
call, about a CPU-second each). Per observing node: ``running_nodes`` and ``partitions`` (how many nodes it
lists in each), and per queue ``queue_leader:<queue>`` (the node name; for a classic queue its home node)
and ``queue_online:<queue>`` (quorum members online, or mirrors in sync plus the leader for a classic
mirrored queue). Views differ across a partition, which is the point of sampling every node.
"""

from __future__ import annotations

from typing import Any

from harness.probes.base import Probe
from harness.runtime.run import Node
from harness.systems.rabbitmq.management import api_get


class RabbitProbe(Probe):
    name = "rabbitmq"
    interval = 1.0

    def _get(self, node: Node, path: str) -> Any:
        return api_get(node, path, self.system.client_credentials())

    def tick(self, node: Node, state: dict[str, object]) -> None:
        try:
            nodes = self._get(node, "/api/nodes?columns=name,running,partitions")
            queues = self._get(node, "/api/queues?columns=name,type,leader,node,members,online,"
                                     "slave_nodes,synchronised_slave_nodes")  # fmt: skip
        except Exception:
            self.samples.record(node.name, "running_nodes", "unreachable")
            return
        me: dict[str, Any] = next((n for n in nodes if n.get("name") == f"rabbit@{node.name}"), {})
        self.samples.record(node.name, "running_nodes", float(sum(1 for n in nodes if n.get("running"))))
        self.samples.record(node.name, "partitions", float(len(me.get("partitions") or [])))
        for queue in queues:
            name = queue.get("name", "?")
            leader = str(queue.get("leader") or queue.get("node") or "none").removeprefix("rabbit@")
            self.samples.record(node.name, f"queue_leader:{name}", leader)
            self.samples.record(node.name, f"queue_online:{name}", float(_online(queue)))


def _online(queue: dict[str, Any]) -> int:
    if queue.get("type") == "quorum":
        return len(queue.get("online") or [])
    return 1 + len(queue.get("synchronised_slave_nodes") or [])
