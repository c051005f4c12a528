"""The availability checker: could clients write, bin by bin, and how long were the outages?

Definitions (time in bins of ``bin_ms``, default 100 ms, aligned to run start):

* A *write* is an op whose f is in ``write_fs`` (default add, enqueue, transfer, write, and
  openstack-boot's cast: a request is through when its message is). It is *pending* from its invoke
  to its completion; one never completed is pending until the last write activity.
* A bin is *offered* when some write was pending during it (bins where nobody tried to write don't count),
  or some *demand* op was: an op whose f is in ``demand_fs`` (default ``connect``, and openstack-boot's
  ``insert``, the row a request writes before its cast). A client that cannot even connect wants to
  write, so its reconnect attempts make the bins they span offered — a failover spent reconnecting is an
  outage, not idle time — but a demand op never makes a bin available, and its ``fail``/``info``
  completions count for ``time_to_detect``.
* A bin is *available* when some write completed ``ok`` in it, or a write invoked in it completed ``ok``
  within one bin length (so a normal write straddling a bin edge doesn't make the first bin look down).
* *Unavailable* = offered and not available.

Two views: *any node* (the service: some endpoint succeeded) and *per node* (the endpoint named by the
op's ``node``; null is "*"). ``availability`` = available / offered bins of the service; per node the same
over that node's writes; ``availability_all_nodes`` = the fraction of the service's offered bins in which
every node that was offered writes in the bin was available.

An *outage* is a maximal run of the service's unavailable bins (bins nobody wrote in are bridged over
when unavailable bins lie on both sides). It runs from the start of its first unavailable bin to the end of
its last. It is attributed to the latest fault event that started before the end of its first bin ("none"
if there is none; ``in_window`` says whether the fault was still in effect then). For the attributed event:

* ``time_to_detect_ns``: first write completing ``fail``/``info`` at or after the event start − event start;
* ``recovered_at_ns``: the first ``ok`` write completion after the outage;
* ``recovered_by``: "heal" if that is at or after the event's end, else "failover" (the service came back
  while the fault was still in effect); ``time_to_recover_ns`` is measured from the event end for "heal"
  and from the event start for "failover". Both are None when the service never recovered.

Options (``ctx.options["availability"]``): see ``AvailabilityOptions``.

Verdict: unknown when there were no writes; False when a threshold option is exceeded; else True.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from harness.checkers.base import CheckContext, CheckerOptions, Result, Validity, merge_valid
from harness.checkers.common import small_unique
from harness.checkers.errors import error_summary
from harness.model.history import FAIL, INFO, INVOKE, OK, Event, History

__all__ = ["DEFAULT_WRITE_FS", "AvailabilityOptions", "check_availability"]

DEFAULT_WRITE_FS = ("add", "enqueue", "transfer", "write", "cast")
DEFAULT_DEMAND_FS = ("connect", "insert")
_MAX_BINS = 50_000_000  # 58 days of 100 ms bins


class AvailabilityOptions(CheckerOptions):
    """``checks.availability``: which ops are writes, the bin length and the optional thresholds."""

    write_fs: tuple[str, ...] = Field(default=DEFAULT_WRITE_FS, description="the fs of write ops")
    demand_fs: tuple[str, ...] = Field(
        default=DEFAULT_DEMAND_FS, description="the fs of demand ops (a write_fs among them is a write)"
    )
    bin_ms: float = Field(default=100.0, ge=0.001, description="bin length, in ms")
    max_outage_s: float | None = Field(
        default=None, ge=0, description="longest outage allowed (None: a figure, not a verdict)"
    )
    min_availability: float | None = Field(
        default=None, ge=0, le=1, description="lowest availability allowed"
    )
    max_outages: int = Field(default=100, ge=0, description="outages listed in the figures")


def _runs(states: np.ndarray) -> list[tuple[int, int, int]]:
    """Run-length encoding of a small-int array: [(start, end exclusive, value)]."""
    if len(states) == 0:
        return []
    cut = np.flatnonzero(states[1:] != states[:-1]) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [len(states)]))
    return list(zip(starts.tolist(), ends.tolist(), states[starts].tolist(), strict=True))


class _Grid:
    """Per-node offered/available bins."""

    def __init__(
        self, history: History, write_fs: Sequence[str], bin_ns: int, demand_fs: Sequence[str] = ()
    ) -> None:
        h = history
        self.bin_ns = bin_ns
        wm = h.mask(write_fs)
        dm = h.mask(tuple(write_fs) + tuple(demand_fs))  # writes and demand: what makes a bin offered
        inv = np.flatnonzero(dm & (h.type == INVOKE))
        comp = np.flatnonzero(dm & (h.type != INVOKE))
        self.inv, self.comp = inv[wm[inv]], comp[wm[comp]]  # the writes alone, for the figures
        self.empty = len(self.inv) + len(self.comp) == 0
        if self.empty:
            return
        times = h.time[dm]
        t_end = int(times.max())
        self.b0 = int(times.min()) // bin_ns
        nb = t_end // bin_ns - self.b0 + 1
        if nb > _MAX_BINS:
            raise ValueError(f"{nb} bins of {bin_ns} ns: time span too large")
        self.nb = nb

        comp_of = h.completion_of[inv]
        inv_of = h.invoke_of[comp]
        t_inv = h.time[inv]
        t_done = np.where(comp_of >= 0, h.time[np.maximum(comp_of, 0)], t_end)
        orphan = comp[inv_of < 0]  # completions whose invoke is not in the history

        # node of each write: the invoke's (completions take their invoke's when paired)
        comp_node = np.where(inv_of >= 0, h.node[np.maximum(inv_of, 0)], h.node[comp])
        codes = small_unique(np.concatenate((h.node[inv], comp_node)))
        self.names = [("*" if c < 0 else h.node_names[c]) for c in codes.tolist()]
        order = np.argsort(self.names, kind="stable")
        codes, self.names = codes[order], [self.names[i] for i in order]
        lookup = np.full(len(h.node_names) + 1, -1, dtype=np.int64)
        lookup[codes + 1] = np.arange(len(codes))
        k = len(codes)

        def b(t: np.ndarray) -> np.ndarray:
            return t // bin_ns - self.b0

        # offered: coverage of [bin(invoke), bin(done)] per node, by a difference array
        width = nb + 1
        s_node = np.concatenate((lookup[h.node[inv] + 1], lookup[h.node[orphan] + 1]))
        s_bin = np.concatenate((b(t_inv), b(h.time[orphan])))
        e_bin = np.concatenate((b(t_done), b(h.time[orphan]))) + 1
        diff = np.bincount(s_node * width + s_bin, minlength=k * width)
        diff -= np.bincount(s_node * width + e_bin, minlength=k * width)
        self.offered: np.ndarray = np.cumsum(diff.reshape(k, width), axis=1)[:, :nb] > 0

        # available: ok completion bins, plus the invoke bin of a fast ok
        ok_mask = (h.type[comp] == OK) & wm[comp]  # only a write makes a bin available
        ok = comp[ok_mask]
        ok_inv = h.invoke_of[ok]
        ok_node = lookup[comp_node[ok_mask] + 1]
        t_ok = h.time[ok]
        fast = (ok_inv >= 0) & (t_ok - h.time[np.maximum(ok_inv, 0)] <= bin_ns)
        a_idx = np.concatenate((ok_node * nb + b(t_ok), ok_node[fast] * nb + b(h.time[ok_inv[fast]])))
        self.available: np.ndarray = (np.bincount(a_idx, minlength=k * nb) > 0).reshape(k, nb)
        self.t_ok = np.sort(t_ok)
        bad = comp[(h.type[comp] == FAIL) | (h.type[comp] == INFO)]
        self.t_bad = np.sort(h.time[bad])
        self.offered_any: np.ndarray = np.any(self.offered, axis=0)
        self.available_any: np.ndarray = np.any(self.available, axis=0)
        self.all_nodes_ok: np.ndarray = self.offered_any & ~(self.offered & ~self.available).any(axis=0)

    def bin_start(self, i: int) -> int:
        return (self.b0 + i) * self.bin_ns


def _first_at_or_after(sorted_times: np.ndarray, t: int) -> int | None:
    i = int(np.searchsorted(sorted_times, t, side="left"))
    return int(sorted_times[i]) if i < len(sorted_times) else None


def _outages(g: _Grid) -> list[tuple[int, int, int]]:
    """(first bin, last bin, unavailable bins) of each outage."""
    offered = np.flatnonzero(g.offered_any)
    down = ~g.available_any[offered]
    out = []
    for s, e, v in _runs(down.astype(np.int8)):
        if v:
            out.append((int(offered[s]), int(offered[e - 1]), e - s))
    return out


def _timeline(offered: np.ndarray, available: np.ndarray, g: _Grid) -> list[list[Any]]:
    state = np.where(available, 2, np.where(offered, 1, 0)).astype(np.int8)
    names = ("idle", "down", "up")
    return [[g.bin_start(s), g.bin_start(e), names[v]] for s, e, v in _runs(state)]


def check_availability(history: History, ctx: CheckContext) -> Result:
    o = ctx.options_for("availability", AvailabilityOptions)
    write_fs, max_outages = o.write_fs, o.max_outages
    demand_fs = tuple(f for f in o.demand_fs if f not in write_fs)
    bin_ns = round(o.bin_ms * 1_000_000)
    events = ctx.sorted_events()

    g = _Grid(history, write_fs, bin_ns, demand_fs)
    ctype = history.type[g.comp]
    figures: dict[str, Any] = {
        "write_fs": list(write_fs),
        "demand_fs": list(demand_fs),
        "bin_ms": bin_ns / 1e6,
        "writes": len(g.inv),
        "writes_ok": int((ctype == OK).sum()),
        "writes_failed": int((ctype == FAIL).sum()),
        "writes_indeterminate": int((ctype == INFO).sum()),
        # how the failed and indeterminate writes ended, by class (definite aborts by MySQL code…)
        **error_summary(history, write_fs),
    }
    if g.empty:
        return Result(
            "unknown", figures=figures, notes=(f"no writes ({', '.join(write_fs)}) in the history",)
        )

    offered_n = int(g.offered_any.sum())
    avail_n = int(g.available_any.sum())
    per_node = {
        name: {
            "bins_offered": int(g.offered[i].sum()),
            "bins_available": int(g.available[i].sum()),
            "availability": _frac(int(g.available[i].sum()), int(g.offered[i].sum())),
        }
        for i, name in enumerate(g.names)
    }

    starts = np.fromiter((e.start for e in events), dtype=np.int64, count=len(events))
    outages: list[dict[str, Any]] = []
    per_event: dict[int, dict[str, Any]] = {}
    for first, last, n_down in _outages(g):
        start, end = g.bin_start(first), g.bin_start(last + 1)
        ei = int(np.searchsorted(starts, start + bin_ns, side="left")) - 1 if len(starts) else -1
        ev = events[ei] if ei >= 0 else None
        rec_at = _first_at_or_after(g.t_ok, end)
        outage = {
            "start_ns": start,
            "end_ns": end,
            "duration_ns": end - start,
            "duration_s": round((end - start) / 1e9, 6),
            "unavailable_bins": n_down,
            "event": ev.id if ev else "none",
            "recovered_at_ns": rec_at,
        }
        outage.update(_event_figures(ev, start, rec_at, g, bin_ns))
        outages.append(outage)
        if ev is not None:
            pe = per_event.setdefault(ei, {"outages": 0, "unavailable_ns": 0})
            pe["outages"] += 1
            pe["unavailable_ns"] += n_down * bin_ns

    longest = max((x["duration_ns"] for x in outages), default=0)
    figures.update(
        {
            "bins_offered": offered_n,
            "bins_available": avail_n,
            "availability": _frac(avail_n, offered_n),
            "availability_all_nodes": _frac(int(g.all_nodes_ok.sum()), offered_n),
            "unavailable_s": round((offered_n - avail_n) * bin_ns / 1e9, 6),
            "outage_count": len(outages),
            "longest_outage_s": round(longest / 1e9, 6),
            "outages": outages[:max_outages],
            "per_node": per_node,
            "events": [_event_summary(events[i], per_event.get(i), g) for i in range(len(events))],
        }
    )
    details = {
        "timeline": {
            "any": _timeline(g.offered_any, g.available_any, g),
            **{name: _timeline(g.offered[i], g.available[i], g) for i, name in enumerate(g.names)},
        }
    }

    verdicts: list[Validity] = [True]
    notes: list[str] = []
    if o.max_outage_s is not None and longest > o.max_outage_s * 1e9:
        verdicts.append(False)
        notes.append(f"longest outage {longest / 1e9:.3f} s > max_outage_s {o.max_outage_s}")
    if o.min_availability is not None and figures["availability"] < o.min_availability:
        verdicts.append(False)
        notes.append(f"availability {figures['availability']:.4f} < min_availability {o.min_availability}")
    if len(outages) > max_outages:
        notes.append(f"{len(outages)} outages, first {max_outages} listed")
    return Result(merge_valid(verdicts), figures=figures, details=details, notes=tuple(notes))


def _frac(a: int, b: int) -> float:
    return round(a / b, 6) if b else 0.0


def _event_figures(ev: Event | None, start: int, rec_at: int | None, g: _Grid, bin_ns: int) -> dict[str, Any]:
    if ev is None:
        return {
            "in_window": False,
            "time_to_detect_ns": None,
            "recovered_by": None,
            "time_to_recover_ns": None,
        }
    in_window = ev.end is None or start < ev.end + bin_ns
    det = _first_at_or_after(g.t_bad, ev.start)
    by: str | None = None
    ttr: int | None = None
    if rec_at is not None:
        if ev.end is not None and rec_at >= ev.end:
            by, ttr = "heal", rec_at - ev.end
        else:
            by, ttr = "failover", rec_at - ev.start
    return {
        "in_window": in_window,
        "time_to_detect_ns": None if det is None else det - ev.start,
        "recovered_by": by,
        "time_to_recover_ns": ttr,
    }


def _event_summary(ev: Event, agg: dict[str, Any] | None, g: _Grid) -> dict[str, Any]:
    det = _first_at_or_after(g.t_bad, ev.start)
    return {
        "id": ev.id,
        "name": ev.name,
        "start_ns": ev.start,
        "end_ns": ev.end,
        "outages": agg["outages"] if agg else 0,
        "unavailable_s": round(agg["unavailable_ns"] / 1e9, 6) if agg else 0.0,
        "time_to_detect_ns": None if det is None else det - ev.start,
    }
