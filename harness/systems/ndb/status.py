"""Parsers of what NDB says about itself (pure): ``ndb_mgm -e SHOW`` and the ``ndbinfo`` tables.

``SHOW`` lists every configured node by type, e.g. (MySQL 8.0)::

    Cluster Configuration
    ---------------------
    [ndbd(NDB)]     2 node(s)
    id=1    @10.0.0.12  (mysql-8.0.36 ndb-8.0.36, Nodegroup: 0, *)
    id=2    @10.0.0.13  (mysql-8.0.36 ndb-8.0.36, starting, Nodegroup: 0)

    [ndb_mgmd(MGM)] 1 node(s)
    id=145  @10.0.0.11  (mysql-8.0.36 ndb-8.0.36)

    [mysqld(API)]   2 node(s)
    id=150  @10.0.0.14  (mysql-8.0.36 ndb-8.0.36)
    id=151 (not connected, accepting connect from 10.0.0.15)

The data node marked ``*`` (``Master`` in older releases' output) is the president, which the
harness calls the primary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["NDB", "MGM", "API"]

_SECTION = re.compile(r"^\[(?P<name>[\w-]+)\((?P<kind>NDB|MGM|API)\)\]\s+(?P<count>\d+) node\(s\)")
_NODE = re.compile(r"^id=(?P<id>\d+)\s*(?:@(?P<address>\S+))?\s*\((?P<detail>.*)\)\s*$")


@dataclass(frozen=True)
class ShowNode:
    """One node line of ``SHOW``."""

    node_id: int
    kind: Kind
    connected: bool
    address: str | None = None  # where it connected from (or, not connected, where it is accepted from)
    version: str = ""  # "mysql-8.0.36 ndb-8.0.36"
    node_group: int | None = None  # data nodes
    president: bool = False  # the data node marked "*" (or "Master")
    starting: bool = False  # a data node connected but not yet started

    @property
    def state(self) -> str:
        if not self.connected:
            return "not connected"
        return "starting" if self.starting else "started" if self.kind == "NDB" else "connected"

    @property
    def started(self) -> bool:
        return self.connected and not self.starting


@dataclass(frozen=True)
class Show:
    nodes: tuple[ShowNode, ...]

    def of(self, kind: Kind) -> list[ShowNode]:
        return [n for n in self.nodes if n.kind == kind]

    def node(self, node_id: int) -> ShowNode | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)

    @property
    def president(self) -> int | None:
        return next((n.node_id for n in self.of("NDB") if n.president), None)

    @property
    def all_data_nodes_started(self) -> bool:
        data = self.of("NDB")
        return bool(data) and all(n.started for n in data)


def parse_show(text: str) -> Show:
    """``ndb_mgm -e SHOW`` → every node it lists. Raises ValueError when the text is no SHOW output (the
    management server did not answer: ``Unable to connect with connect string``…)."""
    kind: Kind | None = None
    nodes: list[ShowNode] = []
    seen_section = False
    for raw in text.splitlines():
        line = raw.strip()
        section = _SECTION.match(line)
        if section:
            kind, seen_section = section["kind"], True  # type: ignore[assignment]
            continue
        node = _NODE.match(line)
        if node and kind is not None:
            nodes.append(_show_node(int(node["id"]), kind, node["address"], node["detail"]))
    if not seen_section:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "no output")
        raise ValueError(f"not ndb_mgm SHOW output: {first[:120]}")
    return Show(tuple(nodes))


def _show_node(node_id: int, kind: Kind, address: str | None, detail: str) -> ShowNode:
    if detail.startswith("not connected"):
        accepted = re.search(r"accepting connect from (\S+)", detail)
        host = accepted[1] if accepted else None
        return ShowNode(node_id, kind, False, None if host == "any" else host)
    parts = [p.strip() for p in detail.split(",")]
    group = next((int(m[1]) for p in parts if (m := re.fullmatch(r"Nodegroup: (\d+)", p))), None)
    return ShowNode(
        node_id=node_id,
        kind=kind,
        connected=True,
        address=address,
        version=parts[0] if parts and parts[0].startswith("mysql-") else "",
        node_group=group,
        president="*" in parts or "Master" in parts,
        starting="starting" in parts,
    )


# ------------------------------------------------------------------------------------------- ndbinfo
NODES_SQL = "SELECT node_id, uptime, status, start_phase, config_generation FROM ndbinfo.nodes"
MEMBERSHIP_SQL = (
    "SELECT node_id, group_id, president, arbitrator, arb_state, arb_connected FROM ndbinfo.membership"
)


@dataclass(frozen=True)
class DataNodeInfo:
    """A row of ``ndbinfo.nodes``: a running data node as the data nodes report it."""

    node_id: int
    uptime_s: int
    status: str  # NOTHING, CMVMI, STARTING, STARTED, SINGLEUSER, STOPPING_1..4
    start_phase: int
    config_generation: int

    @property
    def started(self) -> bool:
        return self.status == "STARTED"


@dataclass(frozen=True)
class Membership:
    """A row of ``ndbinfo.membership``: one data node's view of the president and the arbitrator."""

    node_id: int
    group_id: int
    president: int
    arbitrator: int
    arb_state: str  # ARBIT_RUN once an arbitrator is chosen
    arb_connected: bool


def parse_ndbinfo_nodes(rows: Iterable[Sequence[Any]]) -> dict[int, DataNodeInfo]:
    """Rows of ``NODES_SQL`` (a driver's tuples, or the fields of ``mysql -B`` lines) by node id."""
    out: dict[int, DataNodeInfo] = {}
    for node_id, uptime, status, phase, generation in rows:
        out[int(node_id)] = DataNodeInfo(int(node_id), int(uptime), str(status), int(phase), int(generation))
    return out


def parse_membership(rows: Iterable[Sequence[Any]]) -> dict[int, Membership]:
    """Rows of ``MEMBERSHIP_SQL`` by node id."""
    out: dict[int, Membership] = {}
    for node_id, group, president, arbitrator, state, connected in rows:
        out[int(node_id)] = Membership(int(node_id), int(group), int(president), int(arbitrator), str(state),
                                       str(connected).lower() in ("yes", "1", "true"))  # fmt: skip
    return out


def parse_batch(text: str) -> list[list[str]]:
    """``mysql -B`` output (a header line, then tab-separated rows) → the rows' fields."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return [ln.split("\t") for ln in lines[1:]]
