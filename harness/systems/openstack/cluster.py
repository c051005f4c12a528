"""An OpenStack control plane as one cluster system: its database's and its broker's, side by side.

Each part is the system it would be alone (``GaleraCluster``, ``RabbitCluster``…), built on a view of the
run that has the part's topology and nodes (``n1``-``n3`` for the database, ``n4``-``n6`` for the broker);
both share the run's network, Toxiproxy, secret and label, so a partition or a kill names any node of the
deployment and one ``harness down`` removes everything. What concerns a node is its part's; what concerns
the deployment (bring-up, health, heal) is both parts', the database's and the broker's in parallel.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from harness.model.eventlog import EventLog
from harness.runtime.base import ContainerSpec, Runtime
from harness.runtime.proxies import Link
from harness.runtime.run import Node, Run
from harness.systems.base import ClusterSystem, NodeStatus
from harness.systems.openstack import SYSTEM
from harness.systems.openstack.settings import OpenstackTopology
from harness.systems.registry import cluster_class


def _both(calls: list[Any]) -> list[Any]:
    """Run the zero-argument ``calls`` at once; the first error is raised once all have ended."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
    return [f.result() for f in futures]


class OpenstackCluster(ClusterSystem):
    name = "openstack"
    client_port = 3306
    services: ClassVar[Mapping[str, int]] = SYSTEM.services
    topology: OpenstackTopology

    def __init__(self, run: Run, runtime: Runtime) -> None:
        super().__init__(run, runtime)
        topology = run.topology
        assert isinstance(topology, OpenstackTopology)
        self.database = cluster_class(topology.database.system)(
            dataclasses.replace(run, topology=topology.database), runtime
        )
        self.broker = cluster_class(topology.broker.system)(
            dataclasses.replace(run, topology=topology.broker), runtime
        )
        self.events = self._events  # the parts record into the same log from now on

    # -- the parts --------------------------------------------------------------------------------
    def parts(self) -> list[ClusterSystem]:
        return [self.database, self.broker]

    def part_of(self, node: Node) -> ClusterSystem:
        for part in self.parts():
            if node in part.run.nodes:
                return part
        raise KeyError(f"{node.name} is in neither the database nor the broker")

    @property  # type: ignore[override]
    def events(self) -> EventLog:
        return self._events

    @events.setter
    def events(self, log: EventLog) -> None:
        """Where the system's own actions are recorded: the parts' too (a Galera bootstrap after a crash of
        every node, a RabbitMQ restart of the losing side)."""
        self._events = log
        for part in (getattr(self, "database", None), getattr(self, "broker", None)):
            if part is not None:
                part.events = log

    # -- lifecycle --------------------------------------------------------------------------------
    def render(self, directory: Path) -> None:
        for part in self.parts():
            part.render(directory)

    def container_spec(self, node: Node, *, bootstrap: bool = False) -> ContainerSpec:
        return self.part_of(node).container_spec(node, bootstrap=bootstrap)

    @property
    def bootstrap_uses_proxies(self) -> bool:  # type: ignore[override]
        return any(part.bootstrap_uses_proxies for part in self.parts())

    def bootstrap(self) -> None:
        _both([part.bootstrap for part in self.parts()])

    def node_status(self, node: Node) -> NodeStatus:
        return self.part_of(node).node_status(node)

    def endpoint(self, node: Node, service: str | None = None) -> tuple[str, int]:
        return self.part_of(node).endpoint(node, service)

    def client_links(self) -> list[Link]:
        return [link for part in self.parts() for link in part.client_links()]

    def links(self) -> list[Link]:
        return [link for part in self.parts() for link in part.links()]

    @contextlib.contextmanager
    def node_endpoints(self) -> Iterator[None]:
        with self.database.node_endpoints(), self.broker.node_endpoints():
            yield

    def primary(self) -> Node:
        """The database's writer: what ``primary``/``writer`` targets mean in an OpenStack deployment."""
        return self.database.primary()

    def restart_nodes(self, nodes: list[Node]) -> None:
        calls = []
        for part in self.parts():
            mine = [n for n in nodes if n in part.run.nodes]
            if mine:
                calls.append(lambda part=part, mine=mine: part.restart_nodes(mine))
        if calls:
            _both(calls)

    def after_heal(self) -> None:
        _both([part.after_heal for part in self.parts()])

    def wait_healthy(self, timeout: float) -> None:
        _both([lambda part=part: part.wait_healthy(timeout) for part in self.parts()])

    def logs_of_all(self, tail: int = 15) -> str:
        return "\n".join(part.logs_of_all(tail) for part in self.parts())
