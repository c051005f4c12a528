"""NDB's documented rules refused before anything starts, one line per problem naming file, line and
field: node id ranges (data nodes 1-144, others 1-255) and uniqueness, NoOfReplicas 1-4, data nodes in
whole node groups, exactly one arbitrator on a management node, the roles filling the nodes, the image."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.model.loading import SpecError
from harness.specs import load_topology
from harness.systems.ndb.settings import NdbTopology

BASE = """name: t
system: ndb
nodes: 5
image: {profile: upstream, name: mysql/mysql-cluster:8.0}
settings:
  management_nodes: 1
  data_nodes: 2
  no_of_replicas: 2
  sql_nodes: 2
"""


def load(tmp_path: Path, text: str) -> NdbTopology:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    loaded = load_topology(path)
    assert isinstance(loaded, NdbTopology)
    return loaded


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load(tmp_path, text)
    return [line.replace(str(tmp_path / "t.yaml"), "t.yaml") for line in str(caught.value).splitlines()]


def test_the_defaults_follow_every_rule(tmp_path: Path) -> None:
    s = load(tmp_path, BASE).settings
    assert s.roles() == {"n1": "mgm", "n2": "data", "n3": "data", "n4": "sql", "n5": "sql"}
    assert s.ids() == {"n1": 145, "n2": 1, "n3": 2, "n4": 150, "n5": 151}
    assert s.ranks() == {"n1": 1, "n4": 0, "n5": 0}
    assert s.node_groups == 1 and s.node_group_of() == {"n2": 0, "n3": 0}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("no_of_replicas: 2", "no_of_replicas: 5"),
         "t.yaml:8: settings.no_of_replicas: NoOfReplicas must be 1-4 (NDB 8.0 keeps at most 4 fragment replicas), got 5"),
        (("no_of_replicas: 2", "no_of_replicas: 0"), "t.yaml:8: settings.no_of_replicas: NoOfReplicas must be 1-4"),
        (("data_nodes: 2\n", "data_nodes: 3\n"),
         "t.yaml:7: settings.data_nodes: 3 data nodes do not form whole node groups of NoOfReplicas=2 "
         "(node groups = data nodes / NoOfReplicas): use a multiple of 2"),
        (("nodes: 5", "nodes: 4"),
         "t.yaml:5: settings: management_nodes + data_nodes + sql_nodes = 1 + 2 + 2 = 5, but the topology has nodes: 4"),
        (("image: {profile: upstream, name: mysql/mysql-cluster:8.0}", "image: {profile: offline}"),
         "t.yaml:4: image: NDB binaries are in no Debian package the offline image is built from: use "
         "{profile: upstream, name: mysql/mysql-cluster:8.0}"),
        (("name: t\n", "name: t\nstorage: lazyfs\n"), "t.yaml:2: storage: lazyfs is not supported for ndb"),
    ],
)  # fmt: skip
def test_a_broken_rule_is_one_line_naming_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    lines = problems(tmp_path, BASE.replace(*change))
    assert len(lines) == 1 and lines[0].startswith(expected), lines


def test_node_ids_out_of_range_duplicated_or_unknown(tmp_path: Path) -> None:
    lines = problems(tmp_path, BASE + "  node_ids: {n2: 145, n3: 150, n1: 300, n9: 3}\n")
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("t.yaml:10: settings.node_ids: ")
    assert "unknown node 'n9', expected one of: n1, n2, n3, n4, n5" in line
    assert "n2=145: a data node's id must be 1-144" in line
    assert "n1=300: a management node's id must be 1-255" in line
    assert "id 150 is given to n3 and n4: every node id must be unique" in line


def test_explicit_node_ids_in_range_are_used(tmp_path: Path) -> None:
    s = load(tmp_path, BASE + "  node_ids: {n1: 49, n4: 51, n5: 52}\n").settings
    assert s.ids() == {"n1": 49, "n2": 1, "n3": 2, "n4": 51, "n5": 52}


@pytest.mark.parametrize(
    ("ranks", "expected"),
    [
        ("{n1: 0}", "exactly one arbitrator: ArbitrationRank 1 on one management node (n1); found none"),
        ("{n4: 1}", "found n1 (management node), n4 (SQL node)"),
        ("{n1: 2, n4: 1}", "found n4 (SQL node)"),
        ("{n2: 1}", "n2 is a data node: data nodes have no ArbitrationRank"),
        ("{n1: 3}", "n1=3: ArbitrationRank must be 0, 1 or 2"),
    ],
)
def test_exactly_one_arbitrator_on_a_management_node(tmp_path: Path, ranks: str, expected: str) -> None:
    lines = problems(tmp_path, BASE + f"  arbitration_rank: {ranks}\n")
    assert len(lines) == 1 and lines[0].startswith("t.yaml:10: settings.arbitration_rank: ")
    assert expected in lines[0]


def test_two_management_nodes_one_arbitrator_and_a_backup(tmp_path: Path) -> None:
    text = BASE.replace("nodes: 5", "nodes: 6").replace("management_nodes: 1", "management_nodes: 2")
    s = load(tmp_path, text).settings
    assert s.ids()["n1"] == 145 and s.ids()["n2"] == 146
    assert s.ranks() == {"n1": 1, "n2": 2, "n5": 0, "n6": 0}


def test_four_replicas_in_one_node_group_is_allowed(tmp_path: Path) -> None:
    text = BASE.replace("nodes: 5", "nodes: 7").replace("data_nodes: 2", "data_nodes: 4").replace(
        "no_of_replicas: 2", "no_of_replicas: 4")  # fmt: skip
    s = load(tmp_path, text).settings
    assert s.node_groups == 1 and set(s.node_group_of().values()) == {0}


def test_every_problem_at_once(tmp_path: Path) -> None:
    text = BASE.replace("no_of_replicas: 2", "no_of_replicas: 5") + "  arbitration_rank: {n1: 0}\n"
    lines = problems(tmp_path, text.replace("image: {profile: upstream, name: mysql/mysql-cluster:8.0}",
                                            "image: {profile: offline}"))  # fmt: skip
    assert [line.split(": ")[1] for line in lines] == [
        "image",
        "settings.no_of_replicas",
        "settings.arbitration_rank",
    ]
