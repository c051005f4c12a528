"""The boot checker: did every boot request the API accepted end ACTIVE, once, with its row and its message?

History shape (``harness.workloads.openstack_boot``; request ids are integers, unique per request):

* ``insert``: invoke value = request id; ``ok`` = the instance row (BUILDING) committed; ``fail`` = it
  certainly did not; ``info`` = unknown.
* ``cast``: invoke value = request id, only after its ``insert`` was ok; ``ok`` = the broker confirmed the
  message; ``fail`` = certainly not enqueued; ``info`` = unknown.
* ``activate``: invoke value = request id; ``ok`` value ``{"id", "rows", "redelivered"}``: a compute
  worker's UPDATE to ACTIVE committed and matched ``rows`` rows (0: no row to update).
* ``scan``: ``ok`` value ``{state: count}``, the scheduler's periodic read.
* ``read-rows``: the final read, ``ok`` value ``[[id, state, activations], …]``, every instance row.

Per request (an ``insert`` invoke): it is *accepted* when its insert and its cast were both ok (what
Nova's API answers 202 for). Figures:

* ``lost``: requests whose insert was ok and whose row is gone at the end (the database lost a commit);
* ``stuck``: accepted requests whose row is still BUILDING at the end, after the compute service
  finished the queue (the message, or the compute's update, was lost);
* ``orphan_rows`` (rows without a message): rows still BUILDING whose cast was not confirmed — the API
  reported an error (or did not know), and the instance waits for an operator;
* ``messages_without_row``: requests a compute processed (an ok ``activate``) but found no row for, at
  the time (the row was lost, or not yet on the node that had become the writer): each one's message
  was acked with nothing done, so it ends ``lost`` or ``stuck`` unless a redelivery found the row later;
* ``duplicated``: requests processed more than once (two ok activations, or a row with
  ``activations`` > 1): at-least-once delivery, redelivery after a lost ack or an unknown update;
* ``unexpected``: rows of ids never requested;
* ``latency_*_s``: end to end, from the insert's invoke to the first ok activation's completion, over
  accepted requests that reached ACTIVE (rank ⌊n·q⌋ of the sorted values);
* ``max_building``: the most instances a scan saw BUILDING at once.

Verdict: unknown without an ok ``read-rows``; False when lost, stuck or unexpected are not 0; else True
(duplicates, orphan rows and messages without a row are figures, bounded with ``expect:``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from harness.checkers.base import CheckContext, CheckerOptions, Result
from harness.checkers.common import MAX_RANGES, compact_ranges
from harness.model.history import History

__all__ = ["BootOptions", "check_boot"]

BUILDING, ACTIVE = "BUILDING", "ACTIVE"


class BootOptions(CheckerOptions):
    """``checks.boot``: how many ids each list shows."""

    max_ranges: int = Field(default=MAX_RANGES, ge=0, description="id ranges listed per figure")


def _ids(ids: set[int], max_ranges: int) -> str:
    return compact_ranges(np.asarray(sorted(ids), dtype=np.int64), max_ranges)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 6)


def _final_rows(value: Any, where: str) -> dict[int, tuple[str, int]]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where}: expected a list of [id, state, activations], got {type(value).__name__}")
    rows: dict[int, tuple[str, int]] = {}
    for row in value:
        if not (isinstance(row, list | tuple) and len(row) == 3 and type(row[0]) is int and isinstance(row[1], str)
                and type(row[2]) is int):  # fmt: skip
            raise ValueError(f"{where}: a row must be [id, state, activations], not {row!r}")
        rows[row[0]] = (row[1], row[2])
    return rows


def check_boot(history: History, ctx: CheckContext) -> Result:
    o = ctx.options_for("boot", BootOptions)
    outcome: dict[str, dict[int, str]] = {"insert": {}, "cast": {}}
    invoked_at: dict[int, int] = {}
    activations: dict[int, list[int]] = {}  # id -> completion times of ok activations that matched a row
    rowless: set[int] = set()
    max_building = 0
    final: dict[int, tuple[str, int]] | None = None
    for invoke, done in history.pairs():
        f = invoke.f
        if f in outcome:
            if type(invoke.value) is not int:
                raise ValueError(
                    f"{f} op index {invoke.index}: value must be a request id, not {invoke.value!r}"
                )
            outcome[f][invoke.value] = done.type if done is not None else "info"
            if f == "insert":
                invoked_at[invoke.value] = invoke.time
        elif f == "activate" and done is not None and done.type == "ok":
            v = done.value
            if not (isinstance(v, Mapping) and type(v.get("id")) is int and type(v.get("rows")) is int):
                raise ValueError(
                    f"activate op index {done.index}: ok value must be {{id, rows, …}}, not {v!r}"
                )
            if v["rows"] > 0:
                activations.setdefault(v["id"], []).append(done.time)
            else:
                rowless.add(v["id"])
        elif f == "scan" and done is not None and done.type == "ok" and isinstance(done.value, Mapping):
            max_building = max(max_building, int(done.value.get(BUILDING, 0)))
        elif f == "read-rows" and done is not None and done.type == "ok":
            final = _final_rows(done.value, f"read-rows op index {done.index}")

    inserts, casts = outcome["insert"], outcome["cast"]
    accepted = {i for i, t in inserts.items() if t == "ok" and casts.get(i) == "ok"}
    counts = Counter(inserts.values())
    cast_counts = Counter(casts.values())
    totals: dict[str, Any] = {
        "requests": len(inserts),
        "accepted": len(accepted),
        "insert_failed": counts["fail"],
        "insert_indeterminate": counts["info"],
        "cast_failed": cast_counts["fail"],
        "cast_indeterminate": cast_counts["info"],
        "processed": len(activations),
        "max_building": max_building,
    }
    if final is None:
        return Result("unknown", totals, notes=("no final read of the instance rows (read-rows)",))

    committed = {i for i, t in inserts.items() if t == "ok"}
    lost = committed - final.keys()
    stuck = {i for i in accepted if i in final and final[i][0] == BUILDING}
    orphans = {
        i for i, (state, _n) in final.items() if state == BUILDING and i not in accepted and i in inserts
    }
    duplicated = {i for i, times in activations.items() if len(times) > 1}
    duplicated |= {i for i, (_state, n) in final.items() if n > 1}
    unexpected = final.keys() - inserts.keys()
    latencies = [(min(activations[i]) - invoked_at[i]) / 1e9 for i in accepted if i in activations]
    figures: dict[str, Any] = {  # what a verdict turns on first, then the totals
        "lost": len(lost),
        "stuck": len(stuck),
        "orphan_rows": len(orphans),
        "messages_without_row": len(rowless),
        "duplicated": len(duplicated),
        "unexpected": len(unexpected),
        "active": sum(1 for state, _n in final.values() if state == ACTIVE),
        "latency_p50_s": _quantile(latencies, 0.5),
        "latency_p99_s": _quantile(latencies, 0.99),
        "latency_max_s": _quantile(latencies, 1.0),
        **totals,
    }
    named = {"lost": lost, "stuck": stuck, "orphan_rows": orphans, "messages_without_row": rowless,
             "duplicated": duplicated, "unexpected": unexpected}  # fmt: skip
    details = {f"{k}_ids": _ids(v, o.max_ranges) for k, v in named.items() if v}
    bad = [k for k in ("lost", "stuck", "unexpected") if named[k]]
    notes = tuple(f"{k}: {len(named[k])} ({details[k + '_ids']})" for k in bad)
    return Result(not bad, figures, details, notes)
