"""The queue checker: was every confirmed message delivered? (Jepsen's ``total-queue``.)

History shape (message ids are integers, unique per publish attempt; a publisher that retries after an
``info`` must use a new id):

* ``enqueue``: invoke value = message id; ``ok`` = publisher confirm (basic.ack) received; ``fail`` = the
  broker certainly did not take it; ``info`` = unknown (timeout / connection lost before the confirm).
* ``dequeue``: invoke value null; ``ok`` value = the delivered message, either the bare id ``17`` or
  ``{"id": 17, "redelivered": true}`` (the AMQP redelivered flag; a bare id means not flagged). An ok
  dequeue with a null value, or a ``fail``, means nothing was delivered. ``info`` = unknown (the consumer
  may have received a message it never recorded).
* ``drain``: the final drain after healing, ``ok`` value = list of delivered messages (same element shape as a
  dequeue value). There may be several (one per node or queue); all ok drains count.

Buckets: attempted, acknowledged (confirmed), failed, indeterminate (neither). *lost* = acknowledged and never
delivered (by a dequeue or a drain); *unexpected* = delivered, never attempted; *recovered* = indeterminate
and delivered; *fail_present* = failed yet delivered; *duplicated* = delivered more than once, split into
ids whose extra deliveries all carried the redelivered flag (at-least-once redelivery) and the rest
(``duplicated_unflagged``).

Options (``ctx.options["queue"]``): see ``QueueOptions``.

Verdict: unknown without an ok drain; False on lost, unexpected or fail_present ids (or duplicates when
``allow_duplicates`` is False); else True.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from harness.checkers.base import CheckContext, CheckerOptions, Result, Validity, merge_valid
from harness.checkers.common import (
    MAX_RANGES,
    as_id_array,
    attribute,
    compact_ranges,
    isin,
    pct,
    setdiff,
    unique_sorted,
)
from harness.checkers.loss import first_per_id, int_ids
from harness.model.history import History

__all__ = ["QueueOptions", "check_queue", "parse_delivery"]


class QueueOptions(CheckerOptions):
    """``checks.queue``: the op names, whether duplicates are allowed, and the ranges listed."""

    enqueue_f: str = "enqueue"
    dequeue_f: str = "dequeue"
    drain_f: str = "drain"
    allow_duplicates: bool = Field(default=True, description="AMQP is at-least-once")
    max_ranges: int = Field(default=MAX_RANGES, ge=0, description="id ranges listed per figure")


def parse_delivery(v: Any, where: str) -> tuple[int, bool] | None:
    """A delivered message value → (id, redelivered); None for "nothing delivered"."""
    if v is None:
        return None
    if type(v) is int:
        return v, False
    if isinstance(v, Mapping) and type(v.get("id")) is int:
        return v["id"], bool(v.get("redelivered", False))
    raise ValueError(
        f"{where}: a delivery must be an int id or {{'id': int, 'redelivered': bool}}, not {v!r}"
    )


class _Deliveries:
    __slots__ = ("flags", "ids", "times")

    def __init__(self) -> None:
        self.ids: list[np.ndarray] = []
        self.flags: list[np.ndarray] = []
        self.times: list[np.ndarray] = []

    def add(self, ids: np.ndarray, flags: np.ndarray, times: np.ndarray) -> None:
        self.ids.append(ids.astype(np.int64, copy=False))
        self.flags.append(flags.astype(bool, copy=False))
        self.times.append(times.astype(np.int64, copy=False))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.ids:
            e = np.empty(0, dtype=np.int64)
            return e, np.empty(0, dtype=bool), e
        return np.concatenate(self.ids), np.concatenate(self.flags), np.concatenate(self.times)


def _collect(history: History, dequeue_f: str, drain_f: str) -> tuple[_Deliveries, int, int, int]:
    """All deliveries (dequeues, then drain elements), the number of empty ok dequeues, of dequeued
    messages, and of ok drains."""
    out = _Deliveries()
    rows = history.rows(dequeue_f, "ok")
    plain = history.has_ival[rows]
    prow = rows[plain]
    out.add(history.ival[prow], np.zeros(len(prow), dtype=bool), history.time[prow])
    empty = 0
    ids: list[int] = []
    flags: list[bool] = []
    times: list[int] = []
    for r in rows[~plain].tolist():
        d = parse_delivery(history.objvals.get(r), f"{dequeue_f} op index {int(history.index[r])}")
        if d is None:
            empty += 1
            continue
        ids.append(d[0])
        flags.append(d[1])
        times.append(int(history.time[r]))
    out.add(np.asarray(ids, dtype=np.int64), np.asarray(flags, dtype=bool), np.asarray(times, dtype=np.int64))

    dequeued = len(prow) + len(ids)
    drains = history.rows(drain_f, "ok")
    for r in drains.tolist():
        v = history.value(r)
        where = f"{drain_f} op index {int(history.index[r])}"
        if not isinstance(v, list | tuple):
            raise ValueError(f"{where}: expected a list of deliveries, got {type(v).__name__}")
        try:
            a = as_id_array(v, where)
            f = np.zeros(len(a), dtype=bool)
        except ValueError:
            parsed = [parse_delivery(x, where) for x in v]
            pairs = [p for p in parsed if p is not None]
            a = np.asarray([p[0] for p in pairs], dtype=np.int64)
            f = np.asarray([p[1] for p in pairs], dtype=bool)
        out.add(a, f, np.full(len(a), int(history.time[r]), dtype=np.int64))
    return out, empty, dequeued, len(drains)


def check_queue(history: History, ctx: CheckContext) -> Result:
    o = ctx.options_for("queue", QueueOptions)
    enqueue_f, dequeue_f, drain_f = o.enqueue_f, o.dequeue_f, o.drain_f
    allow_dups, max_ranges = o.allow_duplicates, o.max_ranges
    events = ctx.sorted_events()

    attempted = unique_sorted(int_ids(history, history.rows(enqueue_f, "invoke"), "enqueue invoke"))
    ok_rows = history.rows(enqueue_f, "ok")
    ok_ids = int_ids(history, ok_rows, "ok enqueue")
    acked = unique_sorted(ok_ids)
    failed = setdiff(
        unique_sorted(int_ids(history, history.rows(enqueue_f, "fail"), "failed enqueue")), acked
    )
    indeterminate = setdiff(setdiff(attempted, acked), failed)

    deliveries, empty, dequeued, n_drains = _collect(history, dequeue_f, drain_f)
    ids, flags, _ = deliveries.arrays()
    figures: dict[str, Any] = {
        "attempted": len(attempted),
        "acknowledged": len(acked),
        "failed": len(failed),
        "indeterminate": len(indeterminate),
        "dequeued": dequeued,
        "empty_dequeues": empty,
        "indeterminate_dequeues": int(history.mask(dequeue_f, "info").sum()),
        "drains": n_drains,
        "drained": len(ids) - dequeued,
        "deliveries": len(ids),
        "redelivered": int(flags.sum()),
    }
    if n_drains == 0:
        return Result("unknown", figures=figures, notes=(f"no final drain (no ok {drain_f!r} op)",))

    delivered, dup_ids, dup_extra, dup_unflagged = _duplicates(ids, flags)
    lost = setdiff(acked, delivered)
    unexpected = setdiff(delivered, attempted)
    recovered = indeterminate[isin(indeterminate, delivered)]
    fail_present = failed[isin(failed, delivered)]
    lost_t = first_per_id(ok_ids, history.time[ok_rows], lost)

    figures.update(
        {
            "lost": len(lost),
            "lost_pct": pct(len(lost), len(acked)),
            "lost_ranges": compact_ranges(lost, max_ranges),
            "lost_by_event": attribute(lost_t, events),
            "unexpected": len(unexpected),
            "unexpected_ranges": compact_ranges(unexpected, max_ranges),
            "recovered": len(recovered),
            "recovered_ranges": compact_ranges(recovered, max_ranges),
            "fail_present": len(fail_present),
            "fail_present_ranges": compact_ranges(fail_present, max_ranges),
            "duplicated": len(dup_ids),
            "duplicated_ranges": compact_ranges(dup_ids, max_ranges),
            "duplicate_deliveries": dup_extra,
            "duplicated_unflagged": len(dup_unflagged),
            "duplicated_unflagged_ranges": compact_ranges(dup_unflagged, max_ranges),
        }
    )
    notes: list[str] = []
    verdicts: list[Validity] = [True]
    checks = ["lost", "unexpected", "fail_present"] + ([] if allow_dups else ["duplicated"])
    for name in checks:
        if figures[name]:
            verdicts.append(False)
            notes.append(f"{figures[name]} {name.replace('_', ' ')} message(s): {figures[name + '_ranges']}")
    if allow_dups and figures["duplicated"]:
        notes.append(f"{figures['duplicated']} message(s) delivered more than once (allowed: at-least-once)")
    return Result(merge_valid(verdicts), figures=figures, notes=tuple(notes))


def _duplicates(ids: np.ndarray, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(distinct delivered ids, ids delivered more than once, extra deliveries in total,
    duplicated ids with an extra delivery not explained by the redelivered flag)."""
    if len(ids) == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e, 0, e
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    distinct = s[starts]
    counts = np.diff(np.append(starts, len(s)))
    flagged = np.add.reduceat(flags[order].astype(np.int64), starts)
    many = counts > 1
    unflagged_extra = (counts - 1) > flagged
    return distinct, distinct[many], int((counts[many] - 1).sum()), distinct[many & unflagged_extra]
