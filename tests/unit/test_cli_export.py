"""`harness export RUN --edn`: a stored history as Jepsen's EDN, one op map per line; bad input exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.model.clock import ManualClock
from harness.model.history import HistoryWriter


def _report(tmp_path: Path) -> Path:
    report = tmp_path / "galera-3-abcdef"
    report.mkdir()
    clock = ManualClock()
    with HistoryWriter(report / "history.jsonl", clock, concurrency=1) as history:
        first = history.invoke(0, "add", 1, node="n1")
        clock.advance(1_000)
        history.ok(first)
        history.info(history.invoke(0, "add", 2, node="n1"), error="timeout")
    return report


def test_export_writes_one_edn_map_per_op(tmp_path: Path) -> None:
    report = _report(tmp_path)
    assert main(["export", str(report), "--edn"]) == 0
    lines = (report / "history.edn").read_text().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("{:index 0, :type :invoke, :process 0, :f :add, :value 1")
    assert ":type :info" in lines[3] and ':error "timeout"' in lines[3]


def test_export_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(_report(tmp_path)), "--edn", "-o", "-"]) == 0
    assert capsys.readouterr().out.count("{:index ") == 4


def test_export_of_a_missing_run_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "nope"), "--edn"]) == 2
    err = capsys.readouterr().err
    assert "nope: no report there" in err and "Traceback" not in err


def test_export_of_a_corrupt_history_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _report(tmp_path)
    with (report / "history.jsonl").open("a") as fh:
        fh.write('{"index": 4, "process" 0}\n')
    assert main(["export", str(report), "--edn"]) == 2
    err = capsys.readouterr().err
    assert "history.jsonl:5: not JSON: Expecting ':' delimiter" in err and "Traceback" not in err
    assert not (report / "history.edn").exists()
