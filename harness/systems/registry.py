"""The one list of systems: topology ``system`` → its package's ``SystemInfo``.

Adding a system is its folder (``harness/systems/<name>/``) plus one line here. The topology union, the
scenario's allowed systems, the probe lookup and the capability checks all come from this list.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field, TypeAdapter

from harness.errors import InputError
from harness.model.topology import TopologyBase
from harness.systems import galera, mmm, ndb, openstack, rabbitmq, replication
from harness.systems.info import SystemInfo, load

if TYPE_CHECKING:
    from harness.systems.base import ClusterSystem

SYSTEMS: dict[str, SystemInfo] = {
    info.name: info
    for info in (galera.SYSTEM, rabbitmq.SYSTEM, mmm.SYSTEM, replication.SYSTEM, openstack.SYSTEM, ndb.SYSTEM)
}


def system_info(name: str) -> SystemInfo:
    try:
        return SYSTEMS[name]
    except KeyError:
        raise InputError(f"unknown system {name!r}, expected one of: {', '.join(SYSTEMS)}") from None


def cluster_class(name: str) -> type[ClusterSystem]:
    return load(system_info(name).cluster)  # type: ignore[no-any-return]


def probe_classes(name: str) -> list[Any]:
    return [load(path) for path in system_info(name).probes]


def link_names(topology: TopologyBase) -> list[str]:
    """The links a fault may name on ``topology``: its system's, or each part's of a composite (a role's
    links, e.g. ``primary-repl``, only of the first part: the database, whose writer the roles name)."""
    parts = topology.parts()
    if parts == [topology]:
        return system_info(topology.system).link_names(topology.node_names)
    out: list[str] = []
    for i, part in enumerate(parts):
        names = system_info(part.system).link_names(part.node_names)
        out += names if i == 0 else [n for n in names if n.partition("-")[0] in part.node_names]
    return out


def mesh_parts(topology: TopologyBase) -> list[list[str]]:
    """The node names of each of the topology's clusters whose nodes talk to each other directly (what an
    iptables partition can cut): the topology's own, or a composite's parts that have a peer mesh."""
    from harness.systems.capabilities import Capability

    return [p.node_names for p in topology.parts() if system_info(p.system).has(Capability.PEER_MESH)]


@cache
def topology_adapter() -> TypeAdapter[TopologyBase]:
    """Validates any system's topology document (discriminated by ``system``)."""
    models = tuple(info.topology for info in SYSTEMS.values())
    union: Any = Annotated[Union[models], Field(discriminator="system")]  # noqa: UP007
    return TypeAdapter(union)
