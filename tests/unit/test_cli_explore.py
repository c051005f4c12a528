"""``harness explore`` end to end on the fake runtime: one reused cluster for every generated schedule, the
seed printed and stored, a minimal scenario written (and valid) when a safety figure breaks, nothing left.
The fake system makes no claim about any real one; what explore finds and how it shrinks is
tests/unit/test_explore.py's."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cli
from harness.runtime.fake import FakeRuntime
from tests.support import fake_system

pytestmark = pytest.mark.usefixtures("fake_system")

TOPOLOGY = "system: fake\nname: fake-3\nnodes: 3\ntimeouts: {startup: 5, heal: 5}\n"


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    rt = FakeRuntime()
    monkeypatch.setattr(cli, "_runtime", lambda: rt)
    return rt


def explore(capsys: pytest.CaptureFixture[str], tmp_path: Path, *extra: str) -> tuple[int, str]:
    topology = tmp_path / "fake-3.yaml"
    topology.write_text(TOPOLOGY)
    argv = ["explore", str(topology), "--workload", "sql-set", "--clients", "2", "--rate", "50",
            "--budget", "20s", "--scenario-budget", "5s", "--seed", "11", "--reports", str(tmp_path / "reports"),
            *extra]  # fmt: skip
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out


def test_nothing_breaks_within_the_examples(capsys: pytest.CaptureFixture[str], runtime: FakeRuntime,
                                            tmp_path: Path) -> None:  # fmt: skip
    code, out = explore(capsys, tmp_path, "--max-examples", "2")
    assert code == 0, out
    assert "seed 11" in out and "no guarantee broke" in out
    (folder,) = (tmp_path / "reports").iterdir()
    assert (folder / "seed").read_text().strip() == "11"
    assert not (folder / "minimal-scenario.yaml").exists()
    assert len(runtime.verbs("create_network")) == 1  # one cluster for every schedule
    assert runtime.containers() == [] and runtime.networks() == []


def test_a_lost_write_is_shrunk_to_a_scenario_file_that_validates(
    capsys: pytest.CaptureFixture[str], runtime: FakeRuntime, tmp_path: Path
) -> None:
    fake_system.LOST.add(1)  # every run's final read misses id 1: a safety figure (lost) breaks
    code, out = explore(capsys, tmp_path, "--shrink-examples", "3", "--max-examples", "3")
    assert code == 1, out
    assert "a guarantee broke" in out and "lost" in out
    (folder,) = (tmp_path / "reports").iterdir()
    minimal = folder / "minimal-scenario.yaml"
    assert minimal.is_file() and (folder / "explore.json").is_file()
    assert cli.main(["validate", str(tmp_path / "fake-3.yaml"), str(minimal)]) == 0
    assert f"replay: harness run {tmp_path / 'fake-3.yaml'} {minimal}" in out.replace("\n", "")
    assert runtime.containers() == [] and runtime.networks() == []


def test_bad_flags_are_input_errors(capsys: pytest.CaptureFixture[str], runtime: FakeRuntime,
                                    tmp_path: Path) -> None:  # fmt: skip
    topology = tmp_path / "fake-3.yaml"
    topology.write_text(TOPOLOGY)
    code = cli.main(
        ["explore", str(topology), "--workload", "nope", "--budget", "soon", "--scenario-budget", "2s"]
    )
    _, err = capsys.readouterr()
    assert code == 2
    assert (
        "unknown workload 'nope'" in err
        and "--budget" in err
        and "--scenario-budget: expected at least" in err
    )
    assert runtime.calls == []
