"""A run: one cluster of one topology on its own labelled, internal network, from ``up`` to ``down``.

Addressing (documented in the README): run networks are ``10.213.<slot>.0/24`` with the first free slot
(1-254); the gateway (the host) is ``.1``, the run's Toxiproxy ``.2``, helpers (HAProxy, monitors)
``.3``-``.9`` and node ``nK`` is ``.(10+K)``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import TypeAdapter

from harness.errors import InfraError
from harness.model.clock import RunClock
from harness.model.topology import Topology, TopologyBase
from harness.paths import run_dir
from harness.runtime import labels as L
from harness.runtime.docker import DockerRuntime
from harness.runtime.images import ensure_node_image
from harness.runtime.signals import no_interrupts

if TYPE_CHECKING:
    from harness.systems.base import ClusterSystem

Say = Callable[[str], None]
SUBNET_PREFIX = "10.213"
_TOPOLOGY = TypeAdapter(Topology)


@dataclass(frozen=True)
class Node:
    name: str
    ip: str
    container: str


@dataclass(frozen=True)
class Run:
    id: str
    topology: TopologyBase
    slot: int
    image: str
    owner: str

    @property
    def subnet(self) -> str:
        return f"{SUBNET_PREFIX}.{self.slot}.0/24"

    @property
    def gateway(self) -> str:
        return f"{SUBNET_PREFIX}.{self.slot}.1"

    def ip(self, host: int) -> str:
        return f"{SUBNET_PREFIX}.{self.slot}.{host}"

    @property
    def network(self) -> str:
        return f"hh-{self.id}"

    @property
    def nodes(self) -> list[Node]:
        return [
            Node(name, self.ip(10 + i), f"hh-{self.id}-{name}")
            for i, name in enumerate(self.topology.node_names, start=1)
        ]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise InfraError(f"run {self.id} has no node {name!r} (nodes: {', '.join(self.topology.node_names)})")

    def labels(self, kind: str, **extra: str) -> dict[str, str]:
        base = {L.RUN_ID: self.id, L.NAMESPACE: L.namespace(), L.KIND: kind, L.OWNER: self.owner}
        return {**base, L.SYSTEM: self.topology.system, **extra}  # type: ignore[attr-defined]


def new_run_id(topology: TopologyBase) -> str:
    return f"{topology.name}-{secrets.token_hex(3)}"


def system_for(run: Run, runtime: DockerRuntime) -> ClusterSystem:
    from harness.systems import SYSTEMS

    return SYSTEMS[run.topology.system](run, runtime)  # type: ignore[attr-defined]


def up(
    topology: TopologyBase,
    runtime: DockerRuntime,
    *,
    say: Say = print,
    hand_over: bool = False,
    run_id: str | None = None,
) -> Run:
    """Start a cluster and return once it is really ready; on any failure (or Ctrl-C) remove it all.

    ``hand_over``: the run outlives this process (``harness up``): it gets a marker so that the reaper
    never treats it as an orphan. Otherwise the run belongs to this process until ``down``.
    """
    from harness.runtime.reaper import sweep_orphans

    swept = sweep_orphans(runtime)
    if swept:
        say(f"swept {swept} leftover resource(s) of crashed runs")
    image = _image_for(topology, runtime, say)
    run_id = run_id or new_run_id(topology)
    owner = L.owner_token()
    started_ns = time.monotonic_ns(), time.time_ns()
    run: Run | None = None
    try:
        run = _create_network(topology, runtime, run_id, image, owner)
        say(f"run {run.id}: network {run.network} {run.subnet} (internal)")
        system = system_for(run, runtime)
        from harness.runtime.proxies import start_toxiproxy

        # Toxiproxy comes up beside the first nodes (clients need it only once the cluster is ready),
        # unless the system's own bootstrap goes through its proxies (MMM's replication links).
        with ThreadPoolExecutor(max_workers=1) as pool:
            proxies = pool.submit(start_toxiproxy, run, runtime, system.services)
            system.render(run_dir(run.id))
            clock = {"mono_start_ns": started_ns[0], "wall_start_ns": started_ns[1]}
            (run_dir(run.id) / "clock.json").write_text(json.dumps(clock))
            if system.bootstrap_uses_proxies:
                proxies.result()
            system.bootstrap(say)
            proxies.result()
        if hand_over:
            runtime.create_volume(f"hh-{run.id}-up", run.labels("marker", **{L.STATE: "up"}))
    except BaseException:
        with no_interrupts():
            try:
                down(run_id, runtime)
            except Exception as exc:  # the original error matters more; say what is left
                say(f"cleanup of run {run_id} failed: {exc}; `harness down --all` retries it")
        raise
    return run


def _image_for(topology: TopologyBase, runtime: DockerRuntime, say: Say) -> str:
    if topology.image.profile == "upstream":
        assert topology.image.name
        if not runtime.image_exists(topology.image.name):
            raise InfraError(
                f"upstream image {topology.image.name} is not present and no registry is reachable here; "
                "pull it where one is, or use image profile offline"
            )
        return topology.image.name
    return ensure_node_image(runtime, say=say)


def _create_network(
    topology: TopologyBase, runtime: DockerRuntime, run_id: str, image: str, owner: str
) -> Run:
    used = runtime.used_subnets()
    for slot in range(1, 255):
        run = Run(id=run_id, topology=topology, slot=slot, image=image, owner=owner)
        if run.subnet in used:
            continue
        extra = {L.TOPOLOGY: topology.model_dump_json(), L.SUBNET: run.subnet, "io.ha-harness.image": image}
        try:
            runtime.create_network(run.network, run.subnet, run.gateway, run.labels("network", **extra))
        except InfraError as exc:
            if "overlap" in str(exc).lower():
                continue  # another run took it meanwhile
            raise
        return run
    raise InfraError(f"no free subnet left in {SUBNET_PREFIX}.1-254.0/24; run `harness down --all`")


def down(run_id: str, runtime: DockerRuntime) -> int:
    """Remove everything of a run (containers, network, volumes, rendered configs)."""
    import shutil

    count = runtime.remove_run(run_id)
    shutil.rmtree(run_dir(run_id), ignore_errors=True)
    return count


def load_run(run_id: str, runtime: DockerRuntime) -> Run:
    """Rebuild a Run from its network's labels."""
    nets = runtime.networks(run_id)
    if not nets:
        known = ", ".join(sorted(run_ids(runtime))) or "none"
        raise InfraError(f"no run {run_id!r} (runs: {known})")
    labels = nets[0].attrs["Labels"]
    topology = _TOPOLOGY.validate_python(json.loads(labels[L.TOPOLOGY]))
    slot = int(labels[L.SUBNET].split(".")[2])
    return Run(id=run_id, topology=topology, slot=slot, image=labels.get("io.ha-harness.image", ""),
               owner=labels.get(L.OWNER, ""))  # fmt: skip


def run_ids(runtime: DockerRuntime) -> set[str]:
    ids = {c.labels.get(L.RUN_ID) for c in runtime.containers()}
    ids |= {n.attrs["Labels"].get(L.RUN_ID) for n in runtime.networks()}
    return {i for i in ids if i}


def run_clock(run: Run) -> RunClock:
    """The run's clock (ns since ``up`` began), shared by every process that works on the run."""
    try:
        saved = json.loads((run_dir(run.id) / "clock.json").read_text())
    except (OSError, ValueError):
        return RunClock()
    return RunClock(mono_start_ns=saved["mono_start_ns"], wall_start_ns=saved["wall_start_ns"])


@contextlib.contextmanager
def cluster(topology: TopologyBase, runtime: DockerRuntime, *, say: Say = print) -> Iterator[Run]:
    """``with cluster(topology, runtime) as run:`` — up, then down whatever happens."""
    run = up(topology, runtime, say=say)
    try:
        yield run
    finally:
        down(run.id, runtime)
