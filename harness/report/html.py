"""``report.html``: one self-contained page per run directory, for people (``write_report``).

What it shows, top to bottom: the verdict and the headline figures (each guarantee with its bound, when
the scenario states some); one time axis shared by every plot, with every fault window shaded and labelled
(harness actions hatched in another colour); ops per second by outcome and by node; each op's latency
(a point per op, coloured by outcome; beyond ``MAX_POINTS`` a sample of them is drawn, for display only:
every figure is computed from every op); write availability per node and overall with the outages;
replication lag per node; membership over time (whatever states the probes recorded: Galera's primary
component and node states, RabbitMQ's partitions and queue leaders, MMM's roles) and the other probe
figures; then tables: every figure of every check, the lost/duplicated/unexpected elements with the fault
window each falls in, the faults, the topology and scenario as run, the seed, the image, and relative
links to ``logs/*.log`` and ``harness.log``.

The page fetches nothing: styles, the small script (a time cursor across the plots) and the SVG plots are
inline, so it opens offline and can be mailed or archived as one file. ``junit.xml`` is written beside it,
and the history's columnar cache (``harness.model.history.oplog.write_history_cache``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from harness.checkers.base import Result
from harness.model.history import INVOKE, OK, TYPES, Event, History, Sample
from harness.model.history.oplog import write_history_cache
from harness.report.svg import Figure
from harness.stored_run import StoredRun, load_stored_run

__all__ = [
    "MAX_POINTS",
    "build_report",
    "event_label",
    "headline",
    "write_report",
]

log = logging.getLogger(__name__)

MAX_POINTS = 30_000  # latency points drawn; more ops are sampled for display (figures use every op)
MAX_SERIES_POINTS = 2_000  # per node and metric
MAX_ELEMENTS = 500  # rows per kind in the elements table
LAG_METRIC = "replication_lag_s"
ELEMENT_KINDS = ("lost", "duplicated", "unexpected", "fail_present", "duplicated_unflagged", "recovered")
WRITE_FS = ("add", "enqueue", "transfer", "write")
GOOD_STATES = ("Primary", "Synced", "ONLINE", "Yes", "running", "writer", "writer,reader", "reader", "0")
BAD_STATES = ("non-Primary", "Disconnected", "unreachable", "No", "NULL", "REPLICATION_FAIL", "HARD_OFFLINE",
              "monitor unreachable", "none", "down")  # fmt: skip
NS = 1e9


# -- entry points -----------------------------------------------------------------------------------------
def write_report(out: Path, result: Result, stored: StoredRun | None = None) -> Path:
    """Write ``report.html`` and ``junit.xml`` into the run directory ``out`` for its checked ``result``
    (``harness.runner.check_report``; ``stored``: the directory as that check read it, else read again);
    return the report's path. Also leaves the history's columnar cache
    (``history.columns.npz``) there, so that checking or reporting the run again need not decode its
    history.jsonl (the cache is used only while that file is unchanged)."""
    from harness.report.junit import write_junit

    out = Path(out)
    if stored is None:
        stored = load_stored_run(out)
    page = out / "report.html"
    write_junit(out / "junit.xml", result, stored)
    try:
        text = build_report(stored, result)
    except Exception as exc:  # a report bug must not sink a finished run: say so in the page and the log
        log.exception(f"report.html of {out}: could not draw the report")
        text = _fallback_page(result, f"{type(exc).__name__}: {exc}")
    page.write_text(text, encoding="utf-8")
    with contextlib.suppress(OSError):  # a cache is a convenience: a read-only directory goes without
        write_history_cache(out / "history.jsonl")
    return page


def _fallback_page(result: Result, error: str) -> str:
    checks = "".join(
        f"<li>{_e(name)}: {_verdict(child.valid)}</li>" for name, child in result.children.items()
    )
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>report</title><style>{CSS}</style>"
            f"</head><body><h1>Verdict {_verdict(result.valid)}</h1><ul>{checks}</ul><p class=bad>The report "
            f"could not be drawn: <code>{_e(error)}</code> (see harness.log; result.json holds every figure)."
            "</p></body></html>\n")  # fmt: skip


def build_report(stored: StoredRun, result: Result) -> str:
    """The page's HTML text."""
    return _Page(stored, result).render()


# -- small helpers ------------------------------------------------------------------------------------------
def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _target(ev: Event) -> str:
    return ev.target if isinstance(ev.target, str) else ",".join(ev.target)


def is_harness_action(ev: Event) -> bool:
    return ev.detail.get("by") == "harness"


def event_label(ev: Event) -> str:
    """What a fault was, in a few words: ``partition isolate: [n1] | [n2,n3]``, ``link latency on n3 (300
    ms)``, ``kill n2 (SIGKILL)``, ``harness: full-cluster-recovery on n2``."""
    d = ev.detail
    target = _target(ev)
    if is_harness_action(ev):
        return f"harness: {ev.name} on {target}"
    if ev.name == "partition":
        shape = d.get("shape")
        return f"partition {shape}: {target}" if shape else f"partition {target}"
    if ev.name == "link":
        kind = d.get("kind", "")
        raw = d.get("spec")
        spec: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        amount = next((f"{spec[k]} {unit}" for k, unit in (("latency_ms", "ms"), ("rate_kbps", "KB/s"),
                       ("timeout_ms", "ms"), ("delay_ms", "ms"), ("bytes", "B")) if k in spec), "")  # fmt: skip
        return f"link {kind} on {target}" + (f" ({amount})" if amount else "")
    extra = d.get("signal") or ("freezer" if d.get("freezer") else "")
    return f"{ev.name} {target}" + (f" ({extra})" if extra else "")


def _event_class(ev: Event) -> str:
    if is_harness_action(ev):
        return "ev-harness"
    if ev.name == "partition":
        return "ev-partition"
    if ev.name == "link":
        return "ev-link"
    return "ev-process"


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "), default=str)


def _s(ns: float | None) -> str:
    return "–" if ns is None else f"{ns / NS:.3f} s"


def _verdict(valid: object) -> str:
    word, cls = {True: ("valid", "ok"), False: ("INVALID", "bad")}.get(valid, ("unknown", "unk"))  # type: ignore[call-overload]
    return f'<span class="verdict {cls}">{word}</span>'


def _flatten(figures: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Every figure as (dotted name, value); dicts are opened, lists kept whole."""
    out: list[tuple[str, Any]] = []
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


def parse_ranges(text: str, limit: int) -> tuple[list[int], bool]:
    """The ids of a checker's compact ranges ("1-5,9,... (+3 more)"), at most ``limit``; and whether some
    were left out (by the checker or here)."""
    ids: list[int] = []
    cut = "more)" in text
    for part in text.split(","):
        m = re.fullmatch(r"\s*(-?\d+)(?:-(-?\d+))?\s*", part)
        if not m:
            continue
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        for i in range(lo, hi + 1):
            if len(ids) >= limit:
                return ids, True
            ids.append(i)
    return ids, cut


def headline(result: Result) -> list[tuple[str, str, Any, str]]:
    """The figures a reader wants first, as (label, check, value, css class): lost, duplicated, unexpected,
    availability, longest outage, time to recover, p99 lag, differing tables; those the run has."""
    ch = result.children
    rows: list[tuple[str, str, Any, str]] = []
    for check in ("set", "queue", "bank", "counter"):
        figs = ch[check].figures if check in ch else {}
        for name in ("lost", "duplicated", "unexpected", "fail_present", "wrong_total_reads", "lost_updates"):
            if name in figs and isinstance(figs[name], int | float):
                rows.append((name.replace("_", " "), check, figs[name], "bad" if figs[name] else "ok"))
    if "availability" in ch:
        f = ch["availability"].figures
        if "availability" in f:
            rows.append(("availability", "availability", f"{100 * f['availability']:.2f} %", ""))
            rows.append(("longest outage", "availability", f"{f.get('longest_outage_s', 0):.2f} s", ""))
            ttr = recovery_s(f)
            if ttr is not None:
                text = "never" if math.isinf(ttr) else f"{ttr:.2f} s"
                rows.append(("time to recover", "availability", text, "bad" if math.isinf(ttr) else ""))
    if "lag" in ch:
        overall = ch["lag"].figures.get("overall") or {}
        if overall.get("p99") is not None:
            rows.append(("p99 lag", "lag", f"{overall['p99']:.3g} s", ""))
    if "divergence" in ch and "differing" in ch["divergence"].figures:
        differing = ch["divergence"].figures["differing"]
        rows.append(("tables differing", "divergence", len(differing), "bad" if differing else "ok"))
    return rows


def recovery_s(availability_figures: Mapping[str, Any]) -> float | None:
    """The slowest recovery from a fault, in seconds, over the outages attributed to one (as the
    ``time_to_recover_s`` guarantee reads it): inf when one never recovered, None when no outage is
    attributed to a fault."""
    worst: float | None = None
    for o in availability_figures.get("outages") or []:
        if not isinstance(o, Mapping) or o.get("event", "none") == "none":
            continue
        ttr = o.get("time_to_recover_ns")
        worst = max(worst or 0.0, math.inf if ttr is None else ttr / NS)
    return worst


def guarantee_bounds(result: Result) -> tuple[object, list[Mapping[str, Any]]] | None:
    """(verdict, bounds) of the result's ``guarantees`` child, None when the scenario states none."""
    g = result.children.get("guarantees")
    if g is None:
        return None
    bounds = g.details.get("bounds") if isinstance(g.details, Mapping) else None
    return g.valid, [b for b in bounds or [] if isinstance(b, Mapping)]


def bound_text(b: Mapping[str, Any]) -> str:
    where = f"{b.get('check')}." if b.get("check") else ""
    return f"{where}{b.get('figure', b.get('name', '?'))} {b.get('op', '')} {_fmt(b.get('bound'))}"


def _nice_bin(span_s: float, bins: int = 240) -> float:
    raw = max(span_s / bins, 0.5)
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * 0.999)


def _chunk_max(t: np.ndarray, v: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``cap`` points: equal-count chunks, each its maximum at its first time (display only)."""
    if len(t) <= cap:
        return t, v
    bounds = np.unique(np.linspace(0, len(t), cap + 1).astype(np.int64)[:-1])
    with np.errstate(invalid="ignore"):
        mx = np.fmax.reduceat(v, bounds)
    return t[bounds], mx


# -- the page -------------------------------------------------------------------------------------------------
class _Page:
    def __init__(self, stored: StoredRun, result: Result) -> None:
        self.stored = stored
        self.result = result
        self.h: History = stored.history
        self.events = list(stored.events)
        self.dir = stored.directory
        self.meta = self._meta()
        ends = [float(self.h.time.max()) if len(self.h) else 0.0]
        ends += [float(e.end if e.end is not None else e.start) for e in self.events]
        ends += [float(max((s.time for s in stored.samples), default=0))]
        self.t1 = max(ends) / NS * 1.01 + 0.5
        self.t0 = 0.0

    def _meta(self) -> dict[str, Any]:
        path = self.dir / "meta.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def figure(self, id: str, title: str, **kw: Any) -> Figure:
        return Figure(id=id, title=title, x0=self.t0, x1=self.t1, **kw)

    def shade(self, fig: Figure) -> Figure:
        """Every fault window as a band on ``fig``; a harness action is hatched."""
        for ev in self.events:
            end = ev.end if ev.end is not None else self.t1 * NS
            fig.band(ev.start / NS, end / NS, f"band {_event_class(ev)}", f"{event_label(ev)}: "
                     f"{ev.start / NS:.1f}–{'never healed' if ev.end is None else f'{end / NS:.1f}'} s",
                     data=ev.id)  # fmt: skip
        return fig

    # -- sections
    def render(self) -> str:
        scenario = self.stored.scenario_doc.get("name", "?")
        topology = self.stored.topology_doc.get("name", "?")
        run_id = self.meta.get("run_id") or self.dir.name
        plots = [self.faults_plot(), *self.ops_plots(), self.latency_plot(), self.availability_plot(),
                 self.lag_plot(), *self.membership_plots()]  # fmt: skip
        body = [
            f"<header><h1>{_e(scenario)} on {_e(topology)} <small>run {_e(run_id)}</small></h1>",
            f"<p class=lead>{_verdict(self.result.valid)} {self.check_badges()}</p></header>",
            self.headline_section(),
            self.guarantees_section(),
            '<section id="timeline"><h2>Timeline</h2><p class=note>Seconds since the run started. '
            "Shaded: fault windows (blue partition, orange link, red process; hatched purple: the harness "
            "acting on the cluster itself). Hover a plot for the time across all of them.</p>"
            '<div id="readout" class="readout">t = –</div>',
            *plots,
            "</section>",
            self.checks_section(),
            self.elements_section(),
            self.outages_section(),
            self.events_section(),
            self.run_section(),
        ]
        title = f"{scenario} on {topology} — {run_id}"
        return (
            "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head>"
            f'<body data-verdict="{_e(self.result.valid)}">' + "\n".join(body) + f"<script>{SCRIPT}</script>"
            "</body></html>\n"
        )

    def check_badges(self) -> str:
        return " ".join(f'<a class="badge" href="#check-{_e(name)}">{_e(name)} {_verdict(child.valid)}</a>'
                        for name, child in self.result.children.items())  # fmt: skip

    def headline_section(self) -> str:
        rows = headline(self.result)
        if not rows:
            return ""
        cells = "".join(f'<div class="fig {cls}"><div class=v>{_e(_fmt(v))}</div><div class=k>{_e(label)} '
                        f"<small>{_e(check)}</small></div></div>" for label, check, v, cls in rows)  # fmt: skip
        return f'<section id="headline"><div class="figs">{cells}</div></section>'

    def guarantees_section(self) -> str:
        found = guarantee_bounds(self.result)
        if found is None:
            return ""
        valid, bounds = found
        held = sum(1 for b in bounds if b.get("passed") is True)
        rows = "".join(
            f"<tr class={'ok' if b.get('passed') is True else 'bad' if b.get('passed') is False else 'unk'}>"
            f"<td>{_e(b.get('name', ''))}</td><td><code>{_e(bound_text(b))}</code></td>"
            f"<td class=num>{_e(_fmt(b.get('value')))}</td>"
            f"<td>{_verdict(b.get('passed') if b.get('passed') in (True, False) else 'unknown')}</td></tr>"
            for b in bounds
        )
        return (f'<section id="guarantees"><h2>Guarantees {_verdict(valid)} <small>{held} of {len(bounds)} '
                f"held</small></h2><table><tr><th>guarantee</th><th>bound</th><th>value</th><th>verdict</th>"
                f"</tr>{rows}</table></section>")  # fmt: skip

    # -- plots
    def faults_plot(self) -> str:
        if not self.events:
            fig = self.figure("plot-faults", "Faults", lanes=["no fault"], height=26)
            return fig.render()
        lanes = [
            ("harness: " if is_harness_action(e) else "") + f"{e.name} {_target(e)}"[:22] for e in self.events
        ]
        fig = self.figure("plot-faults", "Faults and harness actions", lanes=lanes)
        for i, ev in enumerate(self.events):
            end = ev.end if ev.end is not None else self.t1 * NS
            healed = "never healed" if ev.end is None else f"healed at {ev.end / NS:.1f} s"
            fig.segment(i, ev.start / NS, end / NS, _event_class(ev),
                        f"{event_label(ev)} via {ev.mechanism}: from {ev.start / NS:.1f} s, {healed}",
                        label=event_label(ev))  # fmt: skip
            if is_harness_action(ev):
                fig.marker(ev.start / NS, "mark-harness", f"{event_label(ev)} starts")
        for cls, label in (("ev-partition", "partition"), ("ev-link", "link fault"),
                           ("ev-process", "kill / pause / stop"), ("ev-harness", "harness action")):  # fmt: skip
            if any(_event_class(e) == cls for e in self.events):
                fig.legend(cls, label)
        return fig.render()

    def ops_plots(self) -> list[str]:
        h = self.h
        comp = np.flatnonzero(h.type != INVOKE)
        width = _nice_bin(self.t1 - self.t0)
        nb = math.ceil((self.t1 - self.t0) / width) + 1
        centers = (np.arange(nb) + 0.5) * width
        bins = (h.time[comp] / (width * NS)).astype(np.int64).clip(0, nb - 1)
        by_type = {}
        for code in (1, 2, 3):
            m = h.type[comp] == code
            by_type[TYPES[code]] = np.bincount(bins[m], minlength=nb) / width
        top = max((float(v.max()) for v in by_type.values() if len(v)), default=1.0)
        cap = f"completions per second, bins of {width:g} s"
        a = self.shade(self.figure("plot-ops-outcome", "Ops per second by outcome", y=(0, top * 1.1 or 1),
                                   y_label="ops/s", caption=cap))  # fmt: skip
        for name, rate in by_type.items():
            a.line(centers.tolist(), rate.tolist(), f"c-{name}", f"{name} ({round(rate.sum() * width):,})",
                   step=True)  # fmt: skip
        node_codes = h.node[comp]
        names = sorted({("*" if c < 0 else h.node_names[c]) for c in np.unique(node_codes).tolist()})
        per_node = {}
        for c in np.unique(node_codes).tolist():
            per_node["*" if c < 0 else h.node_names[c]] = (
                np.bincount(bins[node_codes == c], minlength=nb) / width
            )
        top = max((float(v.max()) for v in per_node.values() if len(v)), default=1.0)
        b = self.shade(self.figure("plot-ops-node", "Ops per second by node", y=(0, top * 1.1 or 1),
                                   y_label="ops/s", caption=cap))  # fmt: skip
        for i, node in enumerate(names):
            b.line(centers.tolist(), per_node[node].tolist(), f"c-node{i % 8}", node, step=True)
        return [a.render(), b.render()]

    def latency_plot(self) -> str:
        h = self.h
        comp = np.flatnonzero((h.type != INVOKE) & (h.invoke_of >= 0))
        inv = h.invoke_of[comp]
        lat_ms = (h.time[comp] - h.time[inv]) / 1e6
        never = int(((h.type == INVOKE) & (h.completion_of < 0)).sum())
        total = len(comp)
        if total == 0:
            return self.empty("plot-latency", "Latency of each op", "no completed ops")
        shown = _display_sample(h.type[comp], MAX_POINTS)
        caption = (f"every op ({total:,})" if len(shown) == total else
                   f"showing {len(shown):,} of {total:,} ops (display only: every figure uses every op)")  # fmt: skip
        if never:
            caption += f"; {never:,} never completed"
        positive = lat_ms[lat_ms > 0]
        lo = float(positive.min()) if len(positive) else 0.01
        hi = float(lat_ms.max()) if total else 1.0
        fig = self.shade(self.figure("plot-latency", "Latency of each op (by invoke time)", height=190,
                                     y=(lo / 1.5, hi * 1.5), log=True, y_label="ms", caption=caption))  # fmt: skip
        t_inv = h.time[inv] / NS
        for code in (1, 2, 3):
            sel = shown[h.type[comp][shown] == code]
            name = TYPES[code]
            fig.points(t_inv[sel], np.maximum(lat_ms[sel], lo), f"c-{name}",
                       f"{name} ({int((h.type[comp] == code).sum()):,})")  # fmt: skip
        return fig.render()

    def availability_plot(self) -> str:
        child = self.result.children.get("availability")
        timeline = child.details.get("timeline") if child is not None else None
        if not timeline:
            why = "no availability check in this run" if child is None else "no writes to judge"
            return self.empty("plot-availability", "Write availability", why)
        lanes = ["overall" if k == "any" else k for k in timeline]
        f = child.figures if child is not None else {}
        cap = (f"availability {100 * f.get('availability', 0):.2f} %, {f.get('outage_count', 0)} outage(s), "
               f"longest {f.get('longest_outage_s', 0):.2f} s; bins of {f.get('bin_ms', 100):g} ms")  # fmt: skip
        fig = self.shade(self.figure("plot-availability", "Write availability (overall and per node)",
                                     lanes=lanes, caption=cap))  # fmt: skip
        for o in f.get("outages") or []:
            fig.band(o["start_ns"] / NS, o["end_ns"] / NS, "band outage",
                     f"outage {o['duration_s']:.2f} s, attributed to {o.get('event')}, recovered by "
                     f"{o.get('recovered_by') or '–'}")  # fmt: skip
        for i, key in enumerate(timeline):
            for start, end, state in timeline[key]:
                if state != "idle":
                    fig.segment(i, start / NS, end / NS, f"st-{state}", f"{lanes[i]} {state} "
                                f"{start / NS:.1f}–{end / NS:.1f} s")  # fmt: skip
        fig.legend("st-up", "writes succeed")
        fig.legend("st-down", "writes offered, none succeed")
        fig.legend("outage", "outage")
        return fig.render()

    def _series(self, metric: str) -> dict[str, tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]]:
        """Per node: times (s), numeric values (NaN for strings), and the string samples."""
        by: dict[str, tuple[list[float], list[float], list[tuple[int, str]]]] = {}
        for s in self.samples_of(metric):
            ts, vs, strs = by.setdefault(s.node, ([], [], []))
            ts.append(s.time / NS)
            if isinstance(s.value, str):
                vs.append(math.nan)
                strs.append((s.time, s.value))
            else:
                vs.append(float(s.value))
        return {
            n: (np.asarray(t), np.asarray(v, dtype=float), strs) for n, (t, v, strs) in sorted(by.items())
        }

    def samples_of(self, metric: str) -> list[Sample]:
        return self._by_metric.get(metric, [])

    @property
    def _by_metric(self) -> dict[str, list[Sample]]:
        cached = getattr(self, "_metric_cache", None)
        if cached is None:
            cached = {}
            for s in self.stored.samples:
                cached.setdefault(s.metric, []).append(s)
            self._metric_cache = cached
        return cached

    def lag_plot(self) -> str:
        lag = self.result.children.get("lag")
        metric = str(lag.figures.get("metric", LAG_METRIC)) if lag is not None else LAG_METRIC
        series = self._series(metric)
        if not series:
            return self.empty("plot-lag", "Replication lag", f"no {metric} samples in this run")
        top = max((float(np.nanmax(v)) for _, v, _ in series.values() if np.isfinite(v).any()), default=1.0)
        strings = sum(len(s) for _, _, s in series.values())
        cap = f"{metric} per node" + (
            f"; {strings:,} non-numeric samples marked at the top" if strings else ""
        )
        fig = self.shade(self.figure("plot-lag", "Replication lag per node", y=(0, top * 1.1 or 1),
                                     y_label="s", caption=cap))  # fmt: skip
        for i, (node, (t, v, strs)) in enumerate(series.items()):
            tt, vv = _chunk_max(t, v, MAX_SERIES_POINTS)
            fig.line(tt.tolist(), [None if math.isnan(x) else x for x in vv.tolist()], f"c-node{i % 8}", node)
            if strs:
                shown = strs[:: max(len(strs) // MAX_SERIES_POINTS, 1)]
                fig.points([ts / NS for ts, _ in shown], [top * 1.09] * len(shown), f"c-node{i % 8}")
        return fig.render()

    def membership_plots(self) -> list[str]:
        """State lanes for string-valued probe metrics (membership, roles, leaders) and a step plot for
        each other numeric metric."""
        lag = self.result.children.get("lag")
        lag_metric = str(lag.figures.get("metric", LAG_METRIC)) if lag is not None else LAG_METRIC
        metrics = [m for m in self._by_metric if m != lag_metric]
        if not metrics:
            return [self.empty("plot-membership", "Membership over time", "no probe samples in this run")]
        states = [m for m in metrics if any(isinstance(s.value, str) for s in self._by_metric[m])]
        numeric = [m for m in metrics if m not in states]
        out: list[str] = []
        if states:
            out.append(self.state_plot(sorted(states)))
        for m in sorted(numeric):
            out.append(self.numeric_plot(m))
        return out

    def state_plot(self, metrics: list[str]) -> str:
        lanes: list[tuple[str, str]] = []
        for m in metrics:
            for node in sorted({s.node for s in self._by_metric[m]}):
                lanes.append((m, node))
        labels = [f"{node} {_short_metric(m)}" for m, node in lanes]
        fig = self.shade(self.figure("plot-membership", "Membership and roles over time", lanes=labels,
                                     caption="each node's own view, as its probe read it"))  # fmt: skip
        colours: dict[str, str] = {}
        for i, (m, node) in enumerate(lanes):
            samples = sorted((s for s in self._by_metric[m] if s.node == node), key=lambda s: s.time)
            runs = _runs([(s.time, _state(s.value)) for s in samples], self.t1 * NS)
            for start, end, value in runs:
                cls = colours.setdefault(value, _state_class(value, len(colours)))
                fig.segment(i, start / NS, end / NS, cls, f"{node} {m} = {value}: {start / NS:.1f}–{end / NS:.1f} s",
                            label=value)  # fmt: skip
        for value, cls in colours.items():
            fig.legend(cls, value)
        return fig.render()

    def numeric_plot(self, metric: str) -> str:
        series = self._series(metric)
        finite = [float(np.nanmax(v)) for _, v, _ in series.values() if np.isfinite(v).any()]
        lows = [float(np.nanmin(v)) for _, v, _ in series.values() if np.isfinite(v).any()]
        lo, hi = (min(lows), max(finite)) if finite else (0.0, 1.0)
        lo = min(lo, 0.0)
        fig = self.shade(self.figure(f"plot-metric-{_slug(metric)}", metric, height=110,
                                     y=(lo, hi + max((hi - lo) * 0.1, 0.5)), caption="per node, probe samples"))  # fmt: skip
        for i, (node, (t, v, _)) in enumerate(series.items()):
            tt, vv = _chunk_max(t, v, MAX_SERIES_POINTS)
            fig.line(tt.tolist(), [None if math.isnan(x) else x for x in vv.tolist()], f"c-node{i % 8}", node,
                     step=True)  # fmt: skip
        return fig.render()

    def empty(self, id: str, title: str, why: str) -> str:
        return (f'<figure class="plot empty" id="{_e(id)}" data-plot="{_e(id)}" data-empty="1">'
                f"<figcaption>{_e(title)}</figcaption><p class=note>{_e(why)}</p></figure>")  # fmt: skip

    # -- tables
    def checks_section(self) -> str:
        parts = ['<section id="checks"><h2>Checks and every figure</h2>']
        for name, child in self.result.children.items():
            rows = "".join(f'<div class="kv" data-figure="{_e(k)}"><code>{_e(k)}</code><span>{_cell(v)}</span></div>'
                           for k, v in _flatten(child.figures))  # fmt: skip
            notes = "".join(f"<li>{_e(n)}</li>" for n in child.notes)
            error = f"<p class=bad>checker error: <code>{_e(child.error)}</code></p>" if child.error else ""
            parts.append(
                f'<details class="check" id="check-{_e(name)}" open><summary><b>{_e(name)}</b> '
                f"{_verdict(child.valid)}</summary>{error}"
                + (f"<ul class=notes>{notes}</ul>" if notes else "")
                + (f'<div class="kvs">{rows}</div>' if rows else
                   "<p class=note>no figures</p>")
                + "</details>"
            )  # fmt: skip
        if self.result.notes:
            parts.append(
                "<ul class=notes>" + "".join(f"<li>{_e(n)}</li>" for n in self.result.notes) + "</ul>"
            )
        parts.append("</section>")
        return "".join(parts)

    def elements_section(self) -> str:
        rows: list[str] = []
        cut_notes: list[str] = []
        lookup = _AckTimes(self.h)
        for check, child in self.result.children.items():
            for kind in ELEMENT_KINDS:
                text = child.figures.get(f"{kind}_ranges")
                count = child.figures.get(kind)
                if not isinstance(text, str) or not text or not count:
                    continue
                ids, cut = parse_ranges(text, MAX_ELEMENTS)
                if cut:
                    cut_notes.append(f"{check} {kind}: {count:,} in all, the first {len(ids):,} listed")
                for i in ids:
                    t, how = lookup.when(i)
                    window = self.window_of(t)
                    rows.append(f"<tr class={'unk' if kind == 'recovered' else 'bad'}><td>{_e(check)}</td>"
                                f"<td>{_e(kind.replace('_', ' '))}</td><td class=num>{i}</td>"
                                f"<td>{_e(how)}</td><td class=num>{_s(t)}</td><td>{_e(window)}</td></tr>")  # fmt: skip
        if not rows:
            return ('<section id="elements"><h2>Lost, duplicated and unexpected elements</h2>'
                    "<p class=note>none: every acknowledged element was read back once, nothing else was.</p>"
                    "</section>")  # fmt: skip
        notes = "".join(f"<li>{_e(n)}</li>" for n in cut_notes)
        return ('<section id="elements"><h2>Lost, duplicated and unexpected elements</h2>'
                "<p class=note>The time is the element's acknowledgement (its ok write), else its first attempt; "
                "the window is the fault in effect then, or the latest one before it.</p>"
                + (f"<ul class=notes>{notes}</ul>" if notes else "")
                + "<table><tr><th>check</th><th>kind</th><th>element</th><th>written</th><th>at</th>"
                "<th>fault window</th></tr>" + "".join(rows) + "</table></section>")  # fmt: skip

    def window_of(self, t: float | None) -> str:
        if t is None:
            return "never written"
        active = [e for e in self.events if e.active_at(int(t))]
        if active:
            return "during " + "; ".join(f"{e.id} ({event_label(e)})" for e in active)
        before = [e for e in self.events if e.start <= t]
        if before:
            last = before[-1]
            return f"after {last.id} ({event_label(last)}), healed at {_s(last.end)}"
        return "before any fault"

    def outages_section(self) -> str:
        child = self.result.children.get("availability")
        outages = (child.figures.get("outages") or []) if child is not None else []
        if not outages:
            return ""
        rows = "".join(
            f"<tr><td class=num>{_s(o.get('start_ns'))}</td><td class=num>{_s(o.get('end_ns'))}</td>"
            f"<td class=num>{o.get('duration_s', 0):.3f} s</td><td>{_e(o.get('event'))}</td>"
            f"<td>{_e(o.get('in_window'))}</td><td class=num>{_s(o.get('time_to_detect_ns'))}</td>"
            f"<td>{_e(o.get('recovered_by') or '–')}</td><td class=num>{_s(o.get('time_to_recover_ns'))}</td></tr>"
            for o in outages
        )
        return ('<section id="outages"><h2>Outages</h2><table><tr><th>start</th><th>end</th><th>duration</th>'
                "<th>fault</th><th>in window</th><th>time to detect</th><th>recovered by</th>"
                f"<th>time to recover</th></tr>{rows}</table></section>")  # fmt: skip

    def events_section(self) -> str:
        if not self.events:
            return '<section id="events"><h2>Faults</h2><p class=note>no fault ran</p></section>'
        rows = "".join(
            f"<tr class={'harness' if is_harness_action(e) else ''}><td><code>{_e(e.id)}</code></td>"
            f"<td>{_e(event_label(e))}</td><td>{_e(e.mechanism)}</td><td class=num>{_s(e.start)}</td>"
            f"<td class=num>{_s(e.end) if e.end is not None else 'never healed'}</td>"
            f"<td class=num>{_s(None if e.end is None else e.end - e.start)}</td>"
            f"<td>{'harness' if is_harness_action(e) else 'scenario'}</td>"
            f"<td><code>{_e(json.dumps(dict(e.detail), default=str))}</code></td></tr>"
            for e in self.events
        )
        return ('<section id="events"><h2>Faults</h2><table><tr><th>id</th><th>what</th><th>mechanism</th>'
                "<th>start</th><th>end</th><th>lasted</th><th>by</th><th>detail</th></tr>"
                f"{rows}</table></section>")  # fmt: skip

    def run_section(self) -> str:
        topo = self.stored.topology_doc
        raw_image = topo.get("image")
        image: Mapping[str, Any] = raw_image if isinstance(raw_image, Mapping) else {}
        recorded = self.meta.get("image") or self.meta.get("images")
        if recorded:
            image_text = _fmt(recorded)
        elif image.get("profile") == "upstream":
            image_text = f"upstream {image.get('name')}"
        else:
            image_text = "offline node image (ha-harness/node, built by `harness images build`); its tag is not recorded in this run"
        logs = sorted((self.dir / "logs").glob("*.log")) if (self.dir / "logs").is_dir() else []
        links = [f'<a href="logs/{_e(p.name)}">logs/{_e(p.name)}</a>' for p in logs]
        if (self.dir / "harness.log").exists():
            links.insert(0, '<a href="harness.log">harness.log</a>')
        files = [f'<a href="{n}">{n}</a>' for n in ("result.json", "junit.xml", "history.jsonl", "events.jsonl",
                                                     "samples.jsonl", "checksums.json") if (self.dir / n).exists()
                 or n == "junit.xml"]  # fmt: skip
        facts = [("run", self.meta.get("run_id") or self.dir.name), ("seed", self.meta.get("seed", "not recorded")),
                 ("system", topo.get("system", "?")), ("nodes", topo.get("nodes", "?")), ("image", image_text),
                 ("subnet", self.meta.get("subnet", "–")), ("ops in history", f"{len(self.h):,}"),
                 ("probe samples", f"{len(self.stored.samples):,}")]  # fmt: skip
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
        return (
            '<section id="run"><h2>The run</h2>'
            f"<table class=facts>{rows}"
            f"<tr><th>logs</th><td>{' · '.join(links) or 'none stored'}</td></tr>"
            f"<tr><th>files</th><td>{' · '.join(files)}</td></tr></table>"
            '<div class="docs"><details open><summary>Topology as run</summary>'
            f'<pre id="topology">{_e(json.dumps(topo, indent=2))}</pre></details>'
            "<details open><summary>Scenario as run</summary>"
            f'<pre id="scenario">{_e(json.dumps(self.stored.scenario_doc, indent=2))}</pre></details></div>'
            "</section>"
        )


def _display_sample(types: np.ndarray, cap: int) -> np.ndarray:
    """Rows (positions in ``types``) to draw: all when at most ``cap``; else every fail/info up to half the
    cap and evenly spaced ok ops for the rest (the same every time)."""
    n = len(types)
    if n <= cap:
        return np.arange(n)
    bad = np.flatnonzero(types != OK)
    if len(bad) > cap // 2:
        bad = bad[np.linspace(0, len(bad) - 1, cap // 2).astype(np.int64)]
    ok = np.flatnonzero(types == OK)
    room = cap - len(bad)
    if len(ok) > room:
        ok = ok[np.linspace(0, len(ok) - 1, room).astype(np.int64)]
    return np.sort(np.concatenate((bad, ok)))


class _AckTimes:
    """When an element (an integer id) was written: its first ok write, else its first attempt."""

    def __init__(self, h: History) -> None:
        wm = h.mask(WRITE_FS)
        rows = np.flatnonzero(wm)
        vals, present = h.int_values(rows) if len(rows) else (np.empty(0, np.int64), np.empty(0, bool))
        rows, vals = rows[present], vals[present]
        self.h = h
        ok = h.type[rows] == OK
        self.ok = self._index(vals[ok], h.time[rows[ok]])
        inv = h.type[rows] == INVOKE
        self.inv = self._index(vals[inv], h.time[rows[inv]])

    @staticmethod
    def _index(vals: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.lexsort((times, vals))
        return vals[order], times[order]

    def when(self, element: int) -> tuple[float | None, str]:
        for (vals, times), how in ((self.ok, "acknowledged"), (self.inv, "attempted")):
            i = int(np.searchsorted(vals, element))
            if i < len(vals) and vals[i] == element:
                return float(times[i]), how
        return None, "never written"


def _runs(points: Sequence[tuple[int, str]], end: float) -> list[tuple[float, float, str]]:
    """(start, end, value) of each run of equal values (times in ns); a run lasts until the next sample
    (the last one until ``end``), unless the probe fell silent: a gap of more than five usual intervals
    (at least 2 s) ends the run one interval after its last sample, and the gap is left blank."""
    times = np.asarray([t for t, _ in points], dtype=np.float64)
    step = float(np.median(np.diff(times))) if len(times) > 2 else 1e9
    gap = max(5 * step, 2e9)
    out: list[tuple[float, float, str]] = []
    prev: float | None = None
    for t, v in points:
        if prev is not None and t - prev > gap:
            out[-1] = (out[-1][0], prev + step, out[-1][2])
        elif out and out[-1][2] == v:
            prev = t
            continue
        elif out:
            out[-1] = (out[-1][0], float(t), out[-1][2])
        out.append((float(t), end, v))
        prev = t
    return out


def _state(value: float | str) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return value


def _state_class(value: str, n: int) -> str:
    if value in GOOD_STATES:
        return "s-good"
    if value in BAD_STATES or value.startswith("non-"):
        return "s-bad"
    return f"s-{n % 8}"


def _short_metric(metric: str) -> str:
    return metric.removeprefix("wsrep_").removeprefix("local_").replace("_comment", "")[:16]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _cell(value: Any) -> str:
    text = _fmt(value)
    if len(text) > 160:
        return f"<details><summary><code>{_e(text[:100])}…</code></summary><code>{_e(text)}</code></details>"
    return f"<code>{_e(text)}</code>" if not isinstance(value, int | float) else _e(text)


CSS = """
:root{--ok:#1a7f37;--bad:#cf222e;--unk:#9a6700;--info:#d4a72c;--ink:#1f2328;--muted:#59636e;--line:#d1d9e0}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);
margin:0 auto;max-width:1240px;padding:16px 24px 60px;background:#fff}
h1{font-size:22px;margin:4px 0}h1 small{font-weight:400;color:var(--muted);font-size:15px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h2 small{font-weight:400;color:var(--muted);font-size:13px}
.lead{margin:6px 0 12px}
.verdict{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px;color:#fff}
.verdict.ok{background:var(--ok)}.verdict.bad{background:var(--bad)}.verdict.unk{background:var(--unk)}
.lead>.verdict{font-size:16px;padding:3px 14px}
.badge{display:inline-block;margin:0 6px 4px 0;padding:2px 4px 2px 8px;border:1px solid var(--line);
border-radius:12px;color:var(--ink);text-decoration:none;font-size:13px}
.figs{display:flex;flex-wrap:wrap;gap:10px}
.fig{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:130px}
.fig .v{font-size:22px;font-weight:600}.fig .k{color:var(--muted);font-size:12px}
.fig.bad .v{color:var(--bad)}.fig.ok .v{color:var(--ok)}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td:first-child{border-left:3px solid var(--bad)}tr.ok td:first-child{border-left:3px solid var(--ok)}
tr.unk td:first-child{border-left:3px solid var(--unk)}tr.harness td{background:#f5f0ff}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f6f8fa;border:1px solid var(--line);padding:8px;overflow:auto;max-height:420px}
.note{color:var(--muted);font-size:13px;margin:4px 0}.notes{margin:4px 0;padding-left:20px}
p.bad{color:var(--bad)}
details.check{border:1px solid var(--line);border-radius:6px;padding:6px 10px;margin:8px 0}
details.check summary{cursor:pointer}
.kvs{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:0 16px;margin:6px 0;font-size:13px}
.kv{display:flex;justify-content:space-between;gap:10px;border-bottom:1px solid #eaeef2;padding:2px 0;min-width:0}
.kv>code{color:var(--muted);flex:none}.kv>span{text-align:right;min-width:0;overflow-wrap:anywhere}
.docs{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:12px}
td code{overflow-wrap:anywhere}
figure.plot{margin:6px 0 2px}figure.plot figcaption{font-weight:600;font-size:13px;margin-left:118px}
figure.plot .cap{font-weight:400;color:var(--muted);margin-left:8px}
figure.plot.empty p{margin-left:118px}
svg{display:block;max-width:100%;height:auto;overflow:visible}
svg text{font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:var(--muted)}
svg text.lane{fill:var(--ink)}svg text.legend{fill:var(--ink)}svg text.seg-label{fill:#fff;font-size:10.5px;pointer-events:none}
.axis{stroke:#8c959f;stroke-width:1}.grid{stroke:#eaeef2;stroke-width:1}
line.cursor{stroke:#57606a;stroke-width:1;stroke-dasharray:3 3;pointer-events:none;visibility:hidden}
line.cursor.on{visibility:visible}
path.ln{fill:none;stroke-width:1.5}path.pt{stroke:none}
.band{opacity:.16}
.ev-partition{fill:#0969da}.ev-link{fill:#bc4c00}.ev-process{fill:#cf222e}
.ev-harness{fill:#8250df}
rect.band.ev-harness{fill:#8250df;opacity:.28;stroke:#8250df;stroke-dasharray:4 3;stroke-width:1}
rect.seg.ev-harness{stroke:#4c2889;stroke-width:1.5;stroke-dasharray:5 3}
.mark-harness{stroke:#8250df;stroke-width:2}
.band.outage{fill:var(--bad);opacity:.22}
.key.outage{fill:var(--bad);opacity:.4}
.st-up{fill:#2da44e}.st-down{fill:var(--bad)}.st-idle{fill:#d0d7de}
.c-ok{stroke:var(--ok);fill:var(--ok)}.c-fail{stroke:var(--bad);fill:var(--bad)}.c-info{stroke:var(--info);fill:var(--info)}
.pt.c-ok{fill-opacity:.45}
.key.c-ok,.key.c-fail,.key.c-info{stroke:none}
.c-node0{stroke:#0969da;fill:#0969da}.c-node1{stroke:#bc4c00;fill:#bc4c00}.c-node2{stroke:#1a7f37;fill:#1a7f37}
.c-node3{stroke:#8250df;fill:#8250df}.c-node4{stroke:#bf3989;fill:#bf3989}.c-node5{stroke:#0a7e8c;fill:#0a7e8c}
.c-node6{stroke:#6e7781;fill:#6e7781}.c-node7{stroke:#953800;fill:#953800}
.key{stroke:none}
.s-good{fill:#2da44e}.s-bad{fill:#cf222e}.s-0{fill:#0969da}.s-1{fill:#bc4c00}.s-2{fill:#8250df}.s-3{fill:#0a7e8c}
.s-4{fill:#bf3989}.s-5{fill:#6e7781}.s-6{fill:#953800}.s-7{fill:#116329}
.readout{position:sticky;top:0;z-index:2;display:inline-block;background:#fff;border:1px solid var(--line);
border-radius:4px;padding:1px 8px;font:12px ui-monospace,Menlo,Consolas,monospace;margin-left:118px}
@media print{.readout{display:none}}
"""

SCRIPT = """
(function () {
  "use strict";
  var svgs = Array.prototype.slice.call(document.querySelectorAll("figure.plot svg"));
  var readout = document.getElementById("readout");
  function at(svg, evt) {
    var box = svg.getBoundingClientRect();
    var vb = svg.viewBox.baseVal;
    var x = (evt.clientX - box.left) * (vb.width / box.width);
    var left = parseFloat(svg.dataset.left), width = parseFloat(svg.dataset.width);
    var x0 = parseFloat(svg.dataset.x0), x1 = parseFloat(svg.dataset.x1);
    return {x: x, t: x0 + (x - left) / width * (x1 - x0), inside: x >= left && x <= left + width};
  }
  function show(x, t) {
    svgs.forEach(function (s) {
      var c = s.querySelector("line.cursor");
      if (c) {
        c.setAttribute("x1", x); c.setAttribute("x2", x);
        if (t === null) { c.classList.remove("on"); } else { c.classList.add("on"); }
      }
    });
    if (readout) { readout.textContent = t === null ? "t = \\u2013" : "t = " + t.toFixed(2) + " s"; }
  }
  svgs.forEach(function (svg) {
    svg.addEventListener("mousemove", function (evt) {
      var p = at(svg, evt);
      if (p.inside) { show(p.x, p.t); } else { show(-10, null); }
    });
    svg.addEventListener("mouseleave", function () { show(-10, null); });
  });
  document.body.setAttribute("data-plots", String(document.querySelectorAll("figure.plot").length));
  document.body.setAttribute("data-ready", "1");
})();
"""
