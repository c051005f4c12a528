"""The order an NDB Cluster is brought up in, as data (pure): what starts on which nodes, what is waited
for before the next step. ``NdbCluster.bootstrap`` walks it; the unit tests check it.

1. the management server(s), ``ndb_mgmd --initial`` (it reads config.ini and caches it);
2. wait until ``ndb_mgm -e SHOW`` answers;
3. every data node together, ``ndbd --initial`` (an initial start waits for all data nodes, or a
   node group's worth after StartPartialTimeout, so they must start at once);
4. wait until every data node is started (SHOW: each ``[ndbd(NDB)]`` node connected, none starting);
5. the SQL nodes, ``mysqld`` with the NDB engine;
6. wait until each SQL node is connected (SHOW's ``[mysqld(API)]`` lines) and answers SQL;
7. the clients' database, created once on the first SQL node (schema distribution gives it to the others).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from harness.systems.mysql import DATABASE
from harness.systems.ndb.render import daemon_command
from harness.systems.ndb.settings import NdbTopology, Role

Wait = Literal["mgm-answers", "data-nodes-started", "sql-nodes-connected"]
ORDER: tuple[tuple[Role, Wait], ...] = (
    ("mgm", "mgm-answers"),
    ("data", "data-nodes-started"),
    ("sql", "sql-nodes-connected"),
)


@dataclass(frozen=True)
class Start:
    nodes: tuple[str, ...]
    commands: tuple[tuple[str, ...], ...]  # one per node: what its start script runs on the first start

    def describe(self) -> str:
        return f"start {', '.join(self.nodes)}: " + "; ".join(" ".join(c) for c in self.commands)


@dataclass(frozen=True)
class WaitFor:
    condition: Wait
    nodes: tuple[str, ...]

    def describe(self) -> str:
        return f"wait until {self.condition} ({', '.join(self.nodes)})"


@dataclass(frozen=True)
class Sql:
    node: str
    statement: str

    def describe(self) -> str:
        return f"on {self.node}: {self.statement}"


Step = Start | WaitFor | Sql


def bringup_plan(topology: NdbTopology, ips: Mapping[str, str]) -> list[Step]:
    """The steps of a first start, in order."""
    steps: list[Step] = []
    for role, wait in ORDER:
        nodes = tuple(topology.nodes_with(role))
        commands = tuple(tuple(daemon_command(topology, ips, n, initial=role != "sql")) for n in nodes)
        steps += [Start(nodes, commands), WaitFor(wait, nodes)]
    steps.append(Sql(topology.nodes_with("sql")[0], f"CREATE DATABASE IF NOT EXISTS {DATABASE}"))
    return steps
