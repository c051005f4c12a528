"""The NDB cluster class on the fake runtime, with a management server that answers ``SHOW`` from the
containers that run: bring-up order, status per role, the president as the primary; and what
``validate`` and ``doctor`` say about NDB topologies on a host without the image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.doctor import optional_checks
from harness.model.scenario import Scenario
from harness.plan import Source, check_pair
from harness.runtime.base import ExecResult
from harness.runtime.fake import FakeRuntime
from harness.runtime.run import Run
from harness.specs import load_scenario, load_topology
from harness.systems.ndb.cluster import NdbCluster
from harness.systems.ndb.settings import NdbTopology

ROOT = Path(__file__).resolve().parents[2]


def show_of(system: NdbCluster, runtime: FakeRuntime, president: str | None = None) -> str:
    """What ``ndb_mgm -e SHOW`` would print for the containers that run (8.0's format)."""
    s = system.topology.settings
    ids, roles = s.ids(), s.roles()
    running = {n.name for n in system.run.nodes if runtime.state(n.container).status == "running"}
    data_up = [n for n in system.topology.nodes_with("data") if n in running]
    chosen = president if president in data_up else (data_up[0] if data_up else None)
    out = ["Connected to Management Server at: x:1186", "Cluster Configuration", "---------------------"]
    for kind, header in (("data", "[ndbd(NDB)]"), ("mgm", "[ndb_mgmd(MGM)]"), ("sql", "[mysqld(API)]")):
        names = [n for n, r in roles.items() if r == kind]
        out.append(f"{header}\t{len(names)} node(s)")
        for name in names:
            ip = system.run.node(name).ip
            if name not in running:
                out.append(f"id={ids[name]} (not connected, accepting connect from {ip})")
                continue
            extra = (
                f", Nodegroup: {s.node_group_of()[name]}{', *' if name == chosen else ''}"
                if kind == "data"
                else ""
            )
            out.append(f"id={ids[name]}\t@{ip}  (mysql-8.0.36 ndb-8.0.36{extra})")
        out.append("")
    return "\n".join(out)


class FakeConnection:
    def __init__(self, log: list[tuple[str, str]], node: str) -> None:
        self.log, self.node = log, node

    def cursor(self) -> FakeConnection:
        return self

    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, statement: str) -> None:
        self.log.append((self.node, statement))

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [(1, 60, "STARTED", 0, 1), (2, 60, "STARTED", 0, 1)]

    def close(self) -> None:
        return None


@pytest.fixture
def ndb(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[NdbCluster, FakeRuntime, list[tuple[str, str]]]:
    topology = load_topology(ROOT / "topologies" / "ndb-2x2.yaml")
    run = Run(
        id="t-ndb123", topology=topology, slot=9, image="mysql/mysql-cluster:8.0", owner="me", secret="s"
    )
    runtime = FakeRuntime()
    system = NdbCluster(run, runtime)  # type: ignore[arg-type]
    statements: list[tuple[str, str]] = []

    def handler(name: str, cmd: Sequence[str]) -> ExecResult:
        assert list(cmd[:1]) == ["ndb_mgm"] and cmd[-2:] == ["-e", "SHOW"]
        return ExecResult(0, show_of(system, runtime))

    runtime.exec_handler = handler
    monkeypatch.setattr(system, "connect", lambda node, **kw: FakeConnection(statements, node.name))
    monkeypatch.setattr(system, "node_dir", lambda node: tmp_path / node.name)
    return system, runtime, statements


def test_bootstrap_walks_the_plan(ndb: tuple[NdbCluster, FakeRuntime, list[tuple[str, str]]]) -> None:
    system, runtime, statements = ndb
    system.bootstrap()
    started = [args[0].removeprefix("hh-t-ndb123-") for args in runtime.verbs("run")]
    assert started[0] == "n1" and set(started[1:3]) == {"n2", "n3"} and set(started[3:]) == {"n4", "n5"}
    assert statements == [("n4", "CREATE DATABASE IF NOT EXISTS harness")]


def test_status_per_role_and_the_president_as_primary(
    ndb: tuple[NdbCluster, FakeRuntime, list[tuple[str, str]]],
) -> None:
    system, runtime, _ = ndb
    system.bootstrap()
    status = {s.node: s for s in system.status()}
    assert all(s.healthy for s in status.values()), status
    assert status["n1"].role == "management (arbitrator)" and status["n1"].state == "2/2 data nodes started"
    assert status["n2"].role == "data (group 0, president)" and status["n3"].role == "data (group 0)"
    assert status["n4"].state == "2/2 data nodes STARTED"
    assert system.primary().name == "n2"
    runtime.kill(system.run.node("n2").container)
    assert system.primary().name == "n3"  # the survivor became president
    after = {s.node: s for s in system.status()}
    assert (after["n2"].state, after["n2"].healthy) == ("exited", False)


def test_no_management_server_is_an_unhealthy_status_not_an_error(
    ndb: tuple[NdbCluster, FakeRuntime, list[tuple[str, str]]],
) -> None:
    system, runtime, _ = ndb
    system.bootstrap()
    runtime.kill(system.run.node("n1").container)
    data = system.node_status(system.run.node("n2"))
    assert (data.state, data.healthy) == (
        "no answer",
        False,
    ) and "no management server answers" in data.detail
    assert system.primary().name == "n2"  # the first data node when nobody can say


# -------------------------------------------------------------------------------- validate / doctor
def with_ndb(path: Path) -> Scenario:
    """A shipped scenario with ndb added to its systems and an sql-set workload for it."""
    scenario = load_scenario(path)
    workload = {**scenario.workload, "ndb": scenario.workload.get("galera")}
    return scenario.model_copy(update={"systems": [*scenario.systems, "ndb"], "workload": workload})


@pytest.mark.parametrize("topology", ["ndb-2x2.yaml", "ndb-4x2.yaml"])
@pytest.mark.parametrize("scenario", ["kill-primary.yaml", "partition-isolate-primary.yaml"])
def test_sql_scenarios_fit_ndb_once_they_name_it(topology: str, scenario: str) -> None:
    t = load_topology(ROOT / "topologies" / topology)
    assert isinstance(t, NdbTopology)
    shipped = load_scenario(ROOT / "scenarios" / scenario)
    refused = check_pair(shipped, t, Source.of(shipped))
    assert any("not ndb" in p for p in refused) and any("no workload for system 'ndb'" in p for p in refused)
    assert check_pair(with_ndb(ROOT / "scenarios" / scenario), t, Source("s")) == []


def test_validate_says_an_ndb_topology_cannot_run_without_its_image(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_runtime", lambda: FakeRuntime(images=[]))
    code = cli.main(["validate", str(ROOT / "topologies" / "ndb-2x2.yaml")])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "cannot run here without the image mysql/mysql-cluster:8.0 (it is not present" in " ".join(
        out.split()
    )
    monkeypatch.setattr(cli, "_runtime", lambda: FakeRuntime(images=["mysql/mysql-cluster:8.0"]))
    cli.main(["validate", str(ROOT / "topologies" / "ndb-2x2.yaml")])
    assert "cannot run here" not in capsys.readouterr().out


def test_doctor_row_for_the_ndb_image_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.runtime.docker as docker_module

    monkeypatch.setattr(docker_module, "DockerRuntime", lambda: FakeRuntime(images=[]))
    [(what, ok, found, how)] = optional_checks()
    assert what == "mysql/mysql-cluster:8.0 image (NDB topologies)" and not ok
    assert found == "mysql/mysql-cluster:8.0 absent" and "cannot run here" in how


def test_doctor_exit_code_ignores_the_absent_ndb_image(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import doctor as doctor_module

    monkeypatch.setattr(doctor_module, "checks", lambda: [("Python >= 3.11", True, "3.11", "")])
    monkeypatch.setattr(doctor_module, "optional_checks",
                        lambda: [("mysql/mysql-cluster:8.0 image (NDB topologies)", False, "absent", "cannot run")])  # fmt: skip
    assert doctor_module.doctor() == 0
    monkeypatch.setattr(doctor_module, "checks", lambda: [("Docker engine", False, "none", "./setup.sh")])
    assert doctor_module.doctor() == 4
