"""Parsers of NDB's own reports, on outputs in the shapes the MySQL manual and operators show:
``ndb_mgm -e SHOW`` (8.0's ``*`` for the president, older releases' ``Master``, nodes not connected,
a data node starting) and rows of ``ndbinfo.nodes`` / ``ndbinfo.membership``."""

from __future__ import annotations

import pytest

from harness.systems.ndb.status import parse_batch, parse_membership, parse_ndbinfo_nodes, parse_show

# MySQL 8.0: the president is marked "*"; a data node still in its start phases says "starting"
SHOW_80 = """Connected to Management Server at: 10.213.7.11:1186
Cluster Configuration
---------------------
[ndbd(NDB)]\t2 node(s)
id=1\t@10.213.7.12  (mysql-8.0.36 ndb-8.0.36, Nodegroup: 0, *)
id=2\t@10.213.7.13  (mysql-8.0.36 ndb-8.0.36, starting, Nodegroup: 0)

[ndb_mgmd(MGM)]\t1 node(s)
id=145\t@10.213.7.11  (mysql-8.0.36 ndb-8.0.36)

[mysqld(API)]\t2 node(s)
id=150\t@10.213.7.14  (mysql-8.0.36 ndb-8.0.36)
id=151 (not connected, accepting connect from 10.213.7.15)
"""

# As operators have posted it (NDB 7.2): "Master", two node groups, an API slot open to any host
SHOW_72 = """Cluster Configuration
---------------------
[ndbd(NDB)]     4 node(s)
id=11   @127.0.0.1  (mysql-5.5.25 ndb-7.2.7, Nodegroup: 0, Master)
id=12   @127.0.0.1  (mysql-5.5.25 ndb-7.2.7, Nodegroup: 0)
id=21   @192.168.0.2  (mysql-5.5.25 ndb-7.2.7, Nodegroup: 1)
id=22   @192.168.0.2  (mysql-5.5.25 ndb-7.2.7, Nodegroup: 1)

[ndb_mgmd(MGM)] 1 node(s)
id=1    @192.168.0.1  (mysql-5.5.25 ndb-7.2.7)

[mysqld(API)]   3 node(s)
id=10   @192.168.0.1  (mysql-5.5.25 ndb-7.2.7)
id=20   @192.168.0.2  (mysql-5.5.25 ndb-7.2.7)
id=50 (not connected, accepting connect from any host)
"""

# Every data node down: the management server still lists them
SHOW_DATA_DOWN = """Connected to Management Server at: 10.213.7.11:1186
Cluster Configuration
---------------------
[ndbd(NDB)]\t2 node(s)
id=1 (not connected, accepting connect from 10.213.7.12)
id=2 (not connected, accepting connect from 10.213.7.13)

[ndb_mgmd(MGM)]\t1 node(s)
id=145\t@10.213.7.11  (mysql-8.0.36 ndb-8.0.36)

[mysqld(API)]\t2 node(s)
id=150 (not connected, accepting connect from 10.213.7.14)
id=151 (not connected, accepting connect from 10.213.7.15)
"""


def test_show_80_lists_each_node_with_its_type_group_and_state() -> None:
    show = parse_show(SHOW_80)
    assert [(n.node_id, n.kind) for n in show.nodes] == [(1, "NDB"), (2, "NDB"), (145, "MGM"), (150, "API"),
                                                         (151, "API")]  # fmt: skip
    first, second = show.of("NDB")
    assert (first.address, first.version, first.node_group, first.president) == (
        "10.213.7.12", "mysql-8.0.36 ndb-8.0.36", 0, True)  # fmt: skip
    assert (first.state, second.state) == ("started", "starting")
    assert show.president == 1
    assert not show.all_data_nodes_started  # node 2 is still starting
    missing = show.node(151)
    assert missing is not None and (missing.connected, missing.address, missing.state) == (
        False, "10.213.7.15", "not connected")  # fmt: skip
    assert show.node(150) is not None and show.node(150).state == "connected"  # type: ignore[union-attr]


def test_show_of_older_releases_marks_the_master_and_two_node_groups() -> None:
    show = parse_show(SHOW_72)
    assert show.president == 11
    assert {n.node_id: n.node_group for n in show.of("NDB")} == {11: 0, 12: 0, 21: 1, 22: 1}
    assert show.all_data_nodes_started
    any_host = show.node(50)
    assert any_host is not None and not any_host.connected and any_host.address is None


def test_show_with_every_data_node_down_has_no_president() -> None:
    show = parse_show(SHOW_DATA_DOWN)
    assert show.president is None and not show.all_data_nodes_started
    assert [n.state for n in show.of("NDB")] == ["not connected", "not connected"]
    assert show.node(145) is not None and show.node(145).connected  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text",
    [
        "Unable to connect with connect string: nodeid=0,10.213.7.11:1186\nRetrying every 5 seconds.\n",
        "",
    ],
)
def test_text_that_is_no_show_output_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not ndb_mgm SHOW output"):
        parse_show(text)


def test_ndbinfo_nodes_rows_as_in_the_manual() -> None:
    # the manual's example: node 3 has not yet picked up configuration generation 6
    rows = [(1, 10462, "STARTED", 0, 6), (2, 10460, "STARTED", 0, 6), (3, 10457, "STARTED", 0, 5),
            (4, 10455, "STARTED", 0, 6)]  # fmt: skip
    nodes = parse_ndbinfo_nodes(rows)
    assert sorted(nodes) == [1, 2, 3, 4] and all(n.started for n in nodes.values())
    assert nodes[3].config_generation == 5 and nodes[1].uptime_s == 10462
    starting = parse_ndbinfo_nodes([(2, 12, "STARTING", 4, 1)])
    assert not starting[2].started and starting[2].start_phase == 4


def test_ndbinfo_rows_from_mysql_batch_output() -> None:
    text = "node_id\tuptime\tstatus\tstart_phase\tconfig_generation\n1\t80\tSTARTED\t0\t1\n2\t3\tSTARTING\t2\t1\n"
    nodes = parse_ndbinfo_nodes(parse_batch(text))
    assert [(n.node_id, n.status, n.start_phase) for n in nodes.values()] == [
        (1, "STARTED", 0),
        (2, "STARTING", 2),
    ]


def test_membership_names_the_president_and_the_arbitrator() -> None:
    rows = [(1, 0, 1, 145, "ARBIT_RUN", "Yes"), (2, 0, 1, 145, "ARBIT_RUN", "Yes")]
    members = parse_membership(rows)
    assert {m.president for m in members.values()} == {1}
    assert all(
        m.arbitrator == 145 and m.arb_connected and m.arb_state == "ARBIT_RUN" for m in members.values()
    )
    assert not parse_membership([(1, 0, 1, 0, "ARBIT_NULL", "No")])[1].arb_connected
