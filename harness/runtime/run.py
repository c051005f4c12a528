"""A run as plain data: its id, topology, network slot, image and owner; node names and addresses.

Addressing (documented in the README): run networks are ``10.213.<slot>.0/24`` with the first free slot
(1-254); the gateway (the host) is ``.1``, the run's Toxiproxy ``.2``, helpers (HAProxy, monitors)
``.3``-``.9`` and node ``nK`` is ``.(10+K)``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from harness.errors import InfraError
from harness.model.topology import TopologyBase
from harness.runtime import labels as L

SUBNET_PREFIX = "10.213"


@dataclass(frozen=True)
class Node:
    name: str
    ip: str
    container: str

    @property
    def number(self) -> int:
        """K of ``nK``: its address is ``.(10+K)``, its proxies listen on ``10000 + 1000*K + …``."""
        return node_number(self.name)


def node_number(name: str) -> int:
    """K of the node name ``nK``."""
    return int(name.removeprefix("n"))


@dataclass(frozen=True)
class Run:
    id: str
    topology: TopologyBase
    slot: int
    image: str
    owner: str
    # The run's own secret: every password of its cluster derives from it (``credential``), so a client
    # left over from another run (or another user of the engine) is refused by this one. Kept in the
    # network's labels, never in reports or logs.
    secret: str = ""

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
            Node(name, self.ip(10 + node_number(name)), f"hh-{self.id}-{name}")
            for name in self.topology.node_names
        ]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise InfraError(f"run {self.id} has no node {name!r} (nodes: {', '.join(self.topology.node_names)})")

    def credential(self, purpose: str) -> str:
        """The password this run uses for ``purpose`` (``client``, ``repl``, ``admin``…)."""
        if not self.secret:
            raise InfraError(f"run {self.id} has no secret (a run made before per-run credentials)")
        return hmac.new(self.secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()[:24]

    def labels(self, kind: str, **extra: str) -> dict[str, str]:
        base = {L.RUN_ID: self.id, L.NAMESPACE: L.namespace(), L.KIND: kind, L.OWNER: self.owner}
        return {**base, L.SYSTEM: self.topology.system, **extra}


def new_run_id(topology: TopologyBase) -> str:
    return f"{topology.name}-{secrets.token_hex(3)}"


def new_secret() -> str:
    return secrets.token_hex(16)
