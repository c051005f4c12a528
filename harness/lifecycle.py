"""A run's life: ``up`` (network, Toxiproxy, the system's bootstrap), ``load_run``, ``down``.

This ties a topology to its system package (through the registry) and to a ``Runtime``; the runtime
itself knows nothing of databases, and the systems know nothing of how a run is found again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from harness import progress
from harness.errors import InfraError
from harness.model.clock import RunClock
from harness.model.topology import TopologyBase
from harness.paths import run_dir
from harness.runtime import labels as L
from harness.runtime import storage
from harness.runtime.base import ContainerSpec, Runtime
from harness.runtime.images import ensure_node_image
from harness.runtime.proxies import start_toxiproxy
from harness.runtime.reaper import sweep_orphans
from harness.runtime.run import SUBNET_PREFIX, Node, Run, new_run_id, new_secret
from harness.runtime.signals import no_interrupts
from harness.systems.base import ClusterSystem
from harness.systems.registry import cluster_class, topology_adapter

log = logging.getLogger(__name__)

__all__ = ["Node", "Run", "cluster", "down", "load_run", "new_run_id", "run_clock", "run_ids", "system_for",
           "up"]  # fmt: skip


def system_for(run: Run, runtime: Runtime) -> ClusterSystem:
    return cluster_class(run.topology.system)(run, runtime)


def up(
    topology: TopologyBase,
    runtime: Runtime,
    *,
    hand_over: bool = False,
    run_id: str | None = None,
) -> Run:
    """Start a cluster and return once it is really ready; on any failure (or Ctrl-C) remove it all.

    ``hand_over``: the run outlives this process (``harness up``): it gets a marker so that the reaper
    never treats it as an orphan. Otherwise the run belongs to this process until ``down``.
    """
    swept = sweep_orphans(runtime)
    if swept:
        log.info(f"swept {swept} leftover resource(s) of crashed runs")
    image = _image_for(topology, runtime)
    run_id = run_id or new_run_id(topology)
    owner = L.owner_token()
    started_ns = time.monotonic_ns(), time.time_ns()
    run: Run | None = None
    try:
        with progress.phase("bring-up", total=len(topology.node_names)) as shown:
            shown.update("network")
            run = _create_network(topology, runtime, run_id, image, owner)
            log.info(f"run {run.id}: network {run.network} {run.subnet} (internal)")
            _bring_up(run, runtime, started_ns, shown)
        if hand_over:
            runtime.create_volume(f"hh-{run.id}-up", run.labels("marker", **{L.STATE: "up"}))
    except BaseException:
        with no_interrupts():
            try:
                down(run_id, runtime)
            except Exception as exc:  # the original error matters more; say what is left
                log.warning(f"cleanup of run {run_id} failed: {exc}; `harness down --all` retries it")
        raise
    return run


def _bring_up(run: Run, runtime: Runtime, started_ns: tuple[int, int], shown: progress.Phase) -> None:
    """Toxiproxy and the system's bootstrap on the run's network, until the system says it is ready."""
    for node in run.nodes:
        shown.row(node.name, "not started", completed=0, total=2)
    system = system_for(run, cast(Runtime, NodeStarts(runtime, shown)) if progress.enabled() else runtime)

    # Toxiproxy comes up beside the first nodes (clients need it only once the cluster is ready),
    # unless the system's own bootstrap goes through its proxies (MMM's replication links). A
    # system with no client services has no links to proxy.
    with ThreadPoolExecutor(max_workers=1) as pool:
        links = system.client_links()
        proxies = pool.submit(start_toxiproxy, run, runtime, links) if links else None
        system.render(run_dir(run.id))
        clock = {"mono_start_ns": started_ns[0], "wall_start_ns": started_ns[1]}
        (run_dir(run.id) / "clock.json").write_text(json.dumps(clock))
        if proxies is not None and system.bootstrap_uses_proxies:
            shown.update("toxiproxy")
            proxies.result()
        shown.update(f"{system.name} bootstrap")
        system.bootstrap()
        if system.lazy_storage:
            # What the cluster was born with is on disk (the kernel's writeback would have written it
            # by the time a scenario starts); from here on only what is fsynced survives a power loss.
            shown.update("syncing the nodes' disks")
            for node in run.nodes:
                system.storage(node).sync()
        if proxies is not None:
            shown.update("toxiproxy")
            proxies.result()
    for node in run.nodes:
        shown.row(node.name, "ready", completed=2)
    shown.update(f"{system.name} ready", completed=len(run.nodes))


class NodeStarts:
    """The runtime, telling the bring-up's display when each node's container is started (everything
    else passed through). Readiness is the system's whole bootstrap: only its end is seen here."""

    def __init__(self, runtime: Runtime, shown: progress.Phase) -> None:
        self._runtime = runtime
        self._shown = shown
        self._started: set[str] = set()

    def run(self, spec: ContainerSpec) -> str:
        node = spec.labels.get(L.NODE)
        if node is None:
            return self._runtime.run(spec)
        self._shown.row(node, "starting", completed=0)
        container = self._runtime.run(spec)
        self._started.add(node)
        self._shown.row(node, "started", completed=1)
        self._shown.update(completed=len(self._started))
        return container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)


def _image_for(topology: TopologyBase, runtime: Runtime) -> str:
    if topology.image.profile == "upstream":
        assert topology.image.name
        if not runtime.image_exists(topology.image.name):
            raise InfraError(
                f"upstream image {topology.image.name} is not present and no registry is reachable here; "
                "pull it where one is, or use image profile offline"
            )
        return topology.image.name
    return cluster_class(topology.system).node_image(runtime, ensure_node_image(runtime), topology)


def _create_network(topology: TopologyBase, runtime: Runtime, run_id: str, image: str, owner: str) -> Run:
    used = runtime.used_subnets()
    secret = new_secret()
    for slot in range(1, 255):
        run = Run(id=run_id, topology=topology, slot=slot, image=image, owner=owner, secret=secret)
        if run.subnet in used:
            continue
        extra = {L.TOPOLOGY: topology.model_dump_json(), L.SUBNET: run.subnet, "io.ha-harness.image": image,
                 L.SECRET: secret}  # fmt: skip
        try:
            runtime.create_network(run.network, run.subnet, run.gateway, run.labels("network", **extra))
        except InfraError as exc:
            if "overlap" in str(exc).lower():
                continue  # another run took it meanwhile
            raise
        return run
    raise InfraError(f"no free subnet left in {SUBNET_PREFIX}.1-254.0/24; run `harness down --all`")


def down(run_id: str, runtime: Runtime) -> int:
    """Remove everything of a run (containers, network, volumes, storage mounts, rendered configs)."""
    count = runtime.remove_run(run_id)
    count += storage.unmount_run(run_id)  # after the containers: nothing uses the mounts any more
    shutil.rmtree(run_dir(run_id), ignore_errors=True)
    return count


def load_run(run_id: str, runtime: Runtime) -> Run:
    """Rebuild a Run from its network's labels."""
    nets = runtime.networks(run_id)
    if not nets:
        known = ", ".join(sorted(run_ids(runtime))) or "none"
        raise InfraError(f"no run {run_id!r} (runs: {known})")
    labels = nets[0].labels
    topology = topology_adapter().validate_python(json.loads(labels[L.TOPOLOGY]))
    slot = int(labels[L.SUBNET].split(".")[2])
    return Run(id=run_id, topology=topology, slot=slot, image=labels.get("io.ha-harness.image", ""),
               owner=labels.get(L.OWNER, ""), secret=labels.get(L.SECRET, ""))  # fmt: skip


def run_ids(runtime: Runtime) -> set[str]:
    ids = {r.labels.get(L.RUN_ID) for r in [*runtime.containers(), *runtime.networks()]}
    return {i for i in ids if i}


def run_clock(run: Run) -> RunClock:
    """The run's clock (ns since ``up`` began), shared by every process that works on the run."""
    try:
        saved = json.loads((run_dir(run.id) / "clock.json").read_text())
    except (OSError, ValueError):
        return RunClock()
    return RunClock(mono_start_ns=saved["mono_start_ns"], wall_start_ns=saved["wall_start_ns"])


@contextlib.contextmanager
def cluster(topology: TopologyBase, runtime: Runtime) -> Iterator[Run]:
    """``with cluster(topology, runtime) as run:`` — up, then down whatever happens."""
    run = up(topology, runtime)
    try:
        yield run
    finally:
        down(run.id, runtime)
