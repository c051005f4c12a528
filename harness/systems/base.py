"""What every clustered system module provides: configs, bootstrap order, readiness, status, endpoints."""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness.model.eventlog import EventLog
from harness.model.topology import TopologyBase
from harness.paths import run_dir
from harness.runtime import netfilter, proxies
from harness.runtime.base import ContainerSpec, Mount, Runtime
from harness.runtime.node_clock import IN_CONTAINER, NodeClock
from harness.runtime.proxies import Link
from harness.runtime.run import Node, Run
from harness.runtime.storage import NodeStorage
from harness.runtime.wait import wait_until

CLIENT_USER = "harness"


@dataclass(frozen=True)
class NodeStatus:
    node: str
    role: str
    ip: str
    state: str  # system-specific: "Primary/Synced", "running", "down", "paused"…
    healthy: bool
    uptime_s: float | None
    detail: str = ""


class ClusterSystem(ABC):
    """Topology knowledge of one system; only the ``Runtime`` touches the container engine."""

    name: ClassVar[str]
    client_port: ClassVar[int]
    services: ClassVar[Mapping[str, int]]  # client-facing service → port (the package's SystemInfo)
    bootstrap_uses_proxies: ClassVar[bool] = False  # else Toxiproxy starts beside the bootstrap
    data_dir: ClassVar[str] = ""  # where a node keeps its data (the package's SystemInfo)

    def __init__(self, run: Run, runtime: Runtime) -> None:
        self.run = run
        self.runtime = runtime
        self.topology = run.topology
        # Where the system's own actions on the cluster (an operator's recovery, a bootstrap after every
        # node crashed) are recorded as events: the nemesis of a scenario puts the run's log here.
        self.events = EventLog()

    # -- lifecycle --------------------------------------------------------------------------------
    @classmethod
    def node_image(cls, runtime: Runtime, base: str, topology: TopologyBase) -> str:
        """The image the nodes of an offline ``topology`` run: the node image (``base``), or one the system
        derives from it once (Galera's prepared state). Called before the run exists."""
        return base

    def node_dir(self, node: Node) -> Path:
        """The node's rendered configuration, mounted read-only at ``/etc/harness`` in its container."""
        return run_dir(self.run.id) / node.name

    @property
    def lazy_storage(self) -> bool:
        """The topology puts each node's data directory on the harness's LazyFS-semantics mount."""
        return self.topology.storage == "lazyfs"

    def storage(self, node: Node) -> NodeStorage:
        return NodeStorage(self.run.id, node.name)

    @property
    def fake_clock(self) -> bool:
        """The topology runs each node under libfaketime, so clock faults can move its wall clock."""
        return self.topology.clock == "faketime"

    def clock(self, node: Node) -> NodeClock:
        return NodeClock(self.run.id, node.name)

    def storage_mount(self, node: Node) -> Mount:
        """The node's storage mount at its data directory (mounted now, seeded from the image the first
        time)."""
        return Mount(str(self.storage(node).ensure(self.seed_from_image)), self.data_dir, read_only=False)

    def seed_from_image(self, dest: Path) -> None:
        """Write the image's data directory into ``dest`` (a node's storage, first mounted or replaced)."""
        self.runtime.copy_from_image(self.run.image, self.data_dir, str(dest))

    @abstractmethod
    def render(self, directory: Path) -> None:
        """Write every node's configuration files under ``directory/<node>/``."""

    @abstractmethod
    def container_spec(self, node: Node, *, bootstrap: bool = False) -> ContainerSpec:
        """The container of one node (``bootstrap``: the node that founds a new cluster)."""

    @abstractmethod
    def bootstrap(self) -> None:
        """Start every node in the system's order and return when the cluster is ready."""

    @abstractmethod
    def node_status(self, node: Node) -> NodeStatus:
        """Observe one node (never raises for a node that is down)."""

    def status(self) -> list[NodeStatus]:
        with ThreadPoolExecutor(max_workers=len(self.run.nodes)) as pool:
            return list(pool.map(self.node_status, self.run.nodes))

    def endpoint(self, node: Node, service: str | None = None) -> tuple[str, int]:
        """Where clients reach ``node``: through the run's Toxiproxy, on the node's own proxy."""
        return proxies.endpoint(self.run, node, service or next(iter(self.services)), self.services)

    def client_links(self) -> list[Link]:
        """The links the run's Toxiproxy is started with: one per node and client service."""
        return proxies.links_for(self.run, self.services)

    def links(self) -> list[Link]:
        """Every proxied client–server link of the run: one per node and service, plus any the system
        adds (and creates itself in ``bootstrap``), so that link faults can name them."""
        return self.client_links()

    def parts(self) -> list[ClusterSystem]:
        """The clusters this system is made of: itself, or a composite's database and broker (each with
        its own nodes, probes and main links)."""
        return [self]

    @property
    def data_nodes(self) -> list[Node]:
        """The nodes that hold the data and serve clients (workloads, final reads, probes): every node
        but an arbitrator (Galera's garbd)."""
        names = self.topology.data_node_names
        return [n for n in self.run.nodes if n.name in names]

    @contextlib.contextmanager
    def node_endpoints(self) -> Iterator[None]:
        """Within this block ``endpoint(node)`` is the node's own proxied link even where clients normally
        enter through a front of the system (MMM's writer frontend): for per-node reads and checksums."""
        yield

    def client_credentials(self) -> tuple[str, str]:
        """User and password of the run's clients (workloads, probes): per run, from the run's secret."""
        return CLIENT_USER, self.run.credential("client")

    def primary(self) -> Node:
        """The node a "primary"/"leader"/"writer" target means; systems refine this."""
        return self.run.nodes[0]

    def helper_targets(self) -> dict[str, Node]:
        """Containers beside the nodes that process faults and ``isolate`` may target by name (a balancer
        pair's ``lb1``, ``lb2``), as nodes; none by default (``topology.helper_target_names``)."""
        return {}

    def role_target(self, role: str) -> Node | None:
        """The helper a role among ``topology.helper_target_names`` means now (``balancer``); None if none."""
        return None

    def restart_nodes(self, nodes: list[Node]) -> None:
        """Start stopped or killed nodes again; they rejoin the cluster on their own."""
        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            list(pool.map(lambda n: self.runtime.start(n.container), nodes))

    def after_heal(self) -> None:
        """Called once the network and processes are restored, before ``wait_healthy``.

        For systems that do not merge again by themselves after a partition (RabbitMQ with
        ``partition_handling: ignore``): do what an operator would, within ``timeouts.heal``. The default
        does nothing; a system that heals itself needs nothing here either.
        """
        return None

    def wait_healthy(self, timeout: float) -> None:
        """Wait until every node reports healthy (the state ``bootstrap`` reached)."""

        def check() -> bool:
            bad = [f"{s.node}: {s.state}" for s in self.status() if not s.healthy]
            if bad:
                raise RuntimeError("; ".join(bad))
            return True

        wait_until(check, timeout=timeout, interval=0.2, max_interval=1.0,
                   what=f"every {self.name} node healthy again", details=self.logs_of_all)  # fmt: skip

    # -- a node lost with its disk ------------------------------------------------------------------
    def wiped_logs(self) -> Path:
        """Where the logs of nodes' containers removed with their disks are kept (``<node>-<k>.log``)."""
        return run_dir(self.run.id) / "wiped-logs"

    def lose_disk(self, node: Node) -> None:
        """The node dies with its data directory: its container's log kept, the container removed with
        SIGKILL (the data directory lived in it), and on the harness's storage the disk emptied."""
        keep = self.wiped_logs()
        keep.mkdir(parents=True, exist_ok=True)
        k = len(list(keep.glob(f"{node.name}-*.log"))) + 1
        (keep / f"{node.name}-{k}.log").write_text(self.runtime.logs(node.container, tail=2000))
        self.runtime.remove(node.container)
        if self.lazy_storage:
            self.storage(node).replace_disk(self.seed_from_image)

    def return_empty(self, node: Node) -> None:
        """The node's container again, from its spec and the image's data directory, then ``reseed``."""
        self.runtime.run(self.container_spec(node))
        self.reseed(node)

    def reseed(self, node: Node) -> None:
        """Bring a node back into the cluster after it returned with an empty data directory. The default
        does nothing: the system's own state transfer does it (Galera's SST when the node joins). A system
        that needs an operator records what it does as an action (``events.action``)."""
        return None

    # -- helpers ----------------------------------------------------------------------------------
    def start_nodes(self, nodes: list[Node], *, bootstrap: Node | None = None) -> None:
        specs = [self.container_spec(n, bootstrap=n == bootstrap) for n in nodes]
        with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
            list(pool.map(self.runtime.run, specs))

    def base_spec(self, node: Node, command: list[str], mounts: list[Mount], **kw: object) -> ContainerSpec:
        if self.lazy_storage:
            mounts = [*mounts, self.storage_mount(node)]
        if self.fake_clock:
            mounts = [*mounts, Mount(str(self.clock(node).ensure()), IN_CONTAINER, read_only=True)]
            kw["env"] = {**dict(kw.get("env") or {}), **NodeClock.env()}  # type: ignore[dict-item]
        return ContainerSpec(
            name=node.container,
            image=self.run.image,
            command=command,
            hostname=node.name,
            network=self.run.network,
            ip=node.ip,
            labels=self.run.labels("node", **{"io.ha-harness.node": node.name}),
            mounts=mounts,
            extra_hosts={n.name: n.ip for n in self.run.nodes},
            # Partitions are entered from the host (nsenter) when it can; otherwise from inside.
            cap_add=["NET_ADMIN"] if netfilter.mode() == "exec" else [],
            **kw,  # type: ignore[arg-type]
        )

    def logs_of_all(self, tail: int = 15) -> str:
        parts = []
        for node in self.run.nodes:
            text = self.runtime.logs(node.container, tail=tail).rstrip()
            indented = "\n".join(f"    {line}" for line in text.splitlines()[-tail:])
            parts.append(f"  {node.name} last log lines:\n{indented}")
        return "\n".join(parts)

    def uptime(self, node: Node) -> float | None:
        started = self.runtime.state(node.container).started_at
        return None if started is None else max(0.0, time.time() - started)

    def container_state(self, node: Node) -> str:
        """ "running", "paused", "exited", "missing"…"""
        return self.runtime.state(node.container).status
