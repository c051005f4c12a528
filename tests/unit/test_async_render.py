"""mysql-async rendering: the node configs, HAProxy's three frontends, the manager's config, and the
manager daemon standing alone next to its state machine and I/O module (as in its container)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.runtime.fake import FakeRuntime
from harness.runtime.run import Run
from harness.specs import load_topology
from harness.systems.replication import manager as manager_module
from harness.systems.replication.cluster import AsyncCluster

ROOT = Path(__file__).resolve().parents[2]


def cluster(name: str = "mysql-async-3") -> AsyncCluster:
    topology = load_topology(ROOT / "topologies" / f"{name}.yaml")
    run = Run(id="t-abc123", topology=topology, slot=7, image="img", owner="me", secret="s3cret")
    return AsyncCluster(run, FakeRuntime())  # type: ignore[arg-type]


def test_node_configs_give_each_node_its_own_server_and_domain(tmp_path: Path) -> None:
    system = cluster()
    system.render(tmp_path)
    for k in (1, 2, 3):
        cnf = (tmp_path / f"n{k}" / "async.cnf").read_text()
        assert f"server_id={k}\n" in cnf and f"gtid_domain_id={k}\n" in cnf
        assert "read_only=ON" in cnf and "log_slave_updates=ON" in cnf and "sync_binlog=1" in cnf
        assert "rpl_semi_sync" not in cnf


def test_semi_sync_topology_turns_the_replica_side_on_everywhere(tmp_path: Path) -> None:
    system = cluster("mysql-async-3-semisync")
    cnf = system.async_cnf(system.run.nodes[1])
    assert "rpl_semi_sync_slave_enabled=ON" in cnf
    assert "rpl_semi_sync_master_enabled=OFF" in cnf  # the manager turns it on where it promotes
    assert "rpl_semi_sync_master_wait_point=AFTER_SYNC" in cnf
    assert "rpl_semi_sync_master_timeout=10000" in cnf
    assert system.manager_config()["semi_sync"] is True


def test_haproxy_repl_frontend_reaches_the_nodes_themselves() -> None:
    system = cluster()
    cfg = system.haproxy_cfg(readers=True, repl=True)
    repl = cfg[cfg.index("backend repl") :]
    for node in system.run.nodes:
        assert f"server {node.name} {node.ip}:3306 disabled" in repl
    writer = cfg[cfg.index("backend writer") : cfg.index("frontend reader")]
    assert writer.count("disabled") == 3 and "10.213.7.2:" in writer  # through the client proxies
    reader = cfg[cfg.index("backend reader") : cfg.index("frontend repl")]
    assert "disabled" not in reader


def test_replication_links_lead_to_the_repl_frontend() -> None:
    system = cluster()
    links = {link.name: link for link in system.repl_links()}
    assert sorted(links) == ["n1-repl", "n2-repl", "n3-repl"]
    assert {link.upstream for link in links.values()} == {f"{system.haproxy_ip}:3308"}
    assert links["n2-repl"].listen_port == 12406


def test_manager_checks_through_client_proxies_and_starts_from_n1() -> None:
    system = cluster()
    cfg = system.manager_config()
    assert cfg["source"] == "n1"
    for host, node in zip(cfg["hosts"], system.run.nodes, strict=True):
        assert (host["check_host"], host["check_port"]) == system.endpoint(node, "mysql")
        assert host["check_host"] != node.ip
    assert cfg["settings"] == {"check_period": 0.5, "failover_after": 2.0, "apply_timeout": 5.0,
                               "action_timeout": 10.0}  # fmt: skip
    assert "password" in cfg["repl"] and cfg["repl"]["password"] != cfg["password"]


def test_rendered_manager_directory_is_complete(tmp_path: Path) -> None:
    cluster().render(tmp_path)
    names = sorted(p.name for p in (tmp_path / "manager").iterdir())
    assert names == ["daemon_io.py", "failover_state.py", "manager.json", "manager.py"]
    json.loads((tmp_path / "manager" / "manager.json").read_text())


def test_manager_runs_standalone_next_to_its_modules(tmp_path: Path) -> None:
    here = Path(manager_module.__file__).parent
    shutil.copyfile(here / "manager.py", tmp_path / "manager.py")
    shutil.copyfile(here / "failover_state.py", tmp_path / "failover_state.py")
    shutil.copyfile(here.parent / "daemon_io.py", tmp_path / "daemon_io.py")
    code = (
        "import sys; import manager\n"
        "assert manager.fs.__name__ == 'failover_state' and manager.io.__name__ == 'daemon_io'\n"
        "assert not [m for m in sys.modules if m.startswith('harness')]\n"
        "sys.exit(manager.main(['manager.py']))\n"
    )
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip
    assert (done.returncode, done.stderr.strip()) == (2, "usage: manager.py CONFIG.json")
    assert not (tmp_path / "__pycache__").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nodes: 1", "mysql-async needs a source and at least one replica"),
        ("settings: {failover_after: 0s}", "must be > 0"),
        ("settings: {semi_sync: maybe}", "semi_sync"),
    ],
)
def test_bad_async_topology(tmp_path: Path, text: str, expected: str) -> None:
    base = {"name": "a", "system": "mysql-async", "nodes": 3}
    lines = [f"{k}: {v}" for k, v in base.items() if not text.startswith(k)]
    path = tmp_path / "t.yaml"
    path.write_text("\n".join([*lines, text]) + "\n")
    with pytest.raises(InputError) as err:
        load_topology(path)
    assert expected in str(err.value)
