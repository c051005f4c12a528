"""MMM with read-only slaves (``mmm-4-replicas``): the topology's validation, the slaves' configs and links,
HAProxy's backends, and the monitor's config; mmm-2 rendered as before (no repl frontend, no slave)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cli
from harness.runtime.fake import FakeRuntime
from harness.runtime.run import Run
from harness.specs import load_topology
from harness.systems.mmm.cluster import MmmCluster
from harness.systems.mmm.monitor import Monitor

ROOT = Path(__file__).resolve().parents[2]


def cluster(name: str = "mmm-4-replicas") -> MmmCluster:
    topology = load_topology(ROOT / "topologies" / f"{name}.yaml")
    run = Run(id="t-abc123", topology=topology, slot=7, image="img", owner="me", secret="s3cret")
    return MmmCluster(run, FakeRuntime())  # type: ignore[arg-type]


def section(cfg: str, start: str, end: str | None = None) -> str:
    begin = cfg.index(start)
    return cfg[begin : cfg.index(end, begin) if end else None]


def test_two_masters_and_two_slaves() -> None:
    system = cluster()
    assert [n.name for n in system.masters] == ["n1", "n2"]
    assert [n.name for n in system.slaves] == ["n3", "n4"]
    assert [n.name for n in system.data_nodes] == ["n1", "n2", "n3", "n4"]  # final reads, lag, divergence
    assert system.peer(system.run.nodes[0]).name == "n2" and system.peer(system.run.nodes[1]).name == "n1"


def test_slaves_are_read_only_mariadb_with_their_own_server_and_domain(tmp_path: Path) -> None:
    system = cluster()
    system.render(tmp_path)
    for k in (1, 2, 3, 4):
        cnf = (tmp_path / f"n{k}" / "mmm.cnf").read_text()
        assert f"server_id={k}\n" in cnf and f"gtid_domain_id={k}\n" in cnf and "read_only=ON\n" in cnf
        assert "log_slave_updates=ON" in cnf and "sync_binlog=1" in cnf
    for k in (1, 2):
        cnf = (tmp_path / f"n{k}" / "mmm.cnf").read_text()
        assert f"(MMM master {k})" in cnf and f"auto_increment_offset={k}\n" in cnf
        assert "relay_log_recovery" not in cnf
    for k in (3, 4):
        cnf = (tmp_path / f"n{k}" / "mmm.cnf").read_text()
        assert f"(MMM slave {k})" in cnf and "relay_log_recovery=ON\n" in cnf and "auto_increment" not in cnf
        assert "MMM slave" in (tmp_path / f"n{k}" / "start.sh").read_text()


def test_each_slave_replicates_through_its_own_link_to_the_repl_frontend() -> None:
    system = cluster()
    links = {link.name: link for link in system.repl_links()}
    assert sorted(links) == ["n1-repl", "n2-repl", "n3-repl", "n4-repl"]
    assert links["n1-repl"].upstream == "10.213.7.12:3306"  # a master's: the other master itself
    assert links["n2-repl"].upstream == "10.213.7.11:3306"
    for name in ("n3-repl", "n4-repl"):  # a slave's: HAProxy's repl frontend, i.e. the active master
        assert links[name].upstream == "10.213.7.3:3308"
    ports = [link.listen_port for link in links.values()]
    assert len(set(ports)) == 4 and links["n3-repl"].listen_port == 13406
    assert {"n3-repl", "n4-repl", "n3-mysql", "n4-mysql"} <= {link.name for link in system.links()}


def test_haproxy_writer_and_repl_over_the_masters_reader_over_every_node() -> None:
    system = cluster()
    cfg = system.haproxy()
    writer = section(cfg, "backend writer", "frontend reader")
    assert writer.count("disabled") == 2 and "server n3" not in writer and "server n4" not in writer
    reader = section(cfg, "backend reader", "frontend repl")
    for k in (1, 2, 3, 4):  # each through its client proxy, so client-link faults still apply
        assert f"server n{k} 10.213.7.2:1{k}306 disabled" in reader
    assert "bind 0.0.0.0:3308" in cfg
    repl = section(cfg, "backend repl")
    assert "server n1 10.213.7.11:3306 disabled" in repl and "server n2 10.213.7.12:3306 disabled" in repl
    assert "server n3" not in repl and "server n4" not in repl


def test_mmm_2_renders_as_before_without_a_repl_frontend() -> None:
    system = cluster("mmm-2")
    assert system.slaves == [] and system.haproxy() == system.haproxy_cfg()
    assert "frontend repl" not in system.haproxy()
    config = system.monitor_config()
    assert config["hosts"] == [
        {"name": "n1", "ip": "10.213.7.11", "peer": "n2"},
        {"name": "n2", "ip": "10.213.7.12", "peer": "n1"},
    ]
    assert "repl" not in config
    assert [link.upstream for link in system.repl_links()] == ["10.213.7.12:3306", "10.213.7.11:3306"]


def test_monitor_config_names_the_slaves_and_their_links() -> None:
    system = cluster()
    config = system.monitor_config()
    hosts = {h["name"]: h for h in config["hosts"]}
    assert hosts["n1"] == {"name": "n1", "ip": "10.213.7.11", "peer": "n2"}
    assert hosts["n3"] == {"name": "n3", "ip": "10.213.7.13", "mode": "slave", "repl_port": 13406}
    assert hosts["n4"]["repl_port"] == 14406
    assert config["repl"] == {"host": "10.213.7.2", "user": "repl", "password": system.run.credential("repl")}
    monitor = Monitor(config)  # the daemon reads it as it will in its container
    assert monitor.state.slaves == ["n3", "n4"] and monitor.state.masters == ["n1", "n2"]
    assert monitor.state.hosts["n3"].peer is None and monitor.state.hosts["n1"].peer == "n2"
    assert monitor.repl_ports == {"n3": 13406, "n4": 14406}
    show = monitor.show()
    assert show["hosts"]["n3"]["mode"] == "slave" and show["hosts"]["n3"]["following"] is None


def test_slave_names_are_normalized_to_node_order(tmp_path: Path) -> None:
    text = (ROOT / "topologies" / "mmm-4-replicas.yaml").read_text()
    assert "slaves: [n3, n4]" in text
    path = tmp_path / "mmm.yaml"
    path.write_text(text.replace("slaves: [n3, n4]", "slaves: [n4, n3]"))
    assert load_topology(path).settings.slaves == ["n3", "n4"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nodes: 3\n", "{f}:1: settings.slaves: nodes: 3 means masters n1, n2 and slaves n3; got none"),
        ("nodes: 1\n", "{f}:3: nodes: mmm runs 2 masters (n1, n2), and read-only slaves beside them "
                       "(settings.slaves), got 1"),
        ("nodes: 4\nsettings:\n  slaves: [n3]\n",
         "{f}:5: settings.slaves: nodes: 4 means masters n1, n2 and slaves n3, n4; got n3"),
        ("nodes: 2\nsettings:\n  slaves: [n3]\n",
         "{f}:5: settings.slaves: nodes: 2 has no node beside the masters n1, n2; got n3"),
        ("nodes: 3\nsettings:\n  slaves: [n2]\n",
         "{f}:5: settings.slaves: expected node names n3, n4, … (n1 and n2 are the masters), got n2"),
        ("nodes: 4\nsettings:\n  slaves: [n3, n3]\n",
         "{f}:5: settings.slaves: each slave once, got n3 more than once"),
        ("nodes: 3\nsettings:\n  slaves: n3\n", "{f}:5: settings.slaves: input should be a valid list, got 'n3'"),
    ],
)  # fmt: skip
def test_bad_slaves(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str) -> None:
    path = tmp_path / "mmm.yaml"
    path.write_text("name: m4\nsystem: mmm\n" + text)
    code = cli.main(["validate", str(path)])
    _, err = capsys.readouterr()
    assert (code, err.strip()) == (2, expected.format(f=path))


def test_a_scenario_naming_a_slave_does_not_fit_mmm_2(capsys: pytest.CaptureFixture[str]) -> None:
    scenario = ROOT / "scenarios" / "kill-replica.yaml"
    assert cli.main(["validate", str(ROOT / "topologies" / "mmm-4-replicas.yaml"), str(scenario)]) == 0
    assert cli.main(["validate", str(ROOT / "topologies" / "mmm-2.yaml"), str(scenario)]) == 2
    _, err = capsys.readouterr()
    assert "steps[0].kill: unknown node or role 'n3'" in err
