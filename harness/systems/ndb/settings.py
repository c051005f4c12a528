"""NDB Cluster topologies: ``system: ndb``, the roles of its nodes and NDB's documented rules.

Nodes take their roles in order: the management nodes first (n1…), then the data nodes, then the SQL
nodes. Every rule below is from the MySQL 8.0 NDB Cluster manual, checked before anything starts:

- node ids are unique across the cluster; a data node's is 1-144 (NDB 8.0.18+), a management or API
  (SQL) node's 1-255;
- NoOfReplicas (fragment replicas) is 1-4, and the data nodes form node groups of NoOfReplicas nodes
  each: node groups = data nodes / NoOfReplicas, so the data nodes must divide evenly;
- one arbitrator: ArbitrationRank 1 on exactly one node, a management node (2 marks a backup, 0 never
  arbitrates; data nodes have no rank).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from harness.model.durations import Duration
from harness.model.topology import ImageSpec, StrictModel, TopologyBase

Role = Literal["mgm", "data", "sql"]
ROLE_NAMES: dict[Role, str] = {"mgm": "management node", "data": "data node", "sql": "SQL node"}

IMAGE = "mysql/mysql-cluster:8.0"  # the official image the topologies run on (no registry reachable here)
MAX_DATA_NODE_ID = 144  # NDB 8.0.18+ (48 before)
MAX_NODE_ID = 255
MAX_REPLICAS = 4
# Default ids: data nodes from 1, management and SQL nodes above the data nodes' range, as the manual
# recommends for clusters that may grow.
FIRST_MGM_ID = 145
FIRST_SQL_ID = 150


class NdbSettings(StrictModel):
    """How many nodes of each role, and the cluster's settings (config.ini's ``[ndbd default]``)."""

    management_nodes: int = Field(default=1, ge=1, le=2, description="ndb_mgmd nodes (n1…)")
    no_of_replicas: int = Field(default=2, description="NoOfReplicas: fragment replicas of all data, 1-4")
    data_nodes: int = Field(default=2, ge=1, description="ndbd/ndbmtd nodes, after the management nodes")
    sql_nodes: int = Field(default=2, ge=1, description="mysqld nodes (clients' endpoints), last")
    data_node_binary: Literal["ndbd", "ndbmtd"] = "ndbd"
    data_memory: str = Field(default="128M", pattern=r"^\d+[KMG]?$", description="DataMemory per data node")
    # Failure detection: a data node is declared dead after 4 missed heartbeats (default 5000 ms each);
    # test topologies shorten it so a cut node is noticed in seconds.
    heartbeat_interval: Duration = Field(default=1.5, description="HeartbeatIntervalDbDb and DbApi")
    arbitration_timeout: Duration = Field(default=7.5, description="ArbitrationTimeout")
    node_ids: dict[str, int] = Field(
        default_factory=dict,
        description="node -> NodeId (defaults: data nodes 1…, management nodes 145…, SQL nodes 150…)",
    )
    arbitration_rank: dict[str, int] = Field(
        default_factory=dict,
        description="node -> ArbitrationRank 0-2 (defaults: the first management node 1, other "
        "management nodes 2, SQL nodes 0)",
    )

    @field_validator("no_of_replicas")
    @classmethod
    def _replicas_in_range(cls, value: int) -> int:
        if not 1 <= value <= MAX_REPLICAS:
            raise ValueError(f"NoOfReplicas must be 1-{MAX_REPLICAS} (NDB 8.0 keeps at most "
                             f"{MAX_REPLICAS} fragment replicas), got {value}")  # fmt: skip
        return value

    @field_validator("data_nodes")
    @classmethod
    def _whole_node_groups(cls, value: int, info: ValidationInfo) -> int:
        replicas = info.data.get("no_of_replicas")
        if replicas and value % replicas:
            raise ValueError(
                f"{value} data nodes do not form whole node groups of NoOfReplicas={replicas} "
                f"(node groups = data nodes / NoOfReplicas): use a multiple of {replicas}"
            )
        return value

    @field_validator("node_ids")
    @classmethod
    def _node_ids_by_the_rules(cls, value: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        roles = _roles_from(info)
        if roles is None:
            return value
        problems = _unknown_nodes(value, roles)
        for name, node_id in value.items():
            role = roles.get(name)
            if role is None:
                continue
            high = MAX_DATA_NODE_ID if role == "data" else MAX_NODE_ID
            if not 1 <= node_id <= high:
                problems.append(f"{name}={node_id}: a {ROLE_NAMES[role]}'s id must be 1-{high}")
        ids = _node_ids(roles, value)
        by_id: dict[int, list[str]] = {}
        for name, node_id in ids.items():
            by_id.setdefault(node_id, []).append(name)
        problems += [f"id {i} is given to {' and '.join(names)}: every node id must be unique"
                     for i, names in sorted(by_id.items()) if len(names) > 1]  # fmt: skip
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("arbitration_rank")
    @classmethod
    def _one_arbitrator(cls, value: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        roles = _roles_from(info)
        if roles is None:
            return value
        problems = _unknown_nodes(value, roles)
        problems += [
            f"{n}={r}: ArbitrationRank must be 0, 1 or 2" for n, r in value.items() if r not in (0, 1, 2)
        ]
        problems += [f"{n} is a data node: data nodes have no ArbitrationRank"
                     for n in value if roles.get(n) == "data"]  # fmt: skip
        if problems:
            raise ValueError("; ".join(problems))
        ranks = _ranks(roles, value)
        first = [n for n, r in ranks.items() if r == 1]
        if len(first) != 1 or roles[first[0]] != "mgm":
            found = ", ".join(f"{n} ({ROLE_NAMES[roles[n]]})" for n in first) or "none"
            raise ValueError(f"exactly one arbitrator: ArbitrationRank 1 on one management node "
                             f"({', '.join(n for n, r in roles.items() if r == 'mgm')}); found {found}")  # fmt: skip
        return value

    # -- derived --------------------------------------------------------------------------------------
    @property
    def total_nodes(self) -> int:
        return self.management_nodes + self.data_nodes + self.sql_nodes

    @property
    def node_groups(self) -> int:
        return self.data_nodes // self.no_of_replicas

    def roles(self) -> dict[str, Role]:
        """Node name → role, in the order nodes take them (management, data, SQL)."""
        return _role_order(self.management_nodes, self.data_nodes, self.sql_nodes)

    def ids(self) -> dict[str, int]:
        """Node name → NodeId (the defaults with ``node_ids`` applied)."""
        return _node_ids(self.roles(), self.node_ids)

    def ranks(self) -> dict[str, int]:
        """Management and SQL node → ArbitrationRank (the defaults with ``arbitration_rank`` applied)."""
        return _ranks(self.roles(), self.arbitration_rank)

    def node_group_of(self) -> dict[str, int]:
        """Data node → its node group: NoOfReplicas nodes each, in order of node id (as NDB forms them)."""
        ids = self.ids()
        data = sorted((n for n, r in self.roles().items() if r == "data"), key=lambda n: ids[n])
        return {name: i // self.no_of_replicas for i, name in enumerate(data)}


def _role_order(mgm: int, data: int, sql: int) -> dict[str, Role]:
    counts: tuple[tuple[Role, int], ...] = (("mgm", mgm), ("data", data), ("sql", sql))
    roles = [role for role, count in counts for _ in range(count)]
    return {f"n{i}": role for i, role in enumerate(roles, start=1)}


def _roles_from(info: ValidationInfo) -> dict[str, Role] | None:
    counts = [info.data.get(k) for k in ("management_nodes", "data_nodes", "sql_nodes")]
    if any(c is None for c in counts):
        return None  # a count is itself wrong: that is the problem reported
    return _role_order(*counts)  # type: ignore[arg-type]


def _unknown_nodes(value: dict[str, int], roles: dict[str, Role]) -> list[str]:
    return [f"unknown node {n!r}, expected one of: {', '.join(roles)}" for n in value if n not in roles]


def _node_ids(roles: dict[str, Role], overrides: dict[str, int]) -> dict[str, int]:
    first = {"data": 1, "mgm": FIRST_MGM_ID, "sql": FIRST_SQL_ID}
    seen = dict.fromkeys(first, 0)
    ids: dict[str, int] = {}
    for name, role in roles.items():
        ids[name] = overrides.get(name, first[role] + seen[role])
        seen[role] += 1
    return ids


def _ranks(roles: dict[str, Role], overrides: dict[str, int]) -> dict[str, int]:
    mgm = [n for n, r in roles.items() if r == "mgm"]
    defaults = {n: (1 if n == mgm[0] else 2) if r == "mgm" else 0 for n, r in roles.items() if r != "data"}
    return {**defaults, **{n: r for n, r in overrides.items() if n in defaults}}


class NdbTopology(TopologyBase):
    system: Literal["ndb"]
    settings: NdbSettings = NdbSettings()

    @field_validator("image")
    @classmethod
    def _official_image(cls, value: ImageSpec) -> ImageSpec:
        if value.profile != "upstream":
            raise ValueError(f"NDB binaries are in no Debian package the offline image is built from: use "
                             f"{{profile: upstream, name: {IMAGE}}}")  # fmt: skip
        return value

    @field_validator("storage", "clock")
    @classmethod
    def _plain_layers(cls, value: str, info: ValidationInfo) -> str:
        if value not in ("plain", "real"):
            raise ValueError(f"{value} is not supported for ndb (not written for NDB's processes and data "
                             f"directories), expected {'plain' if info.field_name == 'storage' else 'real'}")  # fmt: skip
        return value

    @field_validator("settings")
    @classmethod
    def _roles_fill_the_nodes(cls, value: NdbSettings, info: ValidationInfo) -> NdbSettings:
        nodes = info.data.get("nodes")
        if nodes is not None and value.total_nodes != nodes:
            raise ValueError(
                f"management_nodes + data_nodes + sql_nodes = {value.management_nodes} + {value.data_nodes} + "
                f"{value.sql_nodes} = {value.total_nodes}, but the topology has nodes: {nodes}"
            )
        return value

    def nodes_with(self, role: Role) -> list[str]:
        return [n for n, r in self.settings.roles().items() if r == role]

    @property
    def data_node_names(self) -> list[str]:
        """The nodes clients use (workloads, final reads, probes): the SQL nodes. NDB's data nodes hold the
        data but speak only NDB's own protocol, to the SQL nodes."""
        return self.nodes_with("sql")
