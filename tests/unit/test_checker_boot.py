"""The boot checker against ground truth: random requests, each with a drawn fate (insert and cast outcomes,
how often a compute processed it, whether it found its row, whether the row survived), built into a
history; the checker must report exactly the drawn anomalies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checkers.base import CheckContext
from harness.checkers.boot import check_boot
from harness.model.history import History, Op


@dataclass(frozen=True)
class Fate:
    insert: str  # ok / fail / info
    cast: str | None  # ok / fail / info, None: not attempted (the insert was not ok)
    activations: int  # ok activations that matched its row
    rowless: int  # ok activations that found no row
    row: bool  # the row is there at the end


@st.composite
def fates(draw: st.DrawFn) -> Fate:
    insert = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info"]))
    cast = draw(st.sampled_from(["ok", "ok", "fail", "info"])) if insert == "ok" else None
    delivered = cast in ("ok", "info")
    activations = draw(st.integers(0, 2)) if delivered else 0
    rowless = draw(st.integers(0, 1)) if delivered else 0
    row = (
        draw(st.booleans())
        if insert == "info"
        else insert == "ok" and draw(st.sampled_from([True] * 5 + [False]))
    )
    if not row:
        activations = 0  # an update that matched the row leaves it (the checker counts it there)
    return Fate(insert, cast, activations, rowless, row)


def build(requests: list[Fate], *, stray: int = 0) -> History:
    ops: list[dict[str, Any]] = []
    t = 0

    def op(process: int, type_: str, f: str, value: Any, error: str | None = None) -> None:
        nonlocal t
        t += 1_000_000
        ops.append({"process": process, "type": type_, "f": f, "value": value, "time": t, "error": error})

    final = []
    for i, fate in enumerate(requests, start=1):
        op(0, "invoke", "insert", i)
        op(0, fate.insert, "insert", i, None if fate.insert == "ok" else "x")
        if fate.cast is not None:
            op(0, "invoke", "cast", i)
            op(0, fate.cast, "cast", i, None if fate.cast == "ok" else "x")
        for _ in range(fate.rowless):
            op(1, "invoke", "activate", i)
            op(1, "ok", "activate", {"id": i, "rows": 0, "redelivered": False})
        for k in range(fate.activations):
            op(1, "invoke", "activate", i)
            op(1, "ok", "activate", {"id": i, "rows": 1, "redelivered": k > 0})
        if fate.row:
            final.append([i, "ACTIVE" if fate.activations else "BUILDING", fate.activations])
        op(2, "invoke", "scan", None)
        op(2, "ok", "scan", {"BUILDING": i % 7, "ACTIVE": 1})
    final += [[10_000 + k, "BUILDING", 0] for k in range(stray)]
    op(3, "invoke", "read-rows", None)
    op(3, "ok", "read-rows", final)
    return History.from_ops(Op(index=n, **d) for n, d in enumerate(ops))


@settings(max_examples=150, deadline=None)
@given(st.lists(fates(), min_size=1, max_size=40), st.integers(0, 2))
def test_the_boot_checker_reports_exactly_the_drawn_fates(requests: list[Fate], stray: int) -> None:
    result = check_boot(build(requests, stray=stray), CheckContext())
    f = result.figures
    ids = dict(enumerate(requests, start=1))
    accepted = {i for i, r in ids.items() if r.insert == "ok" and r.cast == "ok"}
    expected = {
        "requests": len(requests),
        "accepted": len(accepted),
        "lost": sum(1 for r in requests if r.insert == "ok" and not r.row),
        "stuck": sum(1 for i in accepted if ids[i].row and ids[i].activations == 0),
        "orphan_rows": sum(1 for i, r in ids.items() if r.row and r.activations == 0 and i not in accepted),
        "messages_without_row": sum(1 for r in requests if r.rowless),
        "duplicated": sum(1 for r in requests if r.activations > 1),
        "unexpected": stray,
        "insert_failed": sum(1 for r in requests if r.insert == "fail"),
        "cast_indeterminate": sum(1 for r in requests if r.cast == "info"),
        "max_building": max(i % 7 for i in ids),
    }
    assert {k: f[k] for k in expected} == expected
    assert result.valid is (expected["lost"] == expected["stuck"] == expected["unexpected"] == 0)
    reached = [i for i in accepted if ids[i].activations]
    assert (f["latency_p50_s"] is None) == (not reached)
    if reached:
        assert 0 < f["latency_p50_s"] <= f["latency_p99_s"] <= f["latency_max_s"]


def test_no_final_read_is_unknown_and_bad_values_are_errors() -> None:
    h = History.from_ops([Op(0, 0, "invoke", "insert", 1, 1), Op(1, 0, "ok", "insert", 1, 2)])
    result = check_boot(h, CheckContext())
    assert result.valid == "unknown" and result.figures["requests"] == 1
    bad = History.from_ops(
        [Op(0, 0, "invoke", "read-rows", None, 1), Op(1, 0, "ok", "read-rows", [[1, "X"]], 2)]
    )
    with pytest.raises(ValueError, match=r"a row must be \[id, state, activations\]"):
        check_boot(bad, CheckContext())
