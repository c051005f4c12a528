"""Properties of the elle checker: every serial execution of random list-append txns is valid under every
model, and each injected anomaly is found and named right."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checkers.elle import MODELS
from harness.model.history import History
from tests.unit.elle_histories import A, R, check, invoked, types

Mop = list[Any]


@dataclass
class Store:
    """A serial list-append store that records a history: each txn runs alone, invoke to completion."""

    lists: dict[int, list[int]] = field(default_factory=dict)
    ops: list[dict[str, Any]] = field(default_factory=list)
    values: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    processes: itertools.count[int] = field(default_factory=itertools.count)

    def apply(self, plan: list[tuple[bool, int]]) -> list[Mop]:
        done: list[Mop] = []
        for is_append, k in plan:
            if is_append:
                v = next(self.values)
                self.lists.setdefault(k, []).append(v)
                done.append(A(k, v))
            else:
                done.append(R(k, list(self.lists.get(k, []))))
        return done

    def record(self, p: int, type_: str, value: list[Mop]) -> None:
        n = len(self.ops)
        self.ops.append({"index": n, "process": p, "type": type_, "f": "txn", "value": value, "time": n})

    def txn(self, plan: list[tuple[bool, int]], outcome: str = "ok", applied: bool = True) -> list[Mop]:
        """Run ``plan`` as one txn; ``fail`` is never applied, ``info`` as ``applied`` says."""
        p = next(self.processes)
        if outcome == "fail" or (outcome == "info" and not applied):
            saved = {k: list(v) for k, v in self.lists.items()}
            done = self.apply(plan)
            self.lists = saved
        else:
            done = self.apply(plan)
        self.record(p, "invoke", invoked(done))
        self.record(p, outcome, done)
        return done

    def concurrent(self, *txns: list[Mop]) -> None:
        """Txns whose micro-ops are given as they completed, invoked together then completed in order."""
        ps = [next(self.processes) for _ in txns]
        for p, mops in zip(ps, txns, strict=True):
            self.record(p, "invoke", invoked(mops))
        for p, mops in zip(ps, txns, strict=True):
            self.record(p, "ok", mops)

    def history(self) -> History:
        return History.from_ops(self.ops)


plans = st.lists(st.tuples(st.booleans(), st.integers(0, 4)), min_size=1, max_size=4)
outcomes = st.sampled_from(["ok"] * 8 + ["fail", "info"])
txn_lists = st.lists(st.tuples(plans, outcomes, st.booleans()), min_size=1, max_size=30)


def run(txns: list[tuple[list[tuple[bool, int]], str, bool]]) -> Store:
    store = Store()
    store.txn([(False, k) for k in range(5)])  # at least one ok txn
    for plan, outcome, applied in txns:
        store.txn(plan, outcome, applied)
    return store


@settings(max_examples=150, deadline=None)
@given(txn_lists)
def test_serial_histories_are_valid_under_every_model(txns: list[Any]) -> None:
    h = run(txns).history()
    for model in MODELS:
        r = check(h, model=model, process=True)
        assert r.valid is True, (model, r.figures, r.notes)
        assert r.figures["anomaly_types"] == [], r.figures


@settings(max_examples=60, deadline=None)
@given(txn_lists, st.integers(0, 4))
def test_a_stale_read_is_a_realtime_g_single(txns: list[Any], k: int) -> None:
    store = run(txns)
    store.txn([(True, k)])  # makes sure the key has a last committed append
    current = store.lists[k]
    p = next(store.processes)
    store.record(p, "invoke", [R(k)])
    store.record(p, "ok", [R(k, current[:-1])])  # misses the last committed append
    h = store.history()
    assert check(h, model="serializable").valid is True
    r = check(h, model="strict-serializable")
    assert r.valid is False and types(r) == ["G-single-realtime"], r.figures


@settings(max_examples=60, deadline=None)
@given(txn_lists)
def test_an_aborted_read_is_g1a(txns: list[Any]) -> None:
    store = run(txns)
    fresh = 100
    p = next(store.processes)
    store.record(p, "invoke", [A(fresh, 999)])
    store.record(p, "fail", [A(fresh, 999)])
    q = next(store.processes)
    store.record(q, "invoke", [R(fresh)])
    store.record(q, "ok", [R(fresh, [999])])
    r = check(store.history(), model="read-committed")
    assert r.valid is False and types(r) == ["G1a"]
    assert r.details["anomalies"]["G1a"][0]["writer"]["type"] == "fail"


@settings(max_examples=60, deadline=None)
@given(txn_lists)
def test_write_skew_is_g2_item_allowed_by_snapshot_isolation(txns: list[Any]) -> None:
    store = run(txns)
    store.concurrent([R(100, []), A(101, 1001)], [R(101, []), A(100, 1000)])
    store.txn([(False, 100), (False, 101)])
    h = store.history()
    assert check(h, model="snapshot-isolation").valid is True
    r = check(h, model="serializable")
    assert r.valid is False and types(r) == ["G2-item"]


@settings(max_examples=60, deadline=None)
@given(txn_lists, st.integers(0, 4))
def test_a_lost_update_is_found(txns: list[Any], k: int) -> None:
    store = run(txns)
    seen = list(store.lists.get(k, []))
    store.concurrent([R(k, seen), A(k, 1000)], [R(k, seen), A(k, 1001)])
    store.lists.setdefault(k, []).extend([1000, 1001])
    store.txn([(False, k)])
    r = check(store.history(), model="snapshot-isolation")
    assert r.valid is False and types(r) == ["lost-update", "G-single"], r.figures
    assert check(store.history(), model="read-committed").valid is True


@settings(max_examples=40, deadline=None)
@given(txn_lists)
def test_intermediate_and_internal_reads(txns: list[Any]) -> None:
    store = run(txns)
    store.concurrent([A(100, 1000), A(100, 1001)], [R(100, [1000])])
    r = check(store.history(), model="read-committed")
    assert r.valid is False and types(r) == ["G1b", "G-single"]
    store = run(txns)
    store.concurrent([A(100, 1000), R(100, [])])
    r = check(store.history(), model="read-committed")
    assert r.valid is False and types(r) == ["internal"]


@settings(max_examples=40, deadline=None)
@given(txn_lists)
def test_a_write_cycle_is_g0(txns: list[Any]) -> None:
    store = run(txns)
    store.concurrent([A(100, 1), A(101, 1)], [A(100, 2), A(101, 2)])
    store.txn([(False, 100), (False, 101)])
    store.ops[-1]["value"] = [R(100, [1, 2]), R(101, [2, 1])]
    r = check(store.history(), model="read-committed")
    assert r.valid is False and types(r) == ["G0"]
