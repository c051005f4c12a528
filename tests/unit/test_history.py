"""History model: Op, History (columns, pairing), HistoryWriter, JSONL round trips and their errors, events,
samples; the EDN export."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import InputError
from harness.model.clock import ManualClock, RunClock
from harness.model.history import (
    Event,
    EventWriter,
    History,
    HistoryWriter,
    Op,
    Sample,
    SampleWriter,
    read_events,
    read_history,
    read_samples,
    write_events,
    write_history,
    write_samples,
)
from harness.model.history.jsonl import dumps as line_dumps
from harness.model.history.oplog import _op_line
from harness.report.edn import edn, to_edn, write_edn

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
)


def dumps(x: Any) -> str:
    return json.dumps(x, sort_keys=True)


# ------------------------------------------------------------------------------------------- simulation
@st.composite
def simulated(draw: st.DrawFn) -> list[tuple[str, int, str, Any]]:
    """A random schedule of worker actions: ("invoke", worker, f, value) or ("complete", worker, type,
    value)."""
    workers = draw(st.integers(1, 4))
    busy = [False] * workers
    steps = []
    for _ in range(draw(st.integers(0, 30))):
        w = draw(st.integers(0, workers - 1))
        if busy[w]:
            t = draw(st.sampled_from(["ok", "fail", "info"]))
            steps.append(("complete", w, t, draw(st.none() | st.integers(0, 9))))
            busy[w] = False
        else:
            steps.append(("invoke", w, draw(st.sampled_from(["add", "read"])), draw(st.integers(0, 99))))
            busy[w] = True
    return steps


def run_schedule(w: HistoryWriter, clock: ManualClock, steps: list[tuple[str, int, str, Any]]) -> list[Op]:
    proc = {i: i for i in range(8)}
    pending: dict[int, Op] = {}
    out: list[Op] = []
    for kind, wk, a, b in steps:
        clock.advance(1000)
        if kind == "invoke":
            proc[wk] = w.next_process(proc[wk])
            op = w.invoke(proc[wk], a, b, node=f"n{wk % 2}")
            pending[wk] = op
        else:
            inv = pending.pop(wk)
            op = w.complete(inv, a) if b is None else w.complete(inv, a, value=b)
        out.append(op)
    return out


def reference_pairs(ops: list[Op]) -> dict[int, int]:
    """completion row → invoke row, by a dict of the open invoke per process."""
    open_: dict[int, int] = {}
    pairs = {}
    for row, op in enumerate(ops):
        if op.type == "invoke":
            open_[op.process] = row
        elif op.process in open_:
            pairs[row] = open_.pop(op.process)
    return pairs


@SETTINGS
@given(steps=simulated())
def test_writer_pairing_and_round_trip(tmp_path: Path, steps: list[tuple[str, int, str, Any]]) -> None:
    clock = ManualClock()
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path, clock, concurrency=4, keep=True, background_flush=False) as w:
        ops = run_schedule(w, clock, steps)
        kept = w.history()
    h = read_history(path)
    assert [dumps(o.to_dict()) for o in h] == [dumps(o.to_dict()) for o in ops]
    assert [dumps(o.to_dict()) for o in kept] == [dumps(o.to_dict()) for o in ops]
    assert [o.index for o in ops] == list(range(len(ops)))
    assert h.validate() == []
    ref = reference_pairs(ops)
    expected_invoke_of = [ref.get(r, -1) for r in range(len(ops))]
    assert h.invoke_of.tolist() == expected_invoke_of
    expected_completion_of = [-1] * len(ops)
    for c, i in ref.items():
        expected_completion_of[i] = c
    assert h.completion_of.tolist() == expected_completion_of
    # a process never invokes again after an info completion
    retired: set[int] = set()
    for op in ops:
        if op.type == "invoke":
            assert op.process not in retired
        elif op.type == "info":
            retired.add(op.process)
    # completions default to the invoke's value and node
    for c, i in ref.items():
        assert ops[c].node == ops[i].node


@SETTINGS
@given(
    ops=st.lists(
        st.builds(
            dict,
            process=st.integers(0, 5),
            type=st.sampled_from(["invoke", "ok", "fail", "info"]),
            f=st.sampled_from(["add", "read", "weird f", "enqueue"]),
            value=json_values,
            time=st.integers(0, 10**12),
            node=st.none() | st.sampled_from(["n1", "n2"]),
            error=st.none() | st.text(max_size=5),
        ),
        max_size=12,
    )
)
def test_jsonl_round_trip_any_values(tmp_path: Path, ops: list[dict[str, Any]]) -> None:
    typed = [Op(index=i, **d) for i, d in enumerate(ops)]
    p = tmp_path / "h.jsonl"
    write_history(p, typed)
    h = read_history(p)
    assert len(h) == len(typed)
    assert [dumps(o.to_dict()) for o in h] == [dumps(o.to_dict()) for o in typed]
    h2 = History.from_ops(typed)
    assert [dumps(o.to_dict()) for o in h2] == [dumps(o.to_dict()) for o in typed]
    # column view agrees with the ops
    for row, op in enumerate(typed):
        if type(op.value) is int and abs(op.value) < 2**63:
            assert h.has_ival[row] and int(h.ival[row]) == op.value
        else:
            assert not h.has_ival[row]


def test_bool_and_big_ints_are_not_int_column() -> None:
    h = History.from_ops(
        [
            Op(0, 0, "invoke", "add", True),
            Op(1, 0, "ok", "add", 2**64),
            Op(2, 1, "invoke", "add", 5),
        ]
    )
    assert h.has_ival.tolist() == [False, False, True]
    assert h.value(0) is True and h.value(1) == 2**64 and h.value(2) == 5


def test_int_values_fall_back_to_invoke() -> None:
    h = History.from_ops(
        [
            Op(0, 0, "invoke", "add", 7),
            Op(1, 1, "invoke", "add", 8),
            Op(2, 1, "ok", "add", None),
            Op(3, 0, "info", "add", None),
            Op(4, 2, "invoke", "dequeue", None),
            Op(5, 2, "ok", "dequeue", {"id": 3}),
        ]
    )
    vals, present = h.int_values(np.array([2, 3, 5]))
    assert vals[:2].tolist() == [8, 7]
    assert present.tolist() == [True, True, False]


def test_select_keeps_object_values() -> None:
    h = History.from_ops(
        [
            Op(0, 0, "invoke", "read", None),
            Op(1, 0, "ok", "read", [1, 2]),
            Op(2, 1, "invoke", "add", 3),
            Op(3, 1, "ok", "add", 3),
            Op(4, 2, "invoke", "read", None),
            Op(5, 2, "ok", "read", [3]),
        ]
    )
    s = h.select(h.mask("read", "ok"))
    assert [o.value for o in s] == [[1, 2], [3]]
    assert [o.index for o in s] == [1, 5]
    assert h.rows("add").tolist() == [2, 3]
    assert h.mask(["add", "read"], ["invoke"]).tolist() == [True, False, True, False, True, False]


def test_pairing_skips_a_dangling_invoke() -> None:
    # process 0 invoked twice (the first never completed): only the second pairs with the completion
    h = History.from_ops(
        [
            Op(0, 0, "invoke", "add", 1),
            Op(1, 1, "invoke", "add", 2),
            Op(2, 0, "invoke", "add", 3),
            Op(3, 0, "ok", "add", 3),
            Op(4, 1, "fail", "add", 2),
            Op(5, 2, "ok", "add", 4),
        ]
    )
    assert h.invoke_of.tolist() == [-1, -1, -1, 2, 1, -1]
    assert h.completion_of.tolist() == [-1, 4, 3, -1, -1, -1]
    pairs = [(i.index, None if c is None else c.index) for i, c in h.pairs()]
    assert pairs == [(0, None), (1, 4), (2, 3)]


def test_validate_flags_problems() -> None:
    h = History.from_ops(
        [
            Op(0, 0, "invoke", "add", 1, time=10),
            Op(1, 0, "info", "add", 1, time=5),
            Op(2, 0, "invoke", "add", 2, time=20),
            Op(2, 3, "ok", "add", 9, time=30),
        ]
    )
    problems = " | ".join(h.validate())
    assert "index is not strictly increasing" in problems
    assert "time goes backwards" in problems
    assert "without an invoke" in problems
    assert "reused after an info" in problems


# ------------------------------------------------------------------------------------------ the writer
def test_writer_rejects_misuse(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "h.jsonl", ManualClock(), concurrency=2, background_flush=False) as w:
        a = w.invoke(0, "add", 1)
        with pytest.raises(ValueError, match="in flight"):
            w.invoke(0, "add", 2)
        w.info(a, "timeout")
        with pytest.raises(ValueError, match="retired"):
            w.invoke(0, "add", 3)
        with pytest.raises(ValueError, match="not in flight"):
            w.ok(a)
        with pytest.raises(ValueError, match="completion type"):
            w.complete(w.invoke(1, "add", 4), "invoke")  # type: ignore[arg-type]
        assert w.retired(0) and not w.retired(1)
        p = w.next_process(0)
        assert p == 2
        assert w.next_process(1) == 1
        w.invoke(p, "add", 5)
        assert w.new_process() == 3
        w.invoke(10, "add", 6)  # a manual id beyond the counter moves it
        assert w.new_process() == 11
        with pytest.raises(ValueError, match="keeps no ops"):
            w.history()
        with pytest.raises(TypeError):
            w.invoke(7, "add", object())
        b = w.invoke(7, "add", 8)  # the failed invoke left no trace: process 7 is free
        with pytest.raises(TypeError):
            w.ok(b, object())
        w.ok(b, 8)  # and b stayed in flight
    h = read_history(tmp_path / "h.jsonl")
    assert h.index.tolist() == list(range(len(h))) and h.validate() == []


def test_next_process_never_collides_with_reserved_workers(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "h.jsonl", ManualClock(), concurrency=4, background_flush=False) as w:
        procs = {0: 0, 1: 1, 2: 2, 3: 3}
        used = []
        for i in range(12):
            wk = i % 4
            procs[wk] = w.next_process(procs[wk])
            used.append(procs[wk])
            w.info(w.invoke(procs[wk], "add", None), "timeout")
        assert used[:4] == [0, 1, 2, 3]
        assert used[4:] == list(range(4, 12))


def test_writer_is_thread_safe(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    clock = RunClock()
    n_threads, per = 6, 150
    with HistoryWriter(path, clock) as w:

        def worker(t: int) -> None:
            p = t
            for i in range(per):
                p = w.next_process(p)
                op = w.invoke(p, "add", t * per + i, node=f"n{t % 3}")
                w.complete(op, ("ok", "fail", "info")[i % 3])

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    h = read_history(path)
    assert len(h) == 2 * n_threads * per
    assert h.index.tolist() == list(range(len(h)))
    assert (np.diff(h.time) >= 0).all()
    assert h.validate() == []
    assert (h.completion_of[h.type == 0] >= 0).all()
    assert sorted(h.ival[h.type == 0].tolist()) == list(range(n_threads * per))


def test_writer_flushes_without_close(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    w = HistoryWriter(path, ManualClock(), flush_interval_s=0.05, flush_lines=10**6)
    try:
        w.invoke(0, "add", 1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not path.read_text():
            time.sleep(0.02)
        assert path.read_text().count("\n") == 1
    finally:
        w.close()
    w2 = HistoryWriter(tmp_path / "h2.jsonl", ManualClock(), flush_lines=2, background_flush=False)
    w2.invoke(0, "add", 1)
    w2.invoke(1, "add", 2)
    assert (tmp_path / "h2.jsonl").read_text().count("\n") == 2
    w2.close()


GOOD_OP = json.dumps(Op(0, 0, "invoke", "add", 1).to_dict())


def test_torn_last_line_is_skipped_but_corruption_is_not(tmp_path: Path) -> None:
    """A last line without its newline that does not parse is a write the crash cut short: skipped. The same
    line anywhere else, or ending in a newline, is corruption: an InputError at FILE:LINE."""
    p = tmp_path / "h.jsonl"
    p.write_text(GOOD_OP + "\n" + '{"index": 1, "proc')
    assert len(read_history(p)) == 1
    p.write_text(GOOD_OP + "\n" + GOOD_OP.replace('"index": 0', '"index": 1'))  # complete but no newline
    assert len(read_history(p)) == 2
    p.write_text(GOOD_OP + "\n" + '{"index": 1, "proc\n')
    with pytest.raises(
        InputError, match=re.escape(f"{p}:2: not JSON: Invalid control character (column 19)")
    ):
        read_history(p)
    p.write_text('{"index": 1, "proc\n' + GOOD_OP + "\n")
    with pytest.raises(InputError, match=re.escape(f"{p}:1: not JSON: ")):
        read_history(p)


def test_a_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "history.jsonl"
    lines = [GOOD_OP.replace('"index": 0', f'"index": {i}') for i in range(5)]
    lines[3] = lines[3].replace(", ", " ", 1)  # {"index": 3 "process": ...
    p.write_text("\n\n".join(lines) + "\n")  # blank lines count: the bad one is line 7
    with pytest.raises(InputError) as exc:
        read_history(p)
    assert str(exc.value).startswith(f"{p}:7: not JSON: Expecting ',' delimiter (column ")
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"index": 0, "type": "invoke", "f": "add"}', "op: missing field 'process'"),
        ('{"process": 0, "type": "invoke", "f": "add"}', "op: missing field 'index'"),
        ('{"index": 0, "process": 0, "f": "add"}', "op: missing field 'type'"),
        ('{"index": 0, "process": 0, "type": "ok"}', "op: missing field 'f'"),
        ('{"index": 0, "process": "0", "type": "ok", "f": "add"}',
         "op: field 'process' must be an integer (int64), not str '0'"),
        ('{"index": 0.5, "process": 0, "type": "ok", "f": "add"}',
         "op: field 'index' must be an integer (int64), not float 0.5"),
        ('{"index": true, "process": 0, "type": "ok", "f": "add"}',
         "op: field 'index' must be an integer (int64), not bool True"),
        ('{"index": 9223372036854775808, "process": 0, "type": "ok", "f": "add"}',
         "op: field 'index' must be an integer (int64), not int 9223372036854775808"),
        ('{"index": 0, "process": 0, "type": "bogus", "f": "add"}',
         "op: field 'type' must be one of invoke, ok, fail, info, not 'bogus'"),
        ('{"index": 0, "process": 0, "type": ["ok"], "f": "add"}',
         "op: field 'type' must be one of invoke, ok, fail, info, not ['ok']"),
        ('{"index": 0, "process": 0, "type": "ok", "f": 3}', "op: field 'f' must be a string, not int 3"),
        ('{"index": 0, "process": 0, "type": "ok", "f": "add", "time": "5"}',
         "op: field 'time' must be an integer (int64), not str '5'"),
        ('{"index": 0, "process": 0, "type": "ok", "f": "add", "node": 1}',
         "op: field 'node' must be a string or null, not int 1"),
        ('{"index": 0, "process": 0, "type": "ok", "f": "add", "error": {}}',
         "op: field 'error' must be a string or null, not dict {}"),
        ("[1, 2]", "op: expected a JSON object, not list"),
        ('"just a string"', "op: expected a JSON object, not str"),
    ],
)  # fmt: skip
def test_a_malformed_op_names_the_field(tmp_path: Path, line: str, problem: str) -> None:
    p = tmp_path / "history.jsonl"
    p.write_text(GOOD_OP + "\n" + line + "\n")
    with pytest.raises(InputError) as exc:
        read_history(p)
    assert str(exc.value) == f"{p}:2: {problem}"


def test_unreadable_files_are_input_errors(tmp_path: Path) -> None:
    p = tmp_path / "history.jsonl"
    p.write_bytes(GOOD_OP.encode() + b"\n" + b'{"f": "\xff"}\n')
    with pytest.raises(InputError, match=re.escape(f"{p}:2: not UTF-8 text (byte 8)")):
        read_history(p)
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'nope.jsonl'}: cannot read: ")):
        read_history(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="cannot read"):
        read_events(tmp_path)  # a directory


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"name": "kill", "start": 1}', "event: missing field 'id'"),
        ('{"id": "k-1", "start": 1}', "event: missing field 'name'"),
        ('{"id": "k-1", "name": "kill"}', "event: missing field 'start'"),
        ('{"id": 1, "name": "kill", "start": 1}', "event: field 'id' must be a string, not int 1"),
        ('{"id": "k-1", "name": "kill", "start": "1"}',
         "event: field 'start' must be an integer (int64), not str '1'"),
        ('{"id": "k-1", "name": "kill", "start": 1, "end": 1.5}',
         "event: field 'end' must be an integer (int64) or null, not float 1.5"),
        ('{"id": "k-1", "name": "kill", "start": 1, "target": ["n1", 2]}',
         "event: field 'target' must be a string or a list of strings, not list ['n1', 2]"),
        ('{"id": "k-1", "name": "kill", "start": 1, "detail": []}',
         "event: field 'detail' must be an object or null, not list []"),
        ('{"id": "k-1", "name": "kill", "start": 5, "end": 4}', "event: end 4 before start 5"),
    ],
)  # fmt: skip
def test_a_malformed_event_names_the_field(tmp_path: Path, line: str, problem: str) -> None:
    p = tmp_path / "events.jsonl"
    good = json.dumps(Event("p-1", "partition", "iptables", ("n1",), {}, 0, 9).to_dict())
    p.write_text(good + "\n" + line + "\n")
    with pytest.raises(InputError) as exc:
        read_events(p)
    assert str(exc.value) == f"{p}:2: {problem}"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"node": "n1", "metric": "lag", "value": 1}', "sample: missing field 'time'"),
        ('{"time": 1, "metric": "lag", "value": 1}', "sample: missing field 'node'"),
        ('{"time": 1, "node": "n1", "value": 1}', "sample: missing field 'metric'"),
        ('{"time": 1, "node": "n1", "metric": "lag"}', "sample: missing field 'value'"),
        ('{"time": 1, "node": "n1", "metric": "lag", "value": null}',
         "sample: field 'value' must be a number or a string, not null"),
        ('{"time": 1, "node": "n1", "metric": "lag", "value": [1]}',
         "sample: field 'value' must be a number or a string, not list [1]"),
        ('{"time": 1.0, "node": "n1", "metric": "lag", "value": 1}',
         "sample: field 'time' must be an integer (int64), not float 1.0"),
    ],
)  # fmt: skip
def test_a_malformed_sample_names_the_field(tmp_path: Path, line: str, problem: str) -> None:
    p = tmp_path / "samples.jsonl"
    p.write_text(json.dumps(Sample(0, "n1", "lag", 0.5).to_dict()) + "\n" + line + "\n")
    with pytest.raises(InputError) as exc:
        read_samples(p)
    assert str(exc.value) == f"{p}:2: {problem}"


def test_from_dict_raises_value_errors_naming_the_field() -> None:
    """Outside a file the same checks raise RecordError, a ValueError (no file position to give)."""
    with pytest.raises(ValueError, match="missing field 'process'"):
        Op.from_dict({"index": 0, "type": "invoke", "f": "add"})
    with pytest.raises(ValueError, match="field 'f' must be a string"):
        History.from_ops([{"index": 0, "process": 0, "type": "invoke", "f": None}])
    assert Op.from_dict(Op(3, 1, "ok", "add", [1], 7, "n1", "e").to_dict()) == Op(
        3, 1, "ok", "add", [1], 7, "n1", "e"
    )


# ------------------------------------------------------------------------------------ events, samples
def test_event_writer_and_round_trip(tmp_path: Path) -> None:
    clock = ManualClock(100)
    p = tmp_path / "events.jsonl"
    with EventWriter(p, clock) as ew:
        a = ew.start("partition", "iptables", ["n1", "n2"], {"shape": "majority"})
        clock.advance(50)
        b = ew.start("kill", "signal", "n3")
        clock.advance(50)
        a2 = ew.end(a)
    evs = read_events(p)
    assert [e.id for e in evs] == [a.id, b.id]
    assert evs[0] == a2 and evs[0].end == 200 and evs[0].target == ("n1", "n2")
    assert evs[1].end is None and not evs[1].healed
    assert evs[0].active_at(150) and not evs[0].active_at(200)
    p2 = tmp_path / "e2.jsonl"
    write_events(p2, evs)
    assert read_events(p2) == evs
    with pytest.raises(ValueError):
        Event("x", "kill", "signal", "n1", {}, 10, 5)


def test_samples_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "samples.jsonl"
    clock = ManualClock()
    with SampleWriter(p, clock) as sw:
        sw.record("n1", "replication_lag_s", 0.25)
        clock.advance(10)
        sw.record("n2", "replication_lag_s", "NULL")
        sw.record("n2", "wsrep_ready", 1, time=99)
    got = read_samples(p)
    assert got == [
        Sample(0, "n1", "replication_lag_s", 0.25),
        Sample(10, "n2", "replication_lag_s", "NULL"),
        Sample(99, "n2", "wsrep_ready", 1.0),
    ]
    p2 = tmp_path / "s2.jsonl"
    write_samples(p2, got)
    assert read_samples(p2) == got


def test_clocks() -> None:
    c = RunClock()
    a = c.now()
    b = c.now()
    assert 0 <= a <= b
    assert c.from_wall_ns(c.to_wall_ns(12345)) == 12345
    assert abs(c.from_wall_ns(time.time_ns()) - c.now()) < 1_000_000_000
    assert c.lag_s(c.wall_start_ns, at_wall_ns=c.wall_start_ns + 1_500_000_000) == 1.5
    m = ManualClock(5)
    assert m.advance(10) == 15 and m.now() == 15
    with pytest.raises(ValueError):
        m.set(3)


# ------------------------------------------------------------------------------------------------- EDN
_TOKEN = re.compile(r'\s*(?:,\s*)*(\{|\}|\[|\]|#\{|"(?:[^"\\]|\\.)*"|[^\s,{}\[\]"]+)')


def parse_edn(s: str) -> Any:
    """A tiny EDN reader for the subset we emit (keywords come back as ("kw", name))."""
    tokens = _TOKEN.findall(s)
    pos = 0

    def read() -> Any:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok in ("{", "[", "#{"):
            close = {"{": "}", "[": "]", "#{": "}"}[tok]
            items = []
            while tokens[pos] != close:
                items.append(read())
            pos += 1
            if tok == "{":
                assert len(items) % 2 == 0, "odd map"
                return {_hashable(items[i]): items[i + 1] for i in range(0, len(items), 2)}
            return items
        if tok.startswith('"'):
            return json.loads(tok)  # the escapes edn() writes are JSON's
        if tok.startswith(":"):
            return ("kw", tok[1:])
        if tok == "nil":
            return None
        if tok in ("true", "false"):
            return tok == "true"
        if re.fullmatch(r"-?\d+", tok):
            return int(tok)
        return float(tok)

    value = read()
    assert pos == len(tokens), f"trailing tokens {tokens[pos:]}"
    return value


def _hashable(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x


def from_json_expected(v: Any) -> Any:
    """What parse_edn should give for a JSON value."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if re.fullmatch(r"-?(0|[1-9][0-9]*)", k):
                key: Any = int(k)
            elif re.fullmatch(r"[A-Za-z*!_?<>=+\-][A-Za-z0-9*!_?<>=+\-.]*", k):
                key = ("kw", k)
            else:
                key = k
            out[key] = from_json_expected(x)
        return out
    if isinstance(v, list):
        return [from_json_expected(x) for x in v]
    return v


@SETTINGS
@given(value=json_values)
def test_edn_values_parse_back(value: Any) -> None:
    assert parse_edn(edn(value)) == from_json_expected(value)


def test_edn_history_shape(tmp_path: Path) -> None:
    ops = [
        Op(0, 0, "invoke", "add", 1, 123, "n1"),
        Op(1, 0, "ok", "add", 1, 456, "n1"),
        Op(2, 1, "invoke", "transfer", {"from": 0, "to": 1, "amount": 5}, 500),
        Op(3, 1, "info", "transfer", {"from": 0, "to": 1, "amount": 5}, 600, None, 'time"out\n'),
        Op(4, 2, "invoke", "read", None, 700),
        Op(5, 2, "ok", "read", {"0": 10, "1": 20}, 800),
        Op(6, 3, "ok", "read", [1, 2, [3]], 900),
    ]
    text = to_edn(History.from_ops(ops))
    lines = text.splitlines()
    assert lines[0] == '{:index 0, :type :invoke, :process 0, :f :add, :value 1, :time 123, :node "n1"}'
    transfer = "{:from 0, :to 1, :amount 5}"
    assert lines[2] == f"{{:index 2, :type :invoke, :process 1, :f :transfer, :value {transfer}, :time 500}}"
    assert lines[3].endswith(':error "time\\"out\\n"}')
    assert lines[4] == "{:index 4, :type :invoke, :process 2, :f :read, :value nil, :time 700}"
    assert ":value {0 10, 1 20}" in lines[5]
    assert ":value [1 2 [3]]" in lines[6]
    for line, op in zip(lines, ops, strict=True):
        m = parse_edn(line)
        assert m[("kw", "index")] == op.index
        assert m[("kw", "type")] == ("kw", op.type)
        assert m[("kw", "f")] == ("kw", op.f)
        assert m[("kw", "time")] == op.time
        assert m[("kw", "process")] == op.process
    p = tmp_path / "h.edn"
    write_edn(History.from_ops(ops), p)
    assert p.read_text() == text
    assert edn(float("nan")) == "##NaN" and edn(float("-inf")) == "##-Inf"
    assert edn("\x01") == '"\\u0001"'


def test_fast_op_line_matches_the_general_encoder() -> None:
    """``_op_line`` has a fast path for int/None values; it must write exactly what the encoder would."""
    ops = [
        Op(0, 0, "invoke", "add", 12345, 10, "n1", None),
        Op(1, 0, "ok", "read", None, 11, None, None),
        Op(2, 3, "info", "add", 7, 12, "n2", "timeout"),
        Op(3, 3, "ok", "read", [1, 2], 13, 'n"2', None),
        Op(4, 1, "ok", "add", True, 14, "n1", None),
        Op(5, 1, "ok", "add", -3, 15, "ñ", None),
    ]
    for op in ops:
        assert _op_line(op) == line_dumps(op.to_dict()) + "\n", op


def test_the_model_does_no_io_beyond_its_files() -> None:
    """harness.model (histories included) reads and writes its own files only: no drivers, no processes, no
    import of the layers that do I/O."""
    import ast
    import subprocess
    import sys

    import harness

    forbidden = ("docker", "pymysql", "pika", "subprocess", "socket", "harness.runtime", "harness.systems")
    forbidden += ("harness.checkers", "harness.runner", "harness.lifecycle")
    root = Path(harness.__file__).parent
    for path in sorted((root / "model").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = [n for n in names if n in forbidden or n.startswith(tuple(f + "." for f in forbidden))]
            assert not bad, f"{path.relative_to(root)} imports {bad}"
    code = (
        "import sys, harness.model.history, harness.report.edn\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('docker', 'pymysql', 'pika'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == ""
