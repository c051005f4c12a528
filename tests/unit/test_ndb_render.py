"""NDB Cluster rendering and bring-up order, checked against the manual's rules: config.ini's sections
and node ids, node groups = data nodes / NoOfReplicas, one arbitrator, fixed ports; each SQL node's
my.cnf; the start scripts' ``--initial`` only on a first start; the plan's order."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from harness.runtime.fake import FakeRuntime
from harness.runtime.run import Run
from harness.specs import load_topology
from harness.systems.ndb.bringup import Sql, Start, WaitFor, bringup_plan
from harness.systems.ndb.cluster import NdbCluster
from harness.systems.ndb.render import config_ini, my_cnf, start_sh
from harness.systems.ndb.settings import NdbTopology

ROOT = Path(__file__).resolve().parents[2]


def topology(name: str) -> NdbTopology:
    loaded = load_topology(ROOT / "topologies" / f"{name}.yaml")
    assert isinstance(loaded, NdbTopology)
    return loaded


def ips(t: NdbTopology) -> dict[str, str]:
    return {name: f"10.213.7.{10 + i}" for i, name in enumerate(t.node_names, start=1)}


def sections(text: str) -> list[tuple[str, dict[str, str]]]:
    """config.ini's sections in order (configparser cannot: the section names repeat)."""
    out: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            out.append((line.strip("[]"), {}))
        else:
            key, _, value = line.partition("=")
            out[-1][1][key] = value
    return out


def test_config_ini_of_ndb_2x2_follows_the_manual() -> None:
    t = topology("ndb-2x2")
    got = sections(config_ini(t, ips(t)))
    assert [name for name, _ in got] == ["ndbd default", "ndb_mgmd default", "ndb_mgmd", "ndbd", "ndbd",
                                         "mysqld", "mysqld"]  # fmt: skip
    default = got[0][1]
    assert default["NoOfReplicas"] == "2" and default["DataMemory"] == "128M"
    assert default["ServerPort"] == "11860"  # fixed: the transporters can be named by a partition
    assert default["HeartbeatIntervalDbDb"] == "1500"
    assert got[1][1]["PortNumber"] == "1186"
    mgm, data, sql = got[2][1], [s for n, s in got if n == "ndbd"], [s for n, s in got if n == "mysqld"]
    assert mgm == {"NodeId": "145", "HostName": "10.213.7.11", "ArbitrationRank": "1"}
    assert [(d["NodeId"], d["HostName"], d["NodeGroup"]) for d in data] == [
        ("1", "10.213.7.12", "0"), ("2", "10.213.7.13", "0")]  # fmt: skip
    assert [(s["NodeId"], s["HostName"], s["ArbitrationRank"]) for s in sql] == [
        ("150", "10.213.7.14", "0"), ("151", "10.213.7.15", "0")]  # fmt: skip


def test_config_ini_of_ndb_4x2_has_two_node_groups_and_one_arbitrator() -> None:
    t = topology("ndb-4x2")
    got = sections(config_ini(t, ips(t)))
    data = [s for n, s in got if n == "ndbd"]
    groups = [d["NodeGroup"] for d in data]
    assert groups == ["0", "0", "1", "1"]
    # node groups = data nodes / NoOfReplicas, each of NoOfReplicas nodes
    assert len(set(groups)) == len(data) // int(got[0][1]["NoOfReplicas"])
    ids = [int(s["NodeId"]) for _, s in got if "NodeId" in s]
    assert len(ids) == len(set(ids)) == 7
    assert all(1 <= int(d["NodeId"]) <= 144 for d in data) and all(1 <= i <= 255 for i in ids)
    ranks = [s.get("ArbitrationRank") for n, s in got if n in ("ndb_mgmd", "mysqld")]
    assert ranks.count("1") == 1 and got[2][0] == "ndb_mgmd" and got[2][1]["ArbitrationRank"] == "1"


def test_my_cnf_of_each_sql_node_names_the_management_server_and_its_own_id() -> None:
    t = topology("ndb-2x2")
    for node, node_id in (("n4", 150), ("n5", 151)):
        parser = configparser.ConfigParser(allow_no_value=True)
        parser.read_string(my_cnf(t, ips(t), node))
        mysqld = parser["mysqld"]
        assert "ndbcluster" in mysqld
        assert mysqld["ndb-connectstring"] == "10.213.7.11:1186"
        assert mysqld["ndb-nodeid"] == mysqld["server-id"] == str(node_id)
        assert mysqld["default_storage_engine"] == "ndbcluster"  # the workloads' tables are NDB tables
        assert mysqld["port"] == "3306"
        assert parser["mysql_cluster"]["ndb-connectstring"] == "10.213.7.11:1186"


def test_start_scripts_pass_initial_only_while_the_node_never_started() -> None:
    t = topology("ndb-2x2")
    mgm, data, sql = start_sh(t, ips(t), "n1"), start_sh(t, ips(t), "n2"), start_sh(t, ips(t), "n4")
    assert "[ -e /var/lib/mysql-cluster/ndb_145_config.bin.1 ] || initial=--initial" in mgm
    assert "exec ndb_mgmd --nodaemon $initial --config-file=/etc/harness/config.ini" in mgm
    assert "[ -e /var/lib/mysql-cluster/ndb_1_fs ] || initial=--initial" in data
    assert re.search(r"exec ndbd --nodaemon \$initial --ndb-connectstring=10\.213\.7\.11:1186 --ndb-nodeid=1$",
                     data, re.M)  # fmt: skip
    assert "--initial " not in sql and "exec mysqld --defaults-file=/etc/harness/my.cnf" in sql
    assert "--initialize-insecure" in sql  # the image ships no data directory


def test_bringup_plan_starts_management_then_all_data_nodes_together_then_sql() -> None:
    t = topology("ndb-4x2")
    plan = bringup_plan(t, ips(t))
    shape = [(type(s).__name__, getattr(s, "condition", None), getattr(s, "nodes", (getattr(s, "node", None),)))
             for s in plan]  # fmt: skip
    assert shape == [
        ("Start", None, ("n1",)),
        ("WaitFor", "mgm-answers", ("n1",)),
        ("Start", None, ("n2", "n3", "n4", "n5")),  # one step: an initial start waits for all data nodes
        ("WaitFor", "data-nodes-started", ("n2", "n3", "n4", "n5")),
        ("Start", None, ("n6", "n7")),
        ("WaitFor", "sql-nodes-connected", ("n6", "n7")),
        ("Sql", None, ("n6",)),
    ]
    starts = [s for s in plan if isinstance(s, Start)]
    assert all("--initial" in c for c in starts[0].commands + starts[1].commands)
    assert starts[1].commands[0][:2] == ("ndbd", "--nodaemon") and "--ndb-nodeid=1" in starts[1].commands[0]
    assert not any("--initial" in c for c in starts[2].commands)
    last = plan[-1]
    assert isinstance(last, Sql) and last.statement == "CREATE DATABASE IF NOT EXISTS harness"
    assert all(isinstance(s, Start | WaitFor | Sql) and s.describe() for s in plan)


def test_ndbmtd_setting_runs_the_multithreaded_data_node() -> None:
    t = topology("ndb-2x2")
    t = t.model_copy(update={"settings": t.settings.model_copy(update={"data_node_binary": "ndbmtd"})})
    start = next(s for s in bringup_plan(t, ips(t)) if isinstance(s, Start) and "n2" in s.nodes)
    assert start.commands[0][0] == "ndbmtd"


def test_cluster_renders_each_role_its_files(tmp_path: Path) -> None:
    run = Run(id="t-abc123", topology=topology("ndb-2x2"), slot=7, image="mysql/mysql-cluster:8.0", owner="me",
              secret="s3cret")  # fmt: skip
    system = NdbCluster(run, FakeRuntime())  # type: ignore[arg-type]
    system.render(tmp_path)
    assert sorted(p.name for p in (tmp_path / "n1").iterdir()) == ["config.ini", "start.sh"]
    assert sorted(p.name for p in (tmp_path / "n2").iterdir()) == ["start.sh"]
    assert sorted(p.name for p in (tmp_path / "n4").iterdir()) == ["init.sql", "my.cnf", "start.sh"]
    ini = (tmp_path / "n1" / "config.ini").read_text()
    assert "run t-abc123" in ini and f"HostName={run.node('n2').ip}" in ini
    init = (tmp_path / "n4" / "init.sql").read_text()
    assert run.credential("client") in init and "mysql_native_password" in init
    assert "wsrep" not in init  # MySQL 8.0 would refuse it and stop at start-up
    spec = system.container_spec(run.node("n2"))
    assert spec.image == "mysql/mysql-cluster:8.0" and list(spec.command) == ["sh", "/etc/harness/start.sh"]


@pytest.mark.parametrize("name", ["ndb-2x2", "ndb-4x2"])
def test_clients_use_the_sql_nodes(name: str) -> None:
    t = topology(name)
    assert t.data_node_names == t.nodes_with("sql") == t.node_names[-2:]
