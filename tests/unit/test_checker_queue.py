"""The queue checker against generated histories with known lost, duplicated, redelivered and unexpected
messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checkers import CheckContext, check_queue
from harness.checkers.common import compact_ranges
from harness.model.history import Event, History, Op, read_events, read_history

OUTCOMES = ["ok", "ok", "ok", "fail", "info", None]


def build(drafts: list[tuple[int, int, dict[str, Any]]]) -> History:
    drafts.sort(key=lambda d: (d[0], d[1]))
    return History.from_ops(Op(index=i, time=t, **f) for i, (t, _, f) in enumerate(drafts))


def owner(t: int, events: list[Event]) -> str:
    last = "none"
    for e in sorted(events, key=lambda e: (e.start, e.id)):
        if e.start <= t:
            last = e.id
    return last


@dataclass
class Case:
    history: History
    events: list[Event]
    outcome: dict[int, str | None]  # enqueue outcome per attempted id
    ok_time: dict[int, int]
    deliveries: list[tuple[int, bool, str]]  # (id, redelivered flag, "dequeue" | "drain")
    extras: set[int]
    empty: int
    info_dequeues: int
    drains: int
    allow_dups: bool


def delivery_value(draw: st.DrawFn, i: int, flag: bool) -> Any:
    if flag:
        return {"id": i, "redelivered": True}
    return draw(st.sampled_from([i, {"id": i, "redelivered": False}, {"id": i}]))


@st.composite
def queue_cases(draw: st.DrawFn, clean: bool = False) -> Case:
    n = draw(st.integers(0, 14))
    ids = draw(st.lists(st.integers(0, 10**6), unique=True, min_size=n, max_size=n))
    null_values = draw(st.booleans())
    drafts: list[tuple[int, int, dict[str, Any]]] = []
    outcome: dict[int, str | None] = {}
    ok_time: dict[int, int] = {}
    times: dict[int, int] = {}
    p = 0
    for i in ids:
        kind = "ok" if clean else draw(st.sampled_from(OUTCOMES))
        outcome[i] = kind
        t0 = draw(st.integers(0, 10**9))
        t1 = t0 + draw(st.integers(0, 10**8))
        times[i] = t1
        drafts.append((t0, 0, {"process": p, "type": "invoke", "f": "enqueue", "value": i, "node": "n1"}))
        if kind is not None:
            v = None if null_values else i
            drafts.append((t1, 1, {"process": p, "type": kind, "f": "enqueue", "value": v, "node": "n1"}))
            if kind == "ok":
                ok_time[i] = t1
        p += 1
    extras = set() if clean else set(draw(st.lists(st.integers(-1000, -1), unique=True, max_size=3)))
    deliveries: list[tuple[int, bool, str]] = []
    for i in [*ids, *sorted(extras)]:
        if clean:
            count = 1 if outcome[i] == "ok" else 0
        else:
            count = draw(st.integers(1, 3)) if i in extras else draw(st.integers(0, 3))
        for k in range(count):
            flag = k > 0 and draw(st.booleans())
            deliveries.append((i, flag, draw(st.sampled_from(["dequeue", "drain"]))))
    deliveries = draw(st.permutations(deliveries))
    t = 2 * 10**9
    empty = info_deq = 0
    drained: list[tuple[int, bool]] = []
    for i, flag, src in deliveries:
        if src == "drain":
            drained.append((i, flag))
            continue
        drafts.append((t, 0, {"process": p, "type": "invoke", "f": "dequeue", "value": None}))
        drafts.append(
            (t + 1, 0, {"process": p, "type": "ok", "f": "dequeue", "value": delivery_value(draw, i, flag)})
        )
        p += 1
        t += 10
        if not clean and draw(st.integers(0, 4)) == 0:
            kind = draw(st.sampled_from(["empty-ok", "fail", "info"]))
            t_type = {"empty-ok": "ok", "fail": "fail", "info": "info"}[kind]
            drafts.append((t, 0, {"process": p, "type": "invoke", "f": "dequeue", "value": None}))
            drafts.append((t + 1, 0, {"process": p, "type": t_type, "f": "dequeue", "value": None}))
            empty += kind == "empty-ok"
            info_deq += kind == "info"
            p += 1
            t += 10
    no_drain = not clean and draw(st.integers(0, 9)) == 0
    n_drains = 0
    if not no_drain:
        n_drains = draw(st.integers(1, 2))
        cut = draw(st.integers(0, len(drained)))
        parts = [drained[:cut], drained[cut:]] if n_drains == 2 else [drained]
        for part in parts:
            value = [delivery_value(draw, i, flag) for i, flag in part]
            drafts.append((t, 0, {"process": p, "type": "invoke", "f": "drain", "value": None}))
            drafts.append((t + 1, 0, {"process": p, "type": "ok", "f": "drain", "value": value}))
            p += 1
            t += 10
        if not clean and draw(st.booleans()):  # a failed drain counts for nothing
            drafts.append((t, 0, {"process": p, "type": "invoke", "f": "drain", "value": None}))
            drafts.append((t + 1, 0, {"process": p, "type": "fail", "f": "drain", "value": None}))
    else:
        deliveries = [d for d in deliveries if d[2] == "dequeue"]
    events = [
        Event(f"ev{k}", "kill", "signal", "n2", {}, s)
        for k, s in enumerate(draw(st.lists(st.integers(0, 11 * 10**8), max_size=3)))
    ]
    allow = clean or draw(st.booleans())
    return Case(build(drafts), events, outcome, ok_time, deliveries, extras, empty, info_deq, n_drains, allow)


def ranges(xs: list[int] | set[int]) -> str:
    return compact_ranges(np.array(sorted(xs), dtype=np.int64))


@settings(max_examples=1000, deadline=None)
@given(case=queue_cases())
def test_queue_checker_finds_exactly_the_injected_anomalies(case: Case) -> None:
    ctx = CheckContext(events=tuple(case.events), options={"queue": {"allow_duplicates": case.allow_dups}})
    r = check_queue(case.history, ctx)
    f = r.figures
    acked = {i for i, k in case.outcome.items() if k == "ok"}
    failed = {i for i, k in case.outcome.items() if k == "fail"}
    indet = set(case.outcome) - acked - failed
    count: dict[int, int] = {}
    flagged: dict[int, int] = {}
    for i, flag, _ in case.deliveries:
        count[i] = count.get(i, 0) + 1
        flagged[i] = flagged.get(i, 0) + flag
    delivered = set(count)
    assert (f["attempted"], f["acknowledged"], f["failed"], f["indeterminate"]) == (
        len(case.outcome),
        len(acked),
        len(failed),
        len(indet),
    )
    assert f["dequeued"] == sum(1 for d in case.deliveries if d[2] == "dequeue")
    assert f["empty_dequeues"] == case.empty
    assert f["indeterminate_dequeues"] == case.info_dequeues
    assert f["drains"] == case.drains
    assert f["deliveries"] == len(case.deliveries)
    assert f["drained"] == len(case.deliveries) - f["dequeued"]
    assert f["redelivered"] == sum(flagged.values())
    if case.drains == 0:
        assert r.valid == "unknown"
        assert "lost" not in f
        return
    lost = acked - delivered
    dup = {i for i, c in count.items() if c > 1}
    unflagged = {i for i in dup if count[i] - 1 > flagged[i]}
    expect = {
        "lost": lost,
        "unexpected": case.extras,
        "recovered": indet & delivered,
        "fail_present": failed & delivered,
        "duplicated": dup,
        "duplicated_unflagged": unflagged,
    }
    for k, ids in expect.items():
        assert f[k] == len(ids), k
        assert f[k + "_ranges"] == ranges(ids), k
    assert f["duplicate_deliveries"] == sum(count[i] - 1 for i in dup)
    assert f["lost_pct"] == (round(100 * len(lost) / len(acked), 4) if acked else 0.0)
    exp_attr: dict[str, int] = {}
    for i in lost:
        k = owner(case.ok_time[i], case.events)
        exp_attr[k] = exp_attr.get(k, 0) + 1
    assert f["lost_by_event"] == exp_attr
    bad = lost or case.extras or (failed & delivered) or (dup and not case.allow_dups)
    assert r.valid is (not bad)
    assert check_queue(case.history, ctx).to_dict() == r.to_dict()
    assert json.loads(json.dumps(r.to_dict())) == r.to_dict()


@settings(max_examples=200, deadline=None)
@given(case=queue_cases(clean=True))
def test_clean_queue_histories_are_valid(case: Case) -> None:
    r = check_queue(case.history, CheckContext(events=tuple(case.events)))
    assert r.valid is True, r.notes
    for k in ("lost", "unexpected", "recovered", "fail_present", "duplicated", "duplicate_deliveries"):
        assert r.figures[k] == 0
    assert r.figures["deliveries"] == r.figures["acknowledged"] == len(case.outcome)


def test_no_drain_is_unknown_and_bad_values_are_errors() -> None:
    h = History.from_ops(
        [
            Op(0, 0, "invoke", "enqueue", 1),
            Op(1, 0, "ok", "enqueue", 1),
            Op(2, 1, "invoke", "dequeue", None),
            Op(3, 1, "ok", "dequeue", 1),
        ]
    )
    r = check_queue(h, CheckContext())
    assert r.valid == "unknown" and r.notes == ("no final drain (no ok 'drain' op)",)
    assert r.figures["dequeued"] == 1
    bad = History.from_ops([Op(0, 0, "invoke", "dequeue", None), Op(1, 0, "ok", "dequeue", "one")])
    with pytest.raises(ValueError, match="a delivery must be"):
        check_queue(bad, CheckContext())


def test_recorded_history() -> None:
    data = Path(__file__).parent.parent / "data" / "histories"
    h = read_history(data / "queue-kill.jsonl")
    events = read_events(data / "queue-kill.events.jsonl")
    r = check_queue(h, CheckContext(events=tuple(events)))
    f = r.figures
    assert r.valid is False
    assert (f["attempted"], f["acknowledged"], f["failed"], f["indeterminate"]) == (6, 4, 1, 1)
    assert (f["lost"], f["lost_ranges"], f["lost_by_event"]) == (1, "3", {"kill-1": 1})
    assert (f["recovered"], f["recovered_ranges"]) == (1, "4")
    assert (f["duplicated"], f["duplicate_deliveries"], f["duplicated_unflagged"], f["redelivered"]) == (
        1,
        1,
        0,
        1,
    )
    assert (f["dequeued"], f["drained"], f["indeterminate_dequeues"]) == (2, 3, 1)
