"""Checker contract: merge_valid, Result, check_safe, compose, the registry, jsonable, common helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checkers import (
    CHECKERS,
    CheckContext,
    Result,
    build,
    check_safe,
    compose,
    get_checker,
    merge_valid,
)
from harness.checkers.base import jsonable
from harness.checkers.common import attribute, compact_ranges, duplicated, unique_sorted
from harness.errors import InputError
from harness.model.history import Event, History, Op, Sample, read_events, read_history, write_history

validity = st.sampled_from([True, False, "unknown"])
RANK = {True: 0, "unknown": 1, False: 2}


@settings(max_examples=1000, deadline=None)
@given(vs=st.lists(validity, max_size=6))
def test_merge_valid_is_the_worst(vs: list[Any]) -> None:
    got = merge_valid(vs)
    if not vs:
        assert got is True
    else:
        assert RANK[got] == max(RANK[v] for v in vs)
        assert got in vs
    assert merge_valid(reversed(vs)) == got  # order does not matter


def test_merge_valid_examples_and_rejects_junk() -> None:
    assert merge_valid([True, "unknown"]) == "unknown"
    assert merge_valid(["unknown", False, True]) is False
    assert merge_valid([True, True]) is True
    with pytest.raises(ValueError):
        merge_valid([None])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        merge_valid([1])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        Result(valid="maybe")  # type: ignore[arg-type]


def _ok(h: History, ctx: CheckContext) -> Result:
    return Result(True, figures={"n": np.int64(len(h)), "frac": np.float64(0.5), "arr": np.arange(3)})


def _bad(h: History, ctx: CheckContext) -> Result:
    return Result(False, figures={"why": "because"}, notes=("broken",))


def _boom(h: History, ctx: CheckContext) -> Result:
    raise RuntimeError("kaput")


H = History.from_ops([Op(0, 0, "invoke", "add", 1), Op(1, 0, "ok", "add", 1)])


def test_check_safe_turns_a_crash_into_unknown() -> None:
    r = check_safe(_boom)(H, CheckContext())
    assert r.valid == "unknown"
    assert r.error == "RuntimeError: kaput"
    assert "kaput" in r.details["traceback"]
    assert check_safe(_ok)(H, CheckContext()).valid is True


def test_compose_merges_and_survives_crashes() -> None:
    c = compose({"ok": _ok, "boom": _boom})
    r = c(H, CheckContext())
    assert r.valid == "unknown"
    assert list(r.children) == ["ok", "boom"]
    assert r.children["boom"].error == "RuntimeError: kaput"
    r2 = compose({"ok": _ok, "boom": _boom, "bad": _bad})(H, CheckContext())
    assert r2.valid is False
    assert compose({"ok": _ok})(H, CheckContext()).valid is True
    d = r2.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["children"]["ok"]["figures"] == {"n": 2, "frac": 0.5, "arr": [0, 1, 2]}
    back = Result.from_dict(d)
    assert back.to_dict() == d


def test_registry() -> None:
    assert set(CHECKERS) >= {
        "set",
        "set-full",
        "queue",
        "bank",
        "counter",
        "availability",
        "lag",
        "divergence",
    }
    assert get_checker("set") is CHECKERS["set"]
    with pytest.raises(InputError, match="unknown checker 'nope'"):
        get_checker("nope")
    r = build(["set", "queue"])(H, CheckContext())
    assert list(r.children) == ["set", "queue"]
    assert r.valid == "unknown"  # no final read, no drain


def test_every_builtin_is_json_and_deterministic_on_an_empty_history() -> None:
    ctx = CheckContext()
    for name, checker in CHECKERS.items():
        a = checker(History.empty(), ctx).to_dict()
        b = checker(History.empty(), ctx).to_dict()
        assert a == b, name
        assert json.dumps(a) == json.dumps(b)
        assert a["valid"] == "unknown", name


def test_jsonable() -> None:
    assert jsonable({1: (np.int32(3), {np.bool_(True)}), "x": float("nan")}) == {"1": [3, [True]], "x": None}
    with pytest.raises(TypeError):
        jsonable(object())


def test_context_options_and_events() -> None:
    e1 = Event("b", "kill", "signal", "n1", {}, 20)
    e2 = Event("a", "kill", "signal", "n2", {}, 10)
    ctx = CheckContext(events=[e1, e2], options={"set": {"x": 1}})  # type: ignore[arg-type]
    assert isinstance(ctx.events, tuple)
    assert [e.id for e in ctx.sorted_events()] == ["a", "b"]
    assert ctx.opts("set") == {"x": 1} and ctx.opts("queue") == {}


@settings(max_examples=1000, deadline=None)
@given(ids=st.sets(st.integers(0, 100), max_size=30), cap=st.integers(1, 8))
def test_compact_ranges_round_trip(ids: set[int], cap: int) -> None:
    arr = np.array(sorted(ids), dtype=np.int64)
    text = compact_ranges(arr, max_ranges=10**6)
    back: list[int] = []
    parts = text.split(",") if text else []
    for part in parts:
        lo, _, hi = part.partition("-")
        assert not hi or int(hi) > int(lo)
        back.extend(range(int(lo), int(hi or lo) + 1))
    assert back == sorted(ids)
    assert len(parts) == sum(1 for i in ids if i - 1 not in ids)  # ranges are maximal
    capped = compact_ranges(arr, max_ranges=cap)
    if len(parts) > cap:
        assert capped == ",".join(parts[:cap]) + f",... (+{len(parts) - cap} more)"
    else:
        assert capped == text


def test_compact_ranges_examples() -> None:
    assert compact_ranges(np.array([1, 2, 3, 4, 5, 9])) == "1-5,9"
    assert compact_ranges(np.array([], dtype=np.int64)) == ""
    assert compact_ranges(np.array([1, 3, 5, 7]), max_ranges=2) == "1,3,... (+2 more)"


@settings(max_examples=300, deadline=None)
@given(xs=st.lists(st.integers(0, 20), max_size=40))
def test_unique_and_duplicated(xs: list[int]) -> None:
    a = np.array(xs, dtype=np.int64)
    assert unique_sorted(a).tolist() == sorted(set(xs))
    vals, counts = duplicated(a)
    assert dict(zip(vals.tolist(), counts.tolist(), strict=True)) == {
        x: xs.count(x) for x in set(xs) if xs.count(x) > 1
    }


@settings(max_examples=300, deadline=None)
@given(
    starts=st.lists(st.integers(0, 100), max_size=5),
    times=st.lists(st.integers(0, 120), max_size=20),
)
def test_attribute_matches_a_loop(starts: list[int], times: list[int]) -> None:
    events = sorted(
        (Event(f"e{i}", "kill", "signal", "n1", {}, s) for i, s in enumerate(starts)),
        key=lambda e: (e.start, e.id),
    )
    expected: dict[str, int] = {}
    for t in times:
        owner = "none"
        for e in events:
            if e.start <= t:
                owner = e.id
        expected[owner] = expected.get(owner, 0) + 1
    got = attribute(np.array(times, dtype=np.int64), events)
    assert got == expected
    assert list(got) == [e.id for e in events if e.id in got] + (["none"] if "none" in got else [])


def test_recheck_of_a_stored_run_reproduces_the_result(tmp_path: Path) -> None:
    data = Path(__file__).parent.parent / "data" / "histories"
    everything = build(list(CHECKERS))
    for name in ("set-partition", "queue-kill"):
        h = read_history(data / f"{name}.jsonl")
        ctx = CheckContext(
            events=tuple(read_events(data / f"{name}.events.jsonl")),
            samples=(
                Sample(0, "n2", "replication_lag_s", 0.5),
                Sample(10**9, "n2", "replication_lag_s", 3.0),
            ),
            checksums={"n1": {"t": {"rows": 3, "checksum": "a"}}, "n2": {"t": {"rows": 3, "checksum": "b"}}},
        )
        first = json.dumps(everything(h, ctx).to_dict(), sort_keys=True)
        write_history(tmp_path / "copy.jsonl", h)
        again = everything(read_history(tmp_path / "copy.jsonl"), ctx).to_dict()
        assert json.dumps(again, sort_keys=True) == first
        assert json.dumps(everything(History.from_ops(list(h)), ctx).to_dict(), sort_keys=True) == first
