"""The lag checker: how far behind were replicas, and how fast did they catch up after each heal?

Input: ``ctx.samples`` with metric ``"replication_lag_s"`` (seconds a replica is behind, computed from a
heartbeat row stamped with host wall time; all containers share the host clock). A string value (e.g.
"NULL" when replication is stopped) counts as *non-numeric*: it is left out of the statistics and never
counts as caught up. The history is not read.

Figures per node and overall: count, non_numeric, p50, p99 (linear interpolation), max. Per healed event
(``end`` not None) and node: ``catch_up_s`` = time from the heal until the first sample at or after it with
lag <= ``caught_up_s`` (default 1 s; None if never), and the highest lag seen in between.
``details["series"]``: per node, at most ``max_points`` (1000) points ``{"t": [...ns], "lag_s": [...]}``;
longer series are cut into equal-count chunks, each giving its maximum stamped with its first sample's time.

Options (``ctx.options["lag"]``): see ``LagOptions``.

Verdict: unknown without numeric samples; False when ``max_lag_s`` or ``max_catch_up_s`` is exceeded (never
catching up after a heal exceeds it); else True.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from harness.checkers.base import CheckContext, CheckerOptions, Result, Validity, merge_valid
from harness.model.history import Event, History, Sample

__all__ = ["LagOptions", "check_lag"]


class LagOptions(CheckerOptions):
    """``checks.lag``: the metric, when a replica counts as caught up, the series size and the thresholds."""

    metric: str = Field(default="replication_lag_s", description="the samples' metric")
    caught_up_s: float = Field(default=1.0, ge=0, description="a replica at most this far behind caught up")
    max_points: int = Field(default=1000, ge=1, description="points per node in details['series']")
    max_lag_s: float | None = Field(default=None, ge=0, description="highest lag allowed")
    max_catch_up_s: float | None = Field(
        default=None, ge=0, description="longest catch-up after a heal allowed"
    )


def _series_by_node(samples: list[Sample]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    by: dict[str, tuple[list[int], list[float]]] = {}
    for s in samples:
        ts, vs = by.setdefault(s.node, ([], []))
        ts.append(s.time)
        x = s.value
        vs.append(float(x) if isinstance(x, int | float) and not isinstance(x, bool) else float("nan"))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for node in sorted(by):
        t = np.asarray(by[node][0], dtype=np.int64)
        v = np.asarray(by[node][1], dtype=np.float64)
        order = np.argsort(t, kind="stable")
        out[node] = (t[order], v[order])
    return out


def _r(x: float) -> float:
    return round(float(x), 6)


def _stats(v: np.ndarray) -> dict[str, Any]:
    num = v[~np.isnan(v)]
    if len(num) == 0:
        return {"count": 0, "non_numeric": len(v), "p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(num, [50, 99])
    return {
        "count": len(num),
        "non_numeric": len(v) - len(num),
        "p50": _r(p50),
        "p99": _r(p99),
        "max": _r(num.max()),
    }


def _downsample(t: np.ndarray, v: np.ndarray, max_points: int) -> dict[str, list[Any]]:
    if len(t) <= max_points:
        return {"t": t.tolist(), "lag_s": [None if np.isnan(x) else _r(x) for x in v.tolist()]}
    bounds = np.linspace(0, len(t), max_points + 1).astype(np.int64)[:-1]
    bounds = np.unique(bounds)
    with np.errstate(invalid="ignore"):
        mx = np.fmax.reduceat(v, bounds)
    return {"t": t[bounds].tolist(), "lag_s": [None if np.isnan(x) else _r(x) for x in mx.tolist()]}


def _catch_up(ev: Event, t: np.ndarray, v: np.ndarray, threshold: float) -> dict[str, Any]:
    assert ev.end is not None
    i0 = int(np.searchsorted(t, ev.end, side="left"))
    if i0 >= len(t):
        return {"samples_after": 0, "catch_up_s": None, "max_lag_after_heal_s": None}
    after = v[i0:]
    with np.errstate(invalid="ignore"):
        ok = np.flatnonzero(after <= threshold)
    upto = after[: ok[0] + 1] if len(ok) else after
    num = upto[~np.isnan(upto)]
    return {
        "samples_after": len(after),
        "catch_up_s": _r((t[i0 + ok[0]] - ev.end) / 1e9) if len(ok) else None,
        "max_lag_after_heal_s": _r(num.max()) if len(num) else None,
    }


def check_lag(history: History, ctx: CheckContext) -> Result:
    o = ctx.options_for("lag", LagOptions)
    metric, threshold = o.metric, o.caught_up_s
    series = _series_by_node([s for s in ctx.samples if s.metric == metric])
    figures: dict[str, Any] = {"metric": metric, "nodes": list(series)}
    per_node = {node: _stats(v) for node, (_, v) in series.items()}
    if not any(st["count"] for st in per_node.values()):
        figures["per_node"] = per_node
        return Result("unknown", figures=figures, notes=(f"no numeric {metric!r} samples",))

    all_v = np.concatenate([v for _, v in series.values()])
    figures.update({"overall": _stats(all_v), "per_node": per_node, "caught_up_s": threshold})
    heals: list[dict[str, Any]] = []
    for ev in ctx.sorted_events():
        if ev.end is None:
            continue
        heals.append(
            {
                "event": ev.id,
                "name": ev.name,
                "end_ns": ev.end,
                "nodes": {node: _catch_up(ev, t, v, threshold) for node, (t, v) in series.items()},
            }
        )
    figures["heals"] = heals
    details = {"series": {node: _downsample(t, v, o.max_points) for node, (t, v) in series.items()}}

    verdicts: list[Validity] = [True]
    notes: list[str] = []
    if o.max_lag_s is not None and figures["overall"]["max"] > o.max_lag_s:
        verdicts.append(False)
        notes.append(f"max lag {figures['overall']['max']} s > max_lag_s {o.max_lag_s}")
    max_cu = o.max_catch_up_s
    if max_cu is not None:
        for h in heals:
            for node, c in h["nodes"].items():
                if c["samples_after"] == 0:
                    verdicts.append("unknown")
                    notes.append(f"{node}: no samples after heal of {h['event']}")
                elif c["catch_up_s"] is None or c["catch_up_s"] > max_cu:
                    verdicts.append(False)
                    notes.append(f"{node}: catch-up after {h['event']} {c['catch_up_s']} s > {max_cu} s")
    return Result(merge_valid(verdicts), figures=figures, details=details, notes=tuple(notes))
