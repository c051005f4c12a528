"""A fake system and workload on the fake runtime: for the harness's own control flow, never for claims
about a database or broker.

``fake`` nodes are records in a ``FakeRuntime``; a node is healthy when its container runs. The workload
(registered as ``sql-set`` while a test runs) adds unique ids, each acknowledged at once, and its final
read returns every acknowledged id on every running node — unless ``lose`` names ids to drop, so a test
can make a run invalid on purpose.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from harness.model.history import HistoryWriter
from harness.model.topology import TopologyBase
from harness.runtime.base import ContainerSpec
from harness.runtime.run import Node
from harness.systems import registry
from harness.systems.base import ClusterSystem, NodeStatus
from harness.systems.capabilities import Capability as C
from harness.systems.info import SystemInfo
from harness.workloads import WORKLOADS, WorkloadInfo
from harness.workloads.base import Workload

LOST: set[int] = set()  # ids the fake's final read leaves out (a test sets it)
SICK: set[str] = set()  # run ids whose nodes report unhealthy (a test sets it)


class FakeTopology(TopologyBase):
    system: Literal["fake"]  # type: ignore[assignment]


class FakeCluster(ClusterSystem):
    name = "fake"
    client_port = 0
    services: ClassVar[dict[str, int]] = {}
    data_dir: ClassVar[str] = "/data"
    recoveries = 0

    def render(self, directory: Path) -> None:
        for node in self.run.nodes:
            (directory / node.name).mkdir(parents=True, exist_ok=True)

    def container_spec(self, node: Node, *, bootstrap: bool = False) -> ContainerSpec:
        return self.base_spec(node, ["sleep", "infinity"], [])

    def bootstrap(self) -> None:
        self.start_nodes(list(self.run.nodes), bootstrap=self.run.nodes[0])

    def node_status(self, node: Node) -> NodeStatus:
        state = self.container_state(node)
        healthy = state == "running" and self.run.id not in SICK
        return NodeStatus(node.name, "member", node.ip, state, healthy, self.uptime(node))

    def after_heal(self) -> None:
        """Like an operator's recovery, recorded as the harness's own action."""
        with self.events.action("operator-recovery", "fake", [self.run.nodes[-1].name], {"reason": "test"}):
            FakeCluster.recoveries += 1


class FakeSet(Workload):
    name = "sql-set"

    def setup(self) -> None:
        self.acked: list[int] = []
        self.lock = threading.Lock()

    def client(self, worker: int, history: HistoryWriter, stop: threading.Event) -> None:
        process, next_at = worker, 0.0
        node = self.system.run.nodes[self.node_for(worker)].name
        while not stop.is_set():
            op = history.invoke(process, "add", self.next_id(), node=node)
            history.ok(op)
            with self.lock:
                self.acked.append(op.value)
            next_at = self.pace(stop, next_at)

    def final_read(self, history: HistoryWriter) -> None:
        for i, node in enumerate(self.system.run.nodes):
            op = history.invoke(10_000 + i, "read", None, node=node.name)
            history.ok(op, sorted(set(self.acked) - LOST))


FAKE = SystemInfo(
    name="fake",
    topology=FakeTopology,
    cluster="tests.support.fake_system:FakeCluster",
    capabilities=frozenset({C.SQL, C.PRIMARY, C.PEER_MESH, C.PROCESSES, C.RESEED}),
)


@pytest.fixture
def fake_system(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Register the fake system and workload; rendered configs go to a temporary HARNESS_HOME."""
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HARNESS_NETFILTER_MODE", "exec")  # partitions as exec calls the fake records
    monkeypatch.setenv("HARNESS_NAMESPACE", f"test-{random.getrandbits(32):08x}")
    monkeypatch.setitem(registry.SYSTEMS, "fake", FAKE)
    monkeypatch.setitem(WORKLOADS, "sql-set", WorkloadInfo("sql-set", "tests.support.fake_system:FakeSet",
                                                          frozenset({C.SQL}), ("set", "availability")))  # fmt: skip
    registry.topology_adapter.cache_clear()
    LOST.clear()
    SICK.clear()
    FakeCluster.recoveries = 0
    yield
    registry.topology_adapter.cache_clear()
    LOST.clear()
    SICK.clear()


def fake_topology(nodes: int = 3, **kw: Any) -> FakeTopology:
    """A fake topology whose deadlines are short: a control-flow bug fails fast instead of hanging."""
    timeouts = {"startup": 5, "heal": 5, **kw.pop("timeouts", {})}
    return FakeTopology.model_validate(
        {"system": "fake", "name": "fake-3", "nodes": nodes, "timeouts": timeouts, **kw}
    )
