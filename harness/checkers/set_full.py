"""The set-full checker: when did each acknowledged id become visible on each node, was any read stale, and
was anything seen and then gone? (After Jepsen's ``set-full``, read per node.)

History shape: ``add`` ops as for the ``set`` checker (integer ids, unique per attempt); reads (f in
``read_fs``: sql-set's ``scan`` during the run and its final ``read`` per node) whose ``ok`` value is every
id the node held, with ``node`` saying which node was read (null counts as one node, "*"). Ops are ordered
by their position in the history (its index order, which is time order).

Definitions, per element (an attempted id):

* It is *known* from the earlier of its ``add``'s ok completion and the completion of the first read (any
  node) that contains it. Elements never known (not acknowledged, never read) are ``unknown`` and
  otherwise ignored. Only reads invoked after the known point can tell anything by lacking it (a read
  concurrent with the add may have taken its snapshot before the insert).
* Per node, over that node's reads in invoke order (as Jepsen's set-full, one node at a time):
  *stable* on the node when some read contains it and no read lacking it was invoked after the known
  point later than the last read containing it; *lost* on the node when a read invoked after the known
  point lacks it and no later-invoked read contains it (the node ends without it: lost after it was seen
  there, or never visible there at all); *never read* on the node otherwise (no read invoked after the
  known point, and none containing it).
* A *stale read* of the element is a read invoked after the known point that lacks it while a
  later-invoked read of the same node contains it: the node had not applied it yet, or had it and
  transiently did not. ``stale_reads`` counts the reads that are stale for at least one element; an
  element is ``stale`` when it has a stale read.
* *Lost after seen* on a node: a read of the node contained it, and a read of the same node invoked
  after that read completed lacks it, whether or not it came back (``transient_losses``: it did, and it
  is lost nowhere).
* Its *visibility latency* on a node (acknowledged elements that some read of the node contains): the
  time from the add's ok completion to the invoke of the last read of the node that was invoked after the
  ack and before the first read containing it, and lacks it; 0 when no such read exists. A lower bound:
  the element was not visible on the node at some moment after that read began (an upper bound is that
  first containing read's completion). Distributions (count, p50, p95, p99, max, in ms: the element at
  rank ⌊n·q⌋ of the sorted values) per node, and per fault window: the last fault event that started at
  or before the ack ("none" before any), as the set checker attributes losses.

Overall: an element is ``lost`` when it is lost on some node, else ``stable`` when stable on some node,
else ``never_read``.

Options (``ctx.options["set-full"]``): see ``SetFullOptions``.

Verdict: unknown without any ok read or without any known element; False when an element is lost; else
True. Stale reads and transient losses are figures (``expect: {stale_reads: 0}`` bounds them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from harness.checkers.base import CheckContext, CheckerOptions, Result
from harness.checkers.common import MAX_RANGES, as_id_array, compact_ranges, event_index, unique_sorted
from harness.checkers.loss import int_ids
from harness.model.history import INVOKE, History

__all__ = ["SetFullOptions", "check_set_full", "distribution"]

_ANY_NODE = "*"
_NEVER = np.iinfo(np.int64).max
_CELLS = 20_000_000  # presence cells (reads x elements) handled at once
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


class SetFullOptions(CheckerOptions):
    """``checks.set-full``: the op names, and how many examples and ranges are listed."""

    add_f: str = "add"
    read_fs: tuple[str, ...] = Field(
        default=("scan", "read"), description="the fs of reads of the whole set (during the run, final)"
    )
    max_ranges: int = Field(default=MAX_RANGES, ge=0, description="id ranges listed per figure")
    worst: int = Field(default=8, ge=0, description="slowest (element, node) visibilities listed")


def distribution(values_ns: np.ndarray) -> dict[str, Any]:
    """count, p50, p95, p99 and max of ``values_ns`` in ms (None when empty), Jepsen's ranks."""
    n = len(values_ns)
    out: dict[str, Any] = {"count": n}
    if n == 0:
        return {**out, **{name: None for name, _ in QUANTILES}, "max": None}
    s = np.sort(np.asarray(values_ns, dtype=np.int64))
    for name, q in QUANTILES:
        out[name] = round(int(s[min(n - 1, int(np.floor(n * q)))]) / 1e6, 3)
    out["max"] = round(int(s[-1]) / 1e6, 3)
    return out


class _Reads:
    """One node's ok reads in invoke order: their invoke/completion rows, invoke times, and for each the
    sorted positions (in the element universe) of the ids it holds."""

    def __init__(self, inv: list[int], comp: list[int], inv_t: list[int], pos: list[np.ndarray]) -> None:
        order = np.argsort(np.asarray(inv, dtype=np.int64), kind="stable")
        self.inv = np.asarray(inv, dtype=np.int64)[order]
        self.comp = np.asarray(comp, dtype=np.int64)[order]
        self.inv_t = np.asarray(inv_t, dtype=np.int64)[order]
        self.pos = [pos[i] for i in order.tolist()]

    def presence(self, e0: int, e1: int) -> np.ndarray:
        """(reads x elements e0..e1-1) bool: does read r hold element e?"""
        p = np.zeros((len(self.pos), e1 - e0), dtype=bool)
        for r, ids in enumerate(self.pos):
            lo, hi = np.searchsorted(ids, (e0, e1))
            p[r, ids[lo:hi] - e0] = True
        return p


def _last_true(m: np.ndarray) -> np.ndarray:
    """Per column, the row of the last True (-1 when none)."""
    n = m.shape[0]
    if n == 0:
        return np.full(m.shape[1], -1, dtype=np.int64)
    last = n - 1 - np.argmax(m[::-1], axis=0)
    return np.where(m.any(axis=0), last, -1)


def _first_true(m: np.ndarray) -> np.ndarray:
    if m.shape[0] == 0:
        return np.full(m.shape[1], -1, dtype=np.int64)
    return np.where(m.any(axis=0), np.argmax(m, axis=0), -1)


def check_set_full(history: History, ctx: CheckContext) -> Result:
    o = ctx.options_for("set-full", SetFullOptions)
    events = ctx.sorted_events()

    attempted = unique_sorted(int_ids(history, history.rows(o.add_f, "invoke"), "add invoke"))
    ok_rows = history.rows(o.add_f, "ok")
    ok_ids = int_ids(history, ok_rows, "ok add")
    n_el = len(attempted)
    # the first ok completion per element: its row and time
    ack_row = np.full(n_el, _NEVER, dtype=np.int64)
    if len(ok_ids) and n_el:
        at = np.searchsorted(attempted, ok_ids)
        inside = at < n_el
        inside[inside] = attempted[at[inside]] == ok_ids[inside]
        np.minimum.at(ack_row, at[inside], ok_rows[inside])
    acked = ack_row != _NEVER
    ack_time = np.where(acked, history.time[np.where(acked, ack_row, 0)], 0) if n_el else ack_row

    # the reads, per node
    read_rows = history.rows(o.read_fs, "ok")
    per_node_raw: dict[str, tuple[list[int], list[int], list[int], list[np.ndarray]]] = {}
    seen_row = np.full(n_el, _NEVER, dtype=np.int64)  # the first read completion holding each element
    for row in read_rows.tolist():
        ids = unique_sorted(as_id_array(history.value(row), f"read at op index {int(history.index[row])}"))
        at = np.searchsorted(attempted, ids)
        keep = at < n_el
        keep[keep] = attempted[at[keep]] == ids[keep]
        pos = at[keep]
        np.minimum.at(seen_row, pos, row)
        inv = int(history.invoke_of[row])
        inv = row if inv < 0 or history.type[inv] != INVOKE else inv
        name = history.node_name(int(history.node[row]))
        lists = per_node_raw.setdefault(_ANY_NODE if name is None else name, ([], [], [], []))
        lists[0].append(inv)
        lists[1].append(row)
        lists[2].append(int(history.time[inv]))
        lists[3].append(pos)
    known_row = np.minimum(ack_row, seen_row)
    known = known_row != _NEVER

    figures: dict[str, Any] = {
        "attempted": n_el,
        "acknowledged": int(acked.sum()),
        "known": int(known.sum()),
        "unknown": int((~known).sum()),
        "reads": len(read_rows),
    }
    if not len(read_rows):
        return Result("unknown", figures=figures, notes=(f"no ok read ({', '.join(o.read_fs)})",))

    lost = np.zeros(n_el, dtype=bool)
    stable = np.zeros(n_el, dtype=bool)
    stale = np.zeros(n_el, dtype=bool)
    lost_seen = np.zeros(n_el, dtype=bool)
    win = event_index(ack_time, events) if n_el else np.empty(0, dtype=np.int64)
    windows = [e.id for e in events]
    per_node: dict[str, dict[str, Any]] = {}
    latency_by_window: dict[str, dict[str, Any]] = {}
    all_latencies: list[np.ndarray] = []
    worst: list[tuple[int, int, str]] = []  # (latency ns, element, node)
    for node in sorted(per_node_raw):
        reads = _Reads(*per_node_raw[node])
        n_reads = len(reads.inv)
        stale_read = np.zeros(n_reads, dtype=bool)
        node_lost = np.zeros(n_el, dtype=bool)
        node_stable = np.zeros(n_el, dtype=bool)
        node_seen_lost = np.zeros(n_el, dtype=bool)
        latency = np.full(n_el, -1, dtype=np.int64)  # ns; -1: none on this node
        chunk = max(1, _CELLS // max(1, n_reads))
        r_index = np.arange(n_reads)[:, None]
        for e0 in range(0, n_el, chunk):
            e1 = min(n_el, e0 + chunk)
            present = reads.presence(e0, e1)
            absent = ~present & known[None, e0:e1]
            after_known = absent & (reads.inv[:, None] > known_row[None, e0:e1])
            last_present = _last_true(present)
            last_absent = _last_true(after_known)
            has_present = last_present >= 0
            node_stable[e0:e1] = has_present & (last_absent < last_present)
            node_lost[e0:e1] = (last_absent >= 0) & (last_absent > last_present)
            is_stale = after_known & (r_index < last_present[None, :])
            stale_read |= is_stale.any(axis=1)
            stale[e0:e1] |= is_stale.any(axis=0)
            first_comp = np.where(present, reads.comp[:, None], _NEVER).min(axis=0, initial=_NEVER)
            node_seen_lost[e0:e1] = (absent & (reads.inv[:, None] > first_comp[None, :])).any(axis=0)
            first_present = _first_true(present)
            before_first = (
                absent & (reads.inv[:, None] > ack_row[None, e0:e1]) & (r_index < first_present[None, :])
            )
            last_missing = _last_true(before_first)
            has = has_present & acked[e0:e1]
            lat = np.where(last_missing >= 0, reads.inv_t[np.maximum(last_missing, 0)] - ack_time[e0:e1], 0)
            latency[e0:e1] = np.where(has, np.maximum(lat, 0), -1)
        lost |= node_lost
        stable |= node_stable
        lost_seen |= node_seen_lost
        has_latency = latency >= 0
        per_node[node] = {
            "reads": n_reads,
            "stable": int(node_stable.sum()),
            "lost": int(node_lost.sum()),
            "never_read": int((known & ~node_stable & ~node_lost).sum()),
            "lost_after_seen": int(node_seen_lost.sum()),
            "stale_reads": int(stale_read.sum()),
            "latency_ms": distribution(latency[has_latency]),
            "lost_ranges": compact_ranges(attempted[node_lost], o.max_ranges),
        }
        all_latencies.append(latency[has_latency])
        for w in np.unique(win[has_latency]).tolist() if has_latency.any() else []:
            key = "none" if w < 0 else windows[w]
            latency_by_window.setdefault(key, {})[node] = distribution(latency[has_latency & (win == w)])
        if o.worst and has_latency.any():
            top = np.argsort(-latency, kind="stable")[: o.worst]
            worst.extend((int(latency[i]), int(attempted[i]), node) for i in top.tolist() if latency[i] > 0)

    stable &= ~lost
    never_read = known & ~lost & ~stable
    transient = lost_seen & ~lost
    stale_reads = sum(v["stale_reads"] for v in per_node.values())
    worst.sort(key=lambda t: (-t[0], t[1], t[2]))
    order = ["none", *windows]
    figures.update(
        {
            "stable": int(stable.sum()),
            "lost": int(lost.sum()),
            "never_read": int(never_read.sum()),
            "stale": int(stale.sum()),
            "stale_reads": stale_reads,
            "lost_after_seen": int(lost_seen.sum()),
            "transient_losses": int(transient.sum()),
            "lost_ranges": compact_ranges(attempted[lost], o.max_ranges),
            "lost_after_seen_ranges": compact_ranges(attempted[lost_seen], o.max_ranges),
            "never_read_ranges": compact_ranges(attempted[never_read], o.max_ranges),
            "latency_ms": distribution(np.concatenate(all_latencies) if all_latencies else np.empty(0)),
            "latency_ms_by_window": {k: latency_by_window[k] for k in order if k in latency_by_window},
            "stale_reads_by_node": {n: v["stale_reads"] for n, v in per_node.items()},
            "per_node": per_node,
            "worst_stale": [
                {"element": e, "node": n, "latency_ms": round(t / 1e6, 3)} for t, e, n in worst[: o.worst]
            ],
        }
    )
    notes: list[str] = []
    if not known.any():
        return Result("unknown", figures=figures, notes=("no element was acknowledged or read",))
    if figures["lost"]:
        notes.append(f"{figures['lost']} element(s) lost on some node: {figures['lost_ranges']}")
    if figures["transient_losses"]:
        notes.append(f"{figures['transient_losses']} element(s) seen, then missing, then back")
    if stale_reads:
        notes.append(f"{stale_reads} stale read(s) of {figures['stale']} element(s)")
    return Result(not figures["lost"], figures=figures, notes=tuple(notes))
