"""The ``harness`` command's own behaviour: exit codes, one line per problem, no traceback — for bad input
(``validate`` refuses everything ``run`` would), stored runs that are corrupt or incomplete, and the fault
commands on the fake runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness import cli
from harness.runtime.fake import FakeRuntime
from tests.support import fake_system

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
TOPOLOGIES = ROOT / "topologies"


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """name: t
systems: [galera]
workload:
  galera: {type: sql-set}
steps:
  - wait: 1s
"""


# ---------------------------------------------------------------------------------------------- validate
@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (
            GOOD + "checks:\n  availabilty: {}\n",
            8,
            "checks.availabilty: unknown checker 'availabilty', expected one of",
        ),
        (
            GOOD + "checks:\n  availability: {max_outage_s: abc}\n",
            8,
            "checks.availability.max_outage_s: input should be a valid number",
        ),
        (GOOD.replace("wait: 1s", "wait: 100000h"), 6, "steps[0].wait: must be at most 24h (86400s)"),
        (GOOD.replace("[galera]", "[galera, nope]"), 2, "systems[1]: unknown system 'nope'"),
        (
            GOOD.replace("wait: 1s", "link: {target: n1, kind: latency, latency_ms: -5}"),
            6,
            "steps[0].link.latency_ms: input should be greater than or equal to 0",
        ),
    ],
)
def test_validate_refuses_with_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, expected: str
) -> None:
    path = write(tmp_path, "s.yaml", text)
    code, _, err = run(capsys, "validate", path)
    assert code == 2
    assert err.startswith(f"{path}:{line}: {expected}"), err


def test_validate_reports_every_bad_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path, "s.yaml", GOOD.replace("  - wait: 1s\n", "  - wait: forever\n  - kill: 3\n  - bogus: 1\n")
    )
    code, _, err = run(capsys, "validate", path)
    assert code == 2
    lines = err.strip().splitlines()
    assert [ln.split(": ", 2)[1] for ln in lines] == ["steps[0].wait", "steps[1].kill", "steps[2]"], lines
    assert [int(ln.split(":")[1]) for ln in lines] == [6, 7, 8]


def test_validate_checks_each_pair_as_run_would(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", TOPOLOGIES / "mmm-2.yaml", SCENARIOS / "partition-halves.yaml")
    assert code == 2
    assert f"{SCENARIOS / 'partition-halves.yaml'}" in err and "no workload for system 'mmm'" in err
    assert "this scenario is for galera, rabbitmq, not mmm" in err
    assert "partition needs a peer mesh to partition, which mmm does not have" in err
    assert f"(with {TOPOLOGIES / 'mmm-2.yaml'})" in err
    assert f"ok {TOPOLOGIES / 'mmm-2.yaml'}" in out  # each file by itself is fine


def test_validate_passes_every_shipped_pair_that_fits(capsys: pytest.CaptureFixture[str]) -> None:
    pairs = [("galera-3.yaml", "partition-isolate-primary.yaml"), ("galera-3.yaml", "bank-partition.yaml"),
             ("rabbitmq-3.yaml", "partition-halves.yaml"), ("mmm-2.yaml", "kill-writer.yaml")]  # fmt: skip
    for topology, scenario in pairs:
        code, out, err = run(capsys, "validate", TOPOLOGIES / topology, SCENARIOS / scenario)
        assert (code, err) == (0, ""), (topology, scenario, err)
        assert f"ok {SCENARIOS / scenario} on {TOPOLOGIES / topology}" in out


def test_validate_every_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(SCENARIOS.glob("*.yaml")) + sorted(TOPOLOGIES.glob("*.yaml"))
    code, out, err = run(capsys, "validate", *files)
    # every file is fine alone; a pair of a topology and a scenario not meant for it is not
    assert all(f"ok {f}" in out for f in files), err
    assert code == 2 and "no workload for system 'mmm'" in err


def test_a_timeline_with_two_faults_on_one_target_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = "  - kill: n2\n  - wait: 1s\n  - kill: n2\n  - partition: {isolate: n1}\n  - partition: {shape: halves}\n"
    path = write(tmp_path, "s.yaml", GOOD.replace("  - wait: 1s\n", steps))
    code, _, err = run(capsys, "validate", TOPOLOGIES / "galera-3.yaml", path)
    assert code == 2
    assert f"{path}:8: steps[2].kill: n2 is already under process since steps[0]" in err
    assert f"{path}:10: steps[4].partition: peer-mesh is already under iptables since steps[3]" in err


# ---------------------------------------------------------------------------------------------- check
@pytest.fixture
def stored_run(tmp_path: Path) -> Path:
    src = ROOT / "tests" / "data" / "runs" / "set-partition"
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    return dst


def test_check_of_a_good_stored_run(capsys: pytest.CaptureFixture[str], stored_run: Path) -> None:
    code, out, _ = run(capsys, "check", stored_run)
    assert code == 0 and "valid" in out


def test_check_of_a_corrupt_history_is_bad_input_not_data_loss(
    capsys: pytest.CaptureFixture[str], stored_run: Path
) -> None:
    history = stored_run / "history.jsonl"
    lines = history.read_text().splitlines(keepends=True)
    lines[3] = '{"type": "ok", "process": \n'
    history.write_text("".join(lines))
    code, _, err = run(capsys, "check", stored_run)
    assert code == 2
    assert err.startswith(f"{history}:4: not JSON")


def test_check_of_a_run_without_events_is_unknown(
    capsys: pytest.CaptureFixture[str], stored_run: Path
) -> None:
    (stored_run / "events.jsonl").unlink()
    code, _, err = run(capsys, "check", stored_run)
    assert code == 3
    assert "missing events.jsonl" in err


# ---------------------------------------------------------------------------------------------- faults on a fake run
@pytest.fixture
def fake_run(fake_system: None, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeRuntime, str]:
    from harness.lifecycle import up

    runtime = FakeRuntime()
    monkeypatch.setattr(cli, "_runtime", lambda: runtime)
    run_ = up(fake_system_topology(), runtime, hand_over=True)
    return runtime, run_.id


def fake_system_topology() -> fake_system.FakeTopology:
    return fake_system.fake_topology()


def test_fault_kill_then_heal_then_down(
    capsys: pytest.CaptureFixture[str], fake_run: tuple[FakeRuntime, str]
) -> None:
    runtime, run_id = fake_run
    code, out, _ = run(capsys, "fault", run_id, "kill", "n2")
    assert code == 0 and "kill on n2 via signal — in effect" in out
    assert runtime.state(f"hh-{run_id}-n2").status == "exited"
    code, _, err = run(capsys, "fault", run_id, "kill", "n9")
    assert code == 2 and "unknown node or role 'n9'" in err
    code, _, _ = run(capsys, "heal", run_id)
    code, out, _ = run(capsys, "fault", run_id, "partition", "--isolate", "n1")
    assert code == 0 and "partition on [n1] | [n2,n3] via" in out  # brackets shown, not read as markup
    code, _, _ = run(capsys, "heal", run_id)
    assert code == 0 and runtime.state(f"hh-{run_id}-n2").status == "running"
    code, _, _ = run(capsys, "down", run_id)
    assert code == 0 and runtime.containers() == [] and runtime.networks() == [] and runtime.volumes() == []


def test_fault_flags_are_checked_by_the_step_models(
    capsys: pytest.CaptureFixture[str], fake_run: tuple[FakeRuntime, str]
) -> None:
    _, run_id = fake_run
    code, _, err = run(capsys, "fault", run_id, "link", "n1", "--slicer", "10:10")
    assert code == 2 and "size_variation must be < average_size (10), got 10" in err
    code, _, err = run(capsys, "fault", run_id, "crash-all", "--window", "soon")
    assert code == 2 and "fault crash-all.crash_all.window: expected a duration" in err


@pytest.mark.parametrize(
    ("flags", "doc"),
    [
        (["--latency", "200ms", "--jitter", "20ms"], {"kind": "latency", "latency_ms": 200, "jitter_ms": 20}),
        (["--bandwidth", "64"], {"kind": "bandwidth", "rate_kbps": 64}),
        (["--timeout", "1.5s"], {"kind": "timeout", "timeout_ms": 1500}),
        (["--stall"], {"kind": "stall", "direction": "both"}),
        (["--reset-peer"], {"kind": "reset_peer", "timeout_ms": 0}),
        (["--slow-close", "300ms"], {"kind": "slow_close", "delay_ms": 300}),
        (
            ["--slicer", "64:8:10"],
            {"kind": "slicer", "average_size": 64, "size_variation": 8, "delay_us": 10},
        ),
        (["--limit-data", "1024"], {"kind": "limit_data", "bytes": 1024}),
        (["--down"], {"kind": "down"}),
    ],
)
def test_every_link_kind_has_its_flags(flags: list[str], doc: dict[str, object]) -> None:
    args = cli.build_parser().parse_args(["fault", "r", "link", "n1", *flags])
    step = cli.fault_step(args)
    assert step.link.target == "n1"
    assert {k: v for k, v in step.link.model_dump().items() if k in doc} == doc


@pytest.mark.parametrize(
    ("argv", "doc"),
    [
        (["power-loss"], {"power_loss": {"target": "all", "window": "0s"}}),
        (["power-loss", "n2", "--window", "1s"], {"power_loss": {"target": "n2", "window": "1s"}}),
        (["disk", "n2", "--kind", "eio", "--ops", "fsync"],
         {"disk": {"target": "n2", "kind": "eio", "ops": ["fsync"], "latency_ms": 0}}),
        (["disk", "n1", "--kind", "slow", "--latency", "250ms"],
         {"disk": {"target": "n1", "kind": "slow", "ops": ["write", "fsync"], "latency_ms": 250}}),
        (["wipe"], {"wipe": {"target": "primary", "return": True}}),
        (["wipe", "n2", "--no-return"], {"wipe": {"target": "n2", "return": False}}),
    ],
)  # fmt: skip
def test_storage_faults_have_their_flags(argv: list[str], doc: dict[str, object]) -> None:
    from harness.model.faults import step_to_yaml

    args = cli.build_parser().parse_args(["fault", "r", *argv])
    assert step_to_yaml(cli.fault_step(args)) == doc


def test_bad_storage_fault_flags_are_input_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "fault", "r", "disk", "n1", "--kind", "slow")
    assert code == 2 and "fault disk.disk: a slow disk needs latency_ms > 0" in err
    code, _, err = run(capsys, "fault", "r", "disk", "n1", "--kind", "eio", "--ops", "fsync,chmod")
    assert code == 2 and "fault disk.disk.ops.1: input should be" in err
    code, _, err = run(capsys, "fault", "r", "disk", "n1", "--kind", "slow", "--latency", "soon")
    assert code == 2 and "fault disk: --latency: expected a duration" in err
    code, _, err = run(capsys, "fault", "r", "power-loss", "n1", "--window", "soon")
    assert code == 2 and "fault power-loss.power_loss.window: expected a duration" in err


def test_result_json_is_json(stored_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.runner import check_report

    check_report(stored_run)
    assert json.loads((stored_run / "result.json").read_text())["valid"] is True
