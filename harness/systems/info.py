"""One system's entry in the registry: its name, topology model, capabilities and (lazily) its classes.

Only pure things are imported here (the settings model); the cluster and probe classes, which pull in
drivers and the runtime, are named as ``module:Class`` and imported when a run needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from harness.model.topology import TopologyBase
from harness.systems.capabilities import Capability


@dataclass(frozen=True)
class SystemInfo:
    name: str
    topology: type[TopologyBase]  # the topology model (``system: Literal[name]`` and its settings)
    cluster: str  # "module:Class" of its ClusterSystem
    capabilities: frozenset[Capability]
    # client-facing service → port; each gets a proxied link per node, named ``<node>-<service>``
    services: Mapping[str, int] = field(default_factory=dict)
    probes: tuple[str, ...] = ()  # "module:Class" of its probes
    probe_checkers: tuple[str, ...] = ()  # checkers that read those probes' samples
    # link names the system adds beside the per-node client links, as suffixes (MMM: "repl" → n2-repl)
    extra_links: tuple[str, ...] = ()
    # role names a fault may target (resolved on the running cluster by ``ClusterSystem.primary``)
    roles: tuple[str, ...] = ("primary", "leader", "writer")
    # where a node keeps its data in its container (``storage: lazyfs`` mounts the harness's storage there)
    data_dir: str = ""

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def link_names(self, nodes: list[str]) -> list[str]:
        """Every link a fault may name: a node (its main client link) or ``<node>-<service or link>``; with
        a primary role, the role in place of a node too (``primary``, ``writer-repl``), resolved when the
        fault is applied."""
        holders = [*nodes, *(self.roles if self.has(Capability.PRIMARY) else ())]
        return [*holders, *(f"{n}-{s}" for n in holders for s in (*self.services, *self.extra_links))]


def load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(import_module(module), attr)
