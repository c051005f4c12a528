"""`load_stored_run`: a stored run that is corrupt or incomplete is an error naming the file (and line), never
a verdict read from half the data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError, IncompleteRunError, InputError
from harness.model.clock import ManualClock
from harness.model.history import EventWriter, HistoryWriter, SampleWriter
from harness.stored_run import OPTIONAL_FILES, REQUIRED_FILES, StoredRun, load_stored_run

TOPOLOGY = {"name": "galera-3", "system": "galera", "nodes": ["n1", "n2", "n3"]}
SCENARIO = {"name": "partition-majority", "systems": ["galera"], "workload": {"galera": {"type": "set"}}}
CHECKSUMS = {"n1": {"t": {"rows": 2, "checksum": "abc"}}}


def make_run(directory: Path, *, samples: bool = False, checksums: bool = False) -> Path:
    """A complete run directory as the runner writes it: 3 ops in history, one healed fault."""
    directory.mkdir(parents=True, exist_ok=True)
    clock = ManualClock()
    (directory / "topology.json").write_text(json.dumps(TOPOLOGY, indent=2))
    (directory / "scenario.json").write_text(json.dumps(SCENARIO, indent=2))
    with HistoryWriter(directory / "history.jsonl", clock, concurrency=2, background_flush=False) as h:
        first = h.invoke(0, "add", 1, node="n1")
        clock.advance(1_000)
        h.ok(first)
        h.invoke(1, "add", 2, node="n2")
    with EventWriter(directory / "events.jsonl", clock) as ev:
        fault = ev.start("partition", "iptables", ["n1"], {"shape": "isolate"})
        clock.advance(5_000)
        ev.end(fault)
    if samples:
        with SampleWriter(directory / "samples.jsonl", clock, background=False) as sw:
            sw.record("n2", "replication_lag_s", 0.5)
            sw.record("n3", "replication_lag_s", "unreachable")
    if checksums:
        (directory / "checksums.json").write_text(json.dumps(CHECKSUMS))
    return directory


def test_a_complete_run_loads(tmp_path: Path) -> None:
    run = load_stored_run(make_run(tmp_path / "run"))
    assert isinstance(run, StoredRun)
    assert run.directory == tmp_path / "run"
    assert run.topology_doc == TOPOLOGY and run.scenario_doc == SCENARIO
    assert [(op.index, op.type, op.value) for op in run.history] == [
        (0, "invoke", 1),
        (1, "ok", 1),
        (2, "invoke", 2),
    ]
    assert len(run.events) == 1 and run.events[0].name == "partition" and run.events[0].end == 6_000
    assert run.events[0].target == ("n1",)
    # optional files absent: no samples, no checksums, and that is fine
    assert run.samples == () and run.checksums is None
    with pytest.raises(AttributeError):
        run.history = run.history  # type: ignore[misc]  # frozen


def test_optional_files_are_read_when_present(tmp_path: Path) -> None:
    run = load_stored_run(make_run(tmp_path / "run", samples=True, checksums=True))
    assert [(s.node, s.value) for s in run.samples] == [("n2", 0.5), ("n3", "unreachable")]
    assert isinstance(run.samples, tuple) and isinstance(run.events, tuple)
    assert run.checksums == CHECKSUMS


def test_a_run_without_faults_has_an_empty_events_file(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")
    (d / "events.jsonl").write_text("")
    assert load_stored_run(d).events == ()


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_each_missing_required_file_is_an_incomplete_run(tmp_path: Path, name: str) -> None:
    d = make_run(tmp_path / "run", samples=True, checksums=True)
    (d / name).unlink()
    with pytest.raises(IncompleteRunError) as exc:
        load_stored_run(d)
    message = str(exc.value)
    assert message.startswith(f"{d}: incomplete run: missing {name} (")
    assert "unknown" in message
    assert isinstance(exc.value, HarnessError) and not isinstance(exc.value, InputError)  # exit 3, not 2


def test_every_missing_file_is_named(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")
    (d / "events.jsonl").unlink()
    (d / "topology.json").unlink()
    with pytest.raises(IncompleteRunError, match=r"missing events\.jsonl, topology\.json "):
        load_stored_run(d)


@pytest.mark.parametrize("name", OPTIONAL_FILES)
def test_optional_files_may_be_absent(tmp_path: Path, name: str) -> None:
    d = make_run(tmp_path / "run", samples=True, checksums=True)
    (d / name).unlink()
    run = load_stored_run(d)
    assert (run.samples == ()) == (name == "samples.jsonl")
    assert (run.checksums is None) == (name == "checksums.json")


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope: not a run directory \(no such directory\)"):
        load_stored_run(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"file: not a run directory \(not a directory\)"):
        load_stored_run(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: not a run directory \(expected history.jsonl, "):
        load_stored_run(tmp_path / "empty")


def test_a_malformed_history_line_names_file_and_line(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")
    lines = (d / "history.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace(",", " ", 1)
    (d / "history.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as exc:
        load_stored_run(d)
    assert str(exc.value).startswith(f"{d / 'history.jsonl'}:2: not JSON: Expecting ',' delimiter (column ")


def test_a_truncated_last_line_is_a_cut_short_write_not_corruption(tmp_path: Path) -> None:
    """The writer died mid-line: the run loads without that op (it reads as never completed, i.e.
    indeterminate, not as lost). The same line with its newline is corruption."""
    d = make_run(tmp_path / "run")
    text = (d / "history.jsonl").read_text()
    cut = text[: text.rindex("\n", 0, len(text) - 1) + 1] + text.splitlines()[-1][:25]
    (d / "history.jsonl").write_text(cut)
    assert [op.index for op in load_stored_run(d).history] == [0, 1]
    (d / "history.jsonl").write_text(cut + "\n")
    with pytest.raises(InputError, match=r"history\.jsonl:3: not JSON: "):
        load_stored_run(d)


def test_a_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")
    op = json.loads((d / "history.jsonl").read_text().splitlines()[0])
    del op["process"]
    with (d / "history.jsonl").open("a") as fh:
        fh.write(json.dumps(op) + "\n")
    with pytest.raises(InputError) as exc:
        load_stored_run(d)
    assert str(exc.value) == f"{d / 'history.jsonl'}:4: op: missing field 'process'"
    (d / "history.jsonl").write_text(json.dumps({**op, "process": "0"}) + "\n")
    with pytest.raises(InputError) as exc:
        load_stored_run(d)
    assert (
        str(exc.value)
        == f"{d / 'history.jsonl'}:1: op: field 'process' must be an integer (int64), not str '0'"
    )


def test_corrupt_events_and_samples_name_file_and_line(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run", samples=True)
    with (d / "events.jsonl").open("a") as fh:
        fh.write('{"id": "kill-9", "name": "kill", "mechanism": "signal"}\n')
    with pytest.raises(InputError) as exc:
        load_stored_run(d)
    assert str(exc.value) == f"{d / 'events.jsonl'}:3: event: missing field 'start'"
    make_run(d, samples=True)
    with (d / "samples.jsonl").open("a") as fh:
        fh.write('{"time": 1, "node": "n1", "metric": "lag", "value": true}\n')
    with pytest.raises(InputError) as exc:
        load_stored_run(d)
    assert (
        str(exc.value)
        == f"{d / 'samples.jsonl'}:3: sample: field 'value' must be a number or a string, not bool True"
    )


@pytest.mark.parametrize("name", ["scenario.json", "topology.json", "checksums.json"])
def test_corrupt_json_documents_name_file_and_line(tmp_path: Path, name: str) -> None:
    d = make_run(tmp_path / "run", checksums=True)
    (d / name).write_text('{\n  "name": "x",\n  "system" "galera"\n}\n')
    with pytest.raises(InputError) as exc:
        load_stored_run(d)
    assert str(exc.value) == f"{d / name}:3: not JSON: Expecting ':' delimiter (column 12)"
    (d / name).write_text('["not", "an", "object"]')
    with pytest.raises(InputError, match=rf"{name}: expected a JSON object, not list"):
        load_stored_run(d)
    (d / name).write_bytes(b'{\n"name": "\xff"}')
    with pytest.raises(InputError, match=rf"{name}:2: not UTF-8 text"):
        load_stored_run(d)


def test_loading_reads_files_only() -> None:
    """The loader is for `harness check` without a cluster: it must not pull in the runner, systems,
    runtime or checkers (nor their drivers)."""
    code = (
        "import sys, harness.stored_run\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('harness.runner', 'harness.systems', "
        "'harness.runtime', 'harness.checkers', 'docker', 'pymysql', 'pika')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == ""


def test_a_corrupt_line_of_a_big_history_with_a_cache_beside_it_names_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.model.history import oplog

    monkeypatch.setattr(oplog, "CACHE_MIN_BYTES", 0)
    d = make_run(tmp_path / "run")
    with HistoryWriter(d / "history.jsonl", ManualClock(), concurrency=1, background_flush=False) as h:
        for i in range(500):  # big enough for the vectorised reader
            h.ok(h.invoke(0, "add", i, node="n1"))
    oplog._LAST.clear()
    assert len(load_stored_run(d).history) == 1000
    assert oplog.cache_path(d / "history.jsonl").is_file()  # the first read left the cache
    lines = (d / "history.jsonl").read_text().splitlines()
    lines[700] = lines[700].replace(",", " ", 1)
    (d / "history.jsonl").write_text("\n".join(lines) + "\n")
    oplog._LAST.clear()
    with pytest.raises(InputError) as exc:
        load_stored_run(d)
    assert str(exc.value).startswith(f"{d / 'history.jsonl'}:701: not JSON: Expecting ',' delimiter (column ")
