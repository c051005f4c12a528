"""The counter checker against simulated concurrent counters with injected stale reads, phantom reads and
lost updates.

The simulation applies every op at its completion (an ``info`` add either at its completion or never), so
a clean history is linearizable. Beside the true state it tracks, per key, what clients know: the
acknowledged adds (completed ``ok``) and the adds that may have happened (invoked and not destined to
``fail``). An injected value lies strictly outside those, so the checker's figures are known exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checkers import CHECKERS, CheckContext, check_counter
from harness.model.history import History, Op


@dataclass
class Expect:
    reads: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, dict[str, int]] = field(default_factory=dict)  # key -> stale/phantom -> count
    adds: dict[str, dict[str, int]] = field(default_factory=dict)  # key -> ok/fail/info -> count
    final_values: dict[str, list[int]] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    bad: list[tuple[int, str, str, bool]] = field(default_factory=list)  # (index, key, kind, final)
    read_ops: int = 0
    final_reads: int = 0


@dataclass
class Case:
    history: History
    initial: int
    keys: list[str]
    acked: dict[str, int]  # final: initial + every ok delta
    possible: dict[str, int]  # final: initial + every ok and info delta
    expect: Expect


@dataclass
class _Pending:
    f: str
    invoke_row: int
    value: Any
    outcome: str
    happens: bool = False
    lower: dict[str, int] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)


class Sim:
    """A concurrent counter run, recorded as ops, with the ground truth of every read."""

    def __init__(self, draw: st.DrawFn, keys: list[str], initial: int, clean: bool, concurrency: int) -> None:
        self.draw, self.keys, self.clean = draw, keys, clean
        self.true = dict.fromkeys(keys, initial)
        self.acked = dict.fromkeys(keys, initial)
        self.possible = dict.fromkeys(keys, initial)
        self.ops: list[Op] = []
        self.pending: dict[int, _Pending] = {}
        self.next_process = 0
        self.last_add_row = -1
        self.reads: list[tuple[int, int, dict[str, int], dict[str, int]]] = []  # (inv row, row, lower, value)
        self.expect = Expect()
        self.live = [self.fresh() for _ in range(concurrency)]  # the processes that may invoke

    def emit(self, process: int, type_: str, f: str, value: Any, node: str | None = None) -> int:
        row = len(self.ops)
        err = "boom" if type_ in ("fail", "info") else None
        self.ops.append(Op(row, process, type_, f, value, 1000 * (row + 1), node, err))  # type: ignore[arg-type]
        return row

    def invoke(self, process: int) -> None:
        d = self.draw
        if d(st.booleans()):
            key, delta = d(st.sampled_from(self.keys)), d(st.integers(1, 3))
            outcome = d(st.sampled_from(["ok", "ok", "fail", "info"]))
            value = {"key": int(key), "delta": delta}
            row = self.emit(process, "invoke", "add", value)
            self.last_add_row = row
            if outcome != "fail":
                self.possible[key] += delta
            self.expect.adds.setdefault(key, {"ok": 0, "fail": 0, "info": 0})[outcome] += 1
            self.pending[process] = _Pending("add", row, value, outcome, happens=d(st.booleans()))
        else:
            keys = d(st.lists(st.sampled_from(self.keys), min_size=1, unique=True))
            row = self.emit(process, "invoke", "read", None)
            outcome = d(st.sampled_from(["ok", "ok", "ok", "fail", "info"]))
            self.pending[process] = _Pending("read", row, None, outcome, lower=dict(self.acked), keys=keys)

    def complete(self, process: int) -> None:
        p = self.pending.pop(process)
        if p.f == "add":
            key, delta = str(p.value["key"]), p.value["delta"]
            if p.outcome == "ok" or (p.outcome == "info" and p.happens):
                self.true[key] += delta
            if p.outcome == "ok":
                self.acked[key] += delta
            row = self.emit(process, p.outcome, "add", p.value)
            if p.outcome != "info":
                self.last_add_row = row
        elif p.outcome != "ok":
            self.emit(process, p.outcome, "read", None)
        else:
            drawn = {k: self.read_value(k, p.lower[k]) for k in sorted(p.keys, key=int)}
            value = {k: v for k, (v, _) in drawn.items()}
            row = self.emit(process, "ok", "read", value)
            self.reads.append((p.invoke_row, row, p.lower, value))
            self.expect.bad += [(row, k, kind, False) for k, (_, kind) in drawn.items() if kind]

    def read_value(self, key: str, lower: int) -> tuple[int, str | None]:
        """The true value, or (sometimes, unless clean) a stale or phantom one."""
        kind = None if self.clean else self.draw(st.sampled_from([None, None, None, "stale", "phantom"]))
        if kind == "stale":
            return lower - self.draw(st.integers(1, 3)), kind
        if kind == "phantom":
            return self.possible[key] + self.draw(st.integers(1, 3)), kind
        return self.true[key], None

    def step(self) -> None:
        idle = [p for p in self.live if p not in self.pending]
        if idle and (not self.pending or self.draw(st.booleans())):
            self.invoke(self.draw(st.sampled_from(idle)))
            return
        process = self.draw(st.sampled_from(sorted(self.pending)))
        info = self.pending[process].outcome == "info"
        self.complete(process)
        if info:  # the process is retired; a fresh one takes its place
            self.live[self.live.index(process)] = self.fresh()

    def fresh(self) -> int:
        self.next_process += 1
        return self.next_process - 1

    def final_read(self, node: str) -> None:
        process = self.fresh()
        inv = self.emit(process, "invoke", "read", None, node)
        value, kinds = {}, {}
        for k in self.keys:
            kind = None if self.clean else self.draw(st.sampled_from([None, None, "stale", "phantom"]))
            value[k], kinds[k] = self.read_value_final(k, kind), kind
        row = self.emit(process, "ok", "read", value, node)
        self.reads.append((inv, row, dict(self.acked), value))
        self.expect.bad += [(row, k, kind, False) for k, kind in kinds.items() if kind]

    def read_value_final(self, key: str, kind: str | None) -> int:
        if kind == "stale":  # a lost update: acknowledged adds missing after heal
            return self.acked[key] - self.draw(st.integers(1, 3))
        if kind == "phantom":
            return self.possible[key] + self.draw(st.integers(1, 3))
        return self.true[key]


@st.composite
def counter_cases(draw: st.DrawFn, clean: bool = False) -> Case:
    keys = [str(i) for i in range(draw(st.integers(1, 3)))]
    initial = draw(st.sampled_from([0, 0, 7]))
    sim = Sim(draw, keys, initial, clean, concurrency=draw(st.integers(1, 4)))
    for _ in range(draw(st.integers(0, 30))):
        sim.step()
    while sim.pending:  # the clients stop: everything in flight completes
        sim.complete(draw(st.sampled_from(sorted(sim.pending))))
    for n in range(draw(st.integers(1 if clean else 0, 3))):
        sim.final_read(f"n{n + 1}")
    return Case(History.from_ops(sim.ops), initial, keys, sim.acked, sim.possible, expected(sim))


def expected(sim: Sim) -> Expect:
    """Per-key tallies of the recorded reads; a read is final when invoked after every add was invoked and
    every add that did not end ``info`` completed."""
    e = sim.expect
    bad_rows = {(row, k): kind for row, k, kind, _ in e.bad}
    e.bad = []
    for inv, row, lower, value in sim.reads:
        final = inv > sim.last_add_row
        e.read_ops += 1
        e.final_reads += final
        for k, v in value.items():
            e.reads[k] = e.reads.get(k, 0) + 1
            kind = bad_rows.get((row, k))
            if kind:
                e.kinds.setdefault(k, {"stale": 0, "phantom": 0})[kind] += 1
                e.bad.append((row, k, kind, final))
            if final:
                e.final_values.setdefault(k, []).append(v)
                e.lost[k] = max(e.lost.get(k, 0), lower[k] - v)
    return e


def kinds_total(e: Expect, kind: str) -> int:
    return sum(c[kind] for c in e.kinds.values())


def check(case: Case) -> Any:
    return check_counter(case.history, CheckContext(options={"counter": {"initial": case.initial}}))


@settings(max_examples=1000, deadline=None)
@given(case=counter_cases())
def test_counter_checker_finds_exactly_the_injected_anomalies(case: Case) -> None:
    assert case.history.validate() == []
    r = check(case)
    f, e = r.figures, case.expect
    assert (f["read_ops"], f["final_reads"], f["reads"]) == (e.read_ops, e.final_reads, sum(e.reads.values()))
    assert f["stale_reads"] == kinds_total(e, "stale")
    assert f["phantom_reads"] == kinds_total(e, "phantom")
    assert f["bad_reads"] == len(e.bad) and f["malformed_reads"] == 0
    assert f["lost_updates"] == sum(e.lost.values())
    assert [(b["index"], b["key"], b["kind"], b["final"]) for b in f["first_bad_reads"]] == e.bad[:5]
    for b in f["first_bad_reads"]:
        assert not b["lower"] <= b["value"] <= b["upper"]
    for k, counts in e.adds.items():
        pk = f["per_key"][k]
        assert (pk["adds_ok"], pk["adds_failed"], pk["adds_indeterminate"]) == (
            counts["ok"],
            counts["fail"],
            counts["info"],
        )
    for k, pk in f["per_key"].items():
        assert pk["reads"] == e.reads.get(k, 0)
        assert pk["bad_reads"] == sum(e.kinds.get(k, {}).values())
        assert pk["lost_updates"] == e.lost.get(k, 0)
        assert pk["bounds"] == [case.acked.get(k, case.initial), case.possible.get(k, case.initial)]
        finals = e.final_values.get(k, [])
        assert pk["final_value"] == (min(finals) if finals else None)
        assert pk["final_values"] == sorted(set(finals))
    added = {k for k, c in e.adds.items() if any(c.values())}
    if e.bad or any(e.lost.values()):
        assert r.valid is False
    elif e.read_ops == 0:
        assert r.valid == "unknown" and r.notes == ("no ok read",)
    elif added - set(e.final_values):
        assert r.valid == "unknown" and "no final read" in r.notes[0]
    else:
        assert r.valid is True
    assert json.loads(json.dumps(r.to_dict())) == r.to_dict()
    assert check(case).to_dict() == r.to_dict()


@settings(max_examples=1000, deadline=None)
@given(case=counter_cases(clean=True))
def test_clean_counter_histories_are_valid_with_zero_anomalies(case: Case) -> None:
    r = check(case)
    f = r.figures
    assert r.valid is True, (r.notes, f)
    assert f["bad_reads"] == f["stale_reads"] == f["phantom_reads"] == f["lost_updates"] == 0
    assert f["first_bad_reads"] == [] and f["final_reads"] >= 1
    for k in case.keys:
        pk = f["per_key"][k]
        assert pk["bounds"][0] <= pk["final_value"] <= pk["bounds"][1]


def _ops(*rows: tuple[int, str, str, Any]) -> History:
    return History.from_ops(Op(i, p, t, f, v, 10 * i) for i, (p, t, f, v) in enumerate(rows))  # type: ignore[arg-type]


def test_negative_deltas_swap_the_bounds() -> None:
    sub = {"key": 0, "delta": -2}
    h = _ops(
        (0, "invoke", "add", sub),
        (1, "invoke", "read", None),
        (1, "ok", "read", {"0": -2}),  # the decrement may already be in effect...
        (0, "ok", "add", sub),
        (2, "invoke", "read", None),
        (2, "ok", "read", {"0": 0}),  # ...but once acknowledged it must be: 0 is above the upper bound
    )
    r = check_counter(h, CheckContext())
    assert r.valid is False
    assert (r.figures["stale_reads"], r.figures["phantom_reads"]) == (0, 1)
    assert r.figures["first_bad_reads"][0] == {
        "index": 5, "node": None, "key": "0", "value": 0, "lower": -2, "upper": -2, "kind": "phantom",
        "final": True,
    }  # fmt: skip
    assert r.figures["per_key"]["0"]["bounds"] == [-2, -2]


def test_nothing_to_judge_is_unknown_and_malformed_values_are_reported() -> None:
    add = {"key": 0, "delta": 1}
    no_reads = _ops((0, "invoke", "add", add), (0, "ok", "add", add))
    assert check_counter(no_reads, CheckContext()).valid == "unknown"
    assert check_counter(History.empty(), CheckContext()).valid == "unknown"
    bad_add = _ops((0, "invoke", "add", {"key": 0}), (0, "ok", "add", None), (1, "invoke", "read", None),
                   (1, "ok", "read", {"0": 0}))  # fmt: skip
    r = check_counter(bad_add, CheckContext())
    assert (r.valid, r.figures["malformed_adds"]) == ("unknown", 1)
    bad_read = _ops((1, "invoke", "read", None), (1, "ok", "read", {"0": None}), (2, "invoke", "read", None),
                    (2, "ok", "read", [3]))  # fmt: skip
    r = check_counter(bad_read, CheckContext())
    assert (r.valid, r.figures["malformed_reads"], r.figures["bad_reads"]) == (False, 2, 2)


@pytest.mark.parametrize("name", ["counter"])
def test_counter_is_a_registered_checker(name: str) -> None:
    assert CHECKERS[name] is check_counter
