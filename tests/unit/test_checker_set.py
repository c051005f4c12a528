"""The set checker against generated histories with known losses, duplicates, unexpected and recovered ids."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checkers import CheckContext, check_set
from harness.checkers.common import compact_ranges
from harness.model.history import Event, History, Op, read_events, read_history

DATA = Path(__file__).parent.parent / "data" / "histories"

# what happened to each attempted id: (completion, present in the final reads?)
CATS = [
    ("ok", True),
    ("ok", False),
    ("fail", False),
    ("fail", True),
    ("info", True),
    ("info", False),
    (None, True),  # never completed
    (None, False),
]


def build(drafts: list[tuple[int, int, dict[str, Any]]]) -> History:
    """Ops from (time, tiebreak, fields) drafts, sorted by time and numbered."""
    drafts.sort(key=lambda d: (d[0], d[1]))
    return History.from_ops(Op(index=i, time=t, **f) for i, (t, _, f) in enumerate(drafts))


def owner(t: int, events: list[Event]) -> str:
    last = "none"
    for e in sorted(events, key=lambda e: (e.start, e.id)):
        if e.start <= t:
            last = e.id
    return last


def by_event(times: list[int], events: list[Event]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in times:
        k = owner(t, events)
        out[k] = out.get(k, 0) + 1
    return out


@dataclass
class Case:
    history: History
    events: list[Event]
    nodes: list[str | None]
    cats: dict[int, tuple[str | None, bool]]
    ok_time: dict[int, int]
    reads: dict[str, list[int]]  # final ok read per node (key "*" for node None)
    extras: set[int]
    dups: set[int]
    missing_nodes: list[str] = field(default_factory=list)
    no_read: bool = False


@st.composite
def set_cases(draw: st.DrawFn, clean: bool = False) -> Case:
    nodes: list[str | None] = draw(st.sampled_from([[None], ["n1"], ["n1", "n2"], ["n1", "n2", "n3"]]))
    n = draw(st.integers(0, 16))
    ids = draw(st.lists(st.integers(0, 10**6), unique=True, min_size=n, max_size=n))
    cats = {i: (CATS[0] if clean else draw(st.sampled_from(CATS))) for i in ids}
    null_values = draw(st.booleans())
    drafts: list[tuple[int, int, dict[str, Any]]] = []
    ok_time: dict[int, int] = {}
    presence: dict[int, set[str | None]] = {}
    for p, i in enumerate(ids):
        kind, present = cats[i]
        node = draw(st.sampled_from(nodes))
        t0 = draw(st.integers(0, 10**9))
        t1 = t0 + draw(st.integers(0, 10**8))
        drafts.append((t0, 0, {"process": p, "type": "invoke", "f": "add", "value": i, "node": node}))
        if kind is not None:
            value = None if null_values else i
            drafts.append((t1, 1, {"process": p, "type": kind, "f": "add", "value": value, "node": node}))
            if kind == "ok":
                ok_time[i] = t1
        if present:
            if kind == "ok" and not clean:
                # present somewhere, possibly missing on some nodes
                where = set(draw(st.lists(st.sampled_from(nodes), min_size=1, unique=True)))
            elif kind == "ok":
                where = set(nodes)
            else:
                where = set(draw(st.lists(st.sampled_from(nodes), min_size=1, unique=True)))
            presence[i] = where
    extra_ids = st.lists(st.integers(2 * 10**6, 3 * 10**6), unique=True, max_size=3)
    extras: set[int] = set() if clean else set(draw(extra_ids))
    for x in extras:
        presence[x] = set(draw(st.lists(st.sampled_from(nodes), min_size=1, unique=True)))
    reads: dict[str, list[int]] = {}
    dups: dict[str, int] = {}
    for node in nodes:
        key = "*" if node is None else node
        content = [i for i in presence if node in presence[i]]
        if content and not clean and draw(st.booleans()):
            dups[key] = draw(st.sampled_from(content))
            content.append(dups[key])
        reads[key] = draw(st.permutations(content))
    events = [
        Event(f"ev{k}", "partition", "iptables", "n1", {}, s, None)
        for k, s in enumerate(draw(st.lists(st.integers(0, 11 * 10**8), max_size=3)))
    ]
    no_read = not clean and draw(st.integers(0, 9)) == 0
    missing: list[str] = []
    t = 2 * 10**9
    for k, node in enumerate([] if no_read else nodes):
        p = 10**6 + k
        key = "*" if node is None else node
        if not clean and len(nodes) > 1 and draw(st.integers(0, 5)) == 0:
            # a read that failed: this node has no final read
            drafts += [(t, 0, read(p, "invoke", None, node)), (t + 1, 0, read(p, "fail", None, node))]
            missing.append(key)
            del reads[key]
            dups.pop(key, None)
            t += 10
            continue
        if not clean and draw(st.integers(0, 3)) == 0:
            # an earlier read with other content: only the last one counts
            early = draw(st.lists(st.integers(0, 3 * 10**6), max_size=3))
            drafts += [(t, 0, read(p, "invoke", None, node)), (t + 1, 0, read(p, "ok", early, node))]
            t += 10
        drafts += [(t, 0, read(p, "invoke", None, node)), (t + 1, 0, read(p, "ok", reads[key], node))]
        t += 10
    if no_read or len(missing) == len(nodes):
        no_read, reads, dups = True, {}, {}
    return Case(
        build(drafts), events, nodes, cats, ok_time, reads, extras, set(dups.values()), missing, no_read
    )


def read(p: int, type_: str, value: Any, node: str | None) -> dict[str, Any]:
    return {"process": p, "type": type_, "f": "read", "value": value, "node": node}


def expected(case: Case) -> dict[str, Any]:
    cats = case.cats
    attempted = set(cats)
    acked = {i for i, (k, _) in cats.items() if k == "ok"}
    failed = {i for i, (k, _) in cats.items() if k == "fail"}
    indet = attempted - acked - failed
    union = set().union(*map(set, case.reads.values())) if case.reads else set()
    lost = acked - union
    per_node_lost = {n: acked - set(r) for n, r in case.reads.items()}
    some = set().union(*per_node_lost.values()) if per_node_lost else set()
    return {
        "attempted": len(attempted),
        "acknowledged": len(acked),
        "failed": len(failed),
        "indeterminate": len(indet),
        "lost": sorted(lost),
        "unexpected": sorted(union - attempted),
        "recovered": sorted(indet & union),
        "fail_present": sorted(failed & union),
        "duplicated": sorted(case.dups),
        "per_node_lost": {n: sorted(v) for n, v in per_node_lost.items()},
        "some": sorted(some),
    }


def ranges(xs: list[int]) -> str:
    return compact_ranges(np.array(xs, dtype=np.int64))


@settings(max_examples=1000, deadline=None)
@given(case=set_cases())
def test_set_checker_finds_exactly_the_injected_anomalies(case: Case) -> None:
    r = check_set(case.history, CheckContext(events=tuple(case.events)))
    f = r.figures
    exp = expected(case)
    for k in ("attempted", "acknowledged", "failed", "indeterminate"):
        assert f[k] == exp[k], k
    if case.no_read:
        assert r.valid == "unknown"
        assert "lost" not in f
        return
    # the injected ground truth, bucket by bucket
    if not case.missing_nodes:
        assert exp["lost"] == sorted(i for i, c in case.cats.items() if c == ("ok", False))
        assert exp["recovered"] == sorted(i for i, c in case.cats.items() if c[0] in ("info", None) and c[1])
        assert exp["fail_present"] == sorted(i for i, c in case.cats.items() if c == ("fail", True))
        assert exp["unexpected"] == sorted(case.extras)
    for k in ("lost", "unexpected", "recovered", "fail_present", "duplicated"):
        assert f[k] == len(exp[k]), k
        assert f[k + "_ranges"] == ranges(exp[k]), k
    assert f["lost_pct"] == (
        round(100 * len(exp["lost"]) / exp["acknowledged"], 4) if exp["acknowledged"] else 0
    )
    assert f["lost_by_event"] == by_event([case.ok_time[i] for i in exp["lost"]], case.events)
    assert f["lost_on_some_node"] == len(exp["some"])
    assert set(f["per_node"]) == set(case.reads)
    for node, lost in exp["per_node_lost"].items():
        pn = f["per_node"][node]
        assert pn["lost"] == len(lost)
        assert pn["lost_ranges"] == ranges(lost)
        assert pn["read"] == len(case.reads[node])
        assert pn["lost_by_event"] == by_event([case.ok_time[i] for i in lost], case.events)
    assert f["nodes_missing_read"] == sorted(case.missing_nodes)
    bad = exp["some"] or exp["unexpected"] or exp["fail_present"] or exp["duplicated"]
    assert r.valid == (False if bad else ("unknown" if case.missing_nodes else True))
    # determinism and JSON
    again = check_set(case.history, CheckContext(events=tuple(case.events))).to_dict()
    assert again == r.to_dict()
    assert json.loads(json.dumps(again)) == again


@settings(max_examples=200, deadline=None)
@given(case=set_cases(clean=True))
def test_clean_histories_are_valid(case: Case) -> None:
    r = check_set(case.history, CheckContext(events=tuple(case.events)))
    f = r.figures
    assert r.valid is True, r.notes
    for k in ("lost", "unexpected", "recovered", "fail_present", "duplicated", "lost_on_some_node"):
        assert f[k] == 0
    assert f["acknowledged"] == f["attempted"] == len(case.cats)
    assert f["lost_by_event"] == {}


def _ops(*rows: tuple[Any, ...]) -> History:
    return History.from_ops(Op(i, *row) for i, row in enumerate(rows))


def test_missing_final_read_is_unknown() -> None:
    h = _ops((0, "invoke", "add", 1, 10), (0, "ok", "add", 1, 20))
    r = check_set(h, CheckContext())
    assert r.valid == "unknown"
    assert r.notes == ("no final read (no ok 'read' op)",)
    assert r.figures["acknowledged"] == 1


def test_node_loss_can_be_allowed() -> None:
    h = _ops(
        (0, "invoke", "add", 1, 10, "n1"),
        (0, "ok", "add", 1, 20, "n1"),
        (1, "invoke", "read", None, 30, "n1"),
        (1, "ok", "read", [1], 40, "n1"),
        (2, "invoke", "read", None, 30, "n2"),
        (2, "ok", "read", [], 40, "n2"),
    )
    assert check_set(h, CheckContext()).valid is False
    r = check_set(h, CheckContext(options={"set": {"require_all_nodes": False}}))
    assert r.valid is True
    assert r.figures["per_node"]["n2"]["lost"] == 1
    r3 = check_set(h, CheckContext(options={"set": {"require_all_nodes": True, "nodes": ["n1", "n2", "n3"]}}))
    assert r3.figures["nodes_missing_read"] == ["n3"] and r3.valid is False


def test_non_integer_ids_are_an_error() -> None:
    h = _ops((0, "invoke", "add", "x", 10), (0, "ok", "add", "x", 20), (1, "ok", "read", [], 30))
    try:
        check_set(h, CheckContext())
    except ValueError as e:
        assert "no integer id" in str(e)
    else:
        raise AssertionError("expected ValueError")


def test_recorded_history() -> None:
    h = read_history(DATA / "set-partition.jsonl")
    events = read_events(DATA / "set-partition.events.jsonl")
    r = check_set(h, CheckContext(events=tuple(events)))
    f = r.figures
    assert r.valid is False
    assert (f["attempted"], f["acknowledged"], f["failed"], f["indeterminate"]) == (8, 5, 1, 2)
    assert (f["lost"], f["lost_ranges"], f["lost_by_event"]) == (1, "4", {"partition-1": 1})
    assert (f["recovered"], f["recovered_ranges"]) == (1, "6")
    assert (f["unexpected"], f["fail_present"], f["duplicated"]) == (0, 0, 0)
    assert f["per_node"]["n3"]["lost_ranges"] == "3-4"
    assert f["lost_on_some_node"] == 2
