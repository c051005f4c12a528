"""``harness compare``: many runs side by side — rows are topologies, columns are scenarios.

Each cell sums up the runs of one (topology, scenario): lost and duplicated elements, availability, the
longest outage, the time to recover (when an outage is attributed to a fault: the slowest recovery, "never"
when one did not recover), the p99 replication lag. Several runs of one
pair give the median and the range (min–max). A figure a guarantee bounds (``lost``, ``duplicated``,
``availability``, ``longest_outage_s``, ``time_to_recover_s``, ``lag_p99_s``) is coloured by it (every run
within the bound: pass; any run outside it: fail); without a guarantee, lost and duplicated elements are
failures by nature (any is one) and the other figures are shown plain.

A run's result is its ``result.json``; a run directory without one is checked again (as ``harness check``).
Formats: a rich table for the terminal, Markdown, a self-contained HTML page, JSON and CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from rich.table import Table

from harness.checkers.base import Result, Validity, jsonable, merge_valid
from harness.errors import InputError
from harness.report.html import recovery_s

__all__ = [
    "FORMATS",
    "METRICS",
    "Cell",
    "Comparison",
    "Metric",
    "RunSummary",
    "compare",
    "find_runs",
    "render",
    "summarise",
]

FORMATS = ("table", "md", "html", "json", "csv")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str  # "", "%", "s"
    inherent_zero: bool = False  # any non-zero value fails even without a guarantee
    guarantees: tuple[str, ...] = ()  # the guarantee (harness.checkers.guarantees) that bounds it


METRICS: tuple[Metric, ...] = (
    Metric("lost", "lost", "", True, ("lost",)),
    Metric("duplicated", "duplicated", "", True, ("duplicated",)),
    Metric("availability", "availability", "%", False, ("availability",)),
    Metric("longest_outage_s", "longest outage", "s", False, ("longest_outage_s",)),
    Metric("time_to_recover_s", "time to recover", "s", False, ("time_to_recover_s",)),
    Metric("p99_lag_s", "p99 lag", "s", False, ("lag_p99_s",)),
)


@dataclass(frozen=True)
class RunSummary:
    """What ``compare`` takes of one run."""

    directory: Path
    run_id: str
    topology: str
    scenario: str
    valid: Validity
    values: Mapping[str, float | None]
    bounds: Mapping[str, Mapping[str, Any]]  # metric key → the guarantee bound (with "passed")


@dataclass
class Cell:
    topology: str
    scenario: str
    runs: list[RunSummary] = field(default_factory=list)

    @property
    def valid(self) -> Validity:
        return merge_valid(r.valid for r in self.runs)

    def stats(self, key: str) -> dict[str, Any] | None:
        """median, min, max, n and every value of metric ``key`` over the runs that have it."""
        values = [v for r in self.runs if (v := r.values.get(key)) is not None]
        if not values:
            return None
        return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
                "values": values}  # fmt: skip

    def status(self, metric: Metric) -> str:
        """ "pass", "fail" or "none" (no guarantee and no inherent rule) for ``metric`` over the runs."""
        bounds = [r.bounds[metric.key] for r in self.runs if metric.key in r.bounds]
        if bounds:
            passed = [b.get("passed") for b in bounds]
            if any(p is False for p in passed):
                return "fail"
            return "pass" if all(p is True for p in passed) else "unknown"
        if metric.inherent_zero:
            st = self.stats(metric.key)
            if st is None:
                return "none"
            return "fail" if st["max"] else "pass"
        return "none"

    def bound_text(self, metric: Metric) -> str | None:
        for r in self.runs:
            b = r.bounds.get(metric.key)
            if b is not None:
                return f"{b.get('op', '')} {b.get('bound')}".strip()
        return None


@dataclass
class Comparison:
    topologies: list[str]
    scenarios: list[str]
    cells: dict[tuple[str, str], Cell]

    def to_dict(self) -> dict[str, Any]:
        out = []
        for (topology, scenario), cell in sorted(self.cells.items()):
            metrics = {}
            for m in METRICS:
                st = cell.stats(m.key)
                metrics[m.key] = {**(st or {"median": None, "min": None, "max": None, "n": 0, "values": []}),
                                  "status": cell.status(m), "bound": cell.bound_text(m)}  # fmt: skip
            out.append({"topology": topology, "scenario": scenario, "valid": cell.valid,
                        "runs": [{"run_id": r.run_id, "directory": str(r.directory), "valid": r.valid}
                                 for r in cell.runs], "metrics": metrics})  # fmt: skip
        return {"topologies": self.topologies, "scenarios": self.scenarios, "cells": out}


# -- reading runs -----------------------------------------------------------------------------------------
def _is_run(path: Path) -> bool:
    return (path / "scenario.json").is_file() and (
        (path / "result.json").is_file() or (path / "history.jsonl").is_file()
    )


def find_runs(paths: Iterable[Path]) -> list[Path]:
    """Run directories: each path that is one, and every one below each path that is not."""
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"{path}: no such directory (expected a run directory or a directory of runs)")
        if _is_run(path):
            found.append(path)
            continue
        below = sorted({p.parent for p in path.rglob("scenario.json") if _is_run(p.parent)})
        if not below:
            raise InputError(f"{path}: no run directories in it (a run has scenario.json and result.json "
                             "or history.jsonl)")  # fmt: skip
        found.extend(below)
    return list(dict.fromkeys(found))


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; an unreadable file, bad JSON or another value is an InputError."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    except ValueError as e:
        raise InputError(f"{path}: not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object")
    return doc


def _result(run: Path) -> Result:
    path = run / "result.json"
    if path.is_file():
        try:
            return Result.from_dict(read_json_object(path))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: not a result: {e}") from None
    from harness.runner import check_report

    return check_report(run, write=False)


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def summarise(run: Path, result: Result | None = None) -> RunSummary:
    """The figures ``compare`` shows of the run in ``run``."""
    result = result if result is not None else _result(run)
    scenario = read_json_object(run / "scenario.json").get("name", "?")
    topo_path = run / "topology.json"
    topology = read_json_object(topo_path).get("name", "?") if topo_path.is_file() else "?"
    meta = read_json_object(run / "meta.json") if (run / "meta.json").is_file() else {}
    ch = result.children
    values: dict[str, float | None] = {}
    for key in ("lost", "duplicated"):
        values[key] = next((_number(ch[c].figures.get(key)) for c in ("set", "queue", "boot") if c in ch
                            and _number(ch[c].figures.get(key)) is not None), None)  # fmt: skip
    avail = ch["availability"].figures if "availability" in ch else {}
    values["availability"] = _number(avail.get("availability"))
    values["longest_outage_s"] = _number(avail.get("longest_outage_s"))
    values["time_to_recover_s"] = recovery_s(avail) if avail else None
    overall = ch["lag"].figures.get("overall") if "lag" in ch else None
    values["p99_lag_s"] = _number(overall.get("p99")) if isinstance(overall, Mapping) else None
    bounds: dict[str, Mapping[str, Any]] = {}
    g = ch.get("guarantees")
    for b in (g.details.get("bounds") if g is not None else None) or []:
        if not isinstance(b, Mapping):
            continue
        for m in METRICS:
            if b.get("name") in m.guarantees:
                bounds.setdefault(m.key, b)
    return RunSummary(directory=run, run_id=str(meta.get("run_id") or run.name), topology=str(topology),
                      scenario=str(scenario), valid=result.valid, values=values, bounds=bounds)  # fmt: skip


def compare(paths: Sequence[Path]) -> Comparison:
    """Every run under ``paths``, grouped by (topology, scenario)."""
    cells: dict[tuple[str, str], Cell] = {}
    for run in find_runs(paths):
        s = summarise(run)
        cells.setdefault((s.topology, s.scenario), Cell(s.topology, s.scenario)).runs.append(s)
    topologies = sorted({t for t, _ in cells})
    scenarios = sorted({s for _, s in cells})
    return Comparison(topologies, scenarios, cells)


# -- rendering --------------------------------------------------------------------------------------------
def _num(v: float, unit: str) -> str:
    if math.isinf(v):
        return "never"
    if unit == "%":
        return f"{100 * v:.2f}%"
    if unit == "s":
        return f"{v:.2f}s"
    return f"{v:g}"


def metric_text(cell: Cell, m: Metric) -> str | None:
    """``lost 0`` or ``availability 99.10% (98.00%–99.50%, n=3)``; None when no run has the figure."""
    st = cell.stats(m.key)
    if st is None:
        return None
    text = f"{m.label} {_num(st['median'], m.unit)}"
    if st["n"] > 1:
        text += f" ({_num(st['min'], m.unit)}–{_num(st['max'], m.unit)}, n={st['n']})"
    bound = cell.bound_text(m)
    if bound:
        text += f" [{bound}]"
    return text


_MARK = {"pass": "✓", "fail": "✗", "unknown": "?", "none": ""}


def _cell_lines(cell: Cell) -> list[tuple[str, str]]:
    """(text, status) per metric the cell has, the verdict first."""
    valid = cell.valid
    verdict, status = (
        ("valid", "pass")
        if valid is True
        else ("INVALID", "fail")
        if valid is False
        else ("unknown", "unknown")
    )
    lines = [(f"{verdict} ({len(cell.runs)} run{'s' if len(cell.runs) != 1 else ''})", status)]
    for m in METRICS:
        text = metric_text(cell, m)
        if text is not None:
            lines.append((text, cell.status(m)))
    return lines


def rich_table(c: Comparison) -> Table:
    table = Table(title="runs compared: rows are topologies, columns are scenarios", title_justify="left",
                  show_lines=True)  # fmt: skip
    table.add_column("topology")
    for s in c.scenarios:
        table.add_column(s)
    style = {"pass": "green", "fail": "red", "unknown": "yellow", "none": ""}
    for t in c.topologies:
        row = [t]
        for s in c.scenarios:
            cell = c.cells.get((t, s))
            if cell is None:
                row.append("[dim]–[/dim]")
                continue
            parts = []
            for text, st in _cell_lines(cell):
                mark = f" {_MARK[st]}" if _MARK[st] else ""
                parts.append(f"[{style[st]}]{escape_rich(text)}{mark}[/]" if style[st] else escape_rich(text))
            row.append("\n".join(parts))
        table.add_row(*row)
    return table


def escape_rich(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


def markdown(c: Comparison) -> str:
    def md(text: str) -> str:
        return text.replace("|", "\\|")

    out = ["| topology | " + " | ".join(md(s) for s in c.scenarios) + " |",
           "|---|" + "---|" * len(c.scenarios)]  # fmt: skip
    for t in c.topologies:
        cells = []
        for s in c.scenarios:
            cell = c.cells.get((t, s))
            if cell is None:
                cells.append("–")
                continue
            cells.append("<br>".join(md(text) + (f" {_MARK[st]}" if _MARK[st] else "")
                                     for text, st in _cell_lines(cell)))  # fmt: skip
        out.append(f"| {md(t)} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n\n✓ within its guarantee (or nothing lost/duplicated), ✗ outside it.\n"


def html_page(c: Comparison) -> str:
    head = "".join(f"<th>{escape(s)}</th>" for s in c.scenarios)
    rows = []
    for t in c.topologies:
        cells = []
        for s in c.scenarios:
            cell = c.cells.get((t, s))
            if cell is None:
                cells.append('<td class="none">–</td>')
                continue
            lines = "".join(f'<div class="m {st}" data-status="{st}">{escape(text)}'
                            f"{(' ' + _MARK[st]) if _MARK[st] else ''}</div>" for text, st in _cell_lines(cell))  # fmt: skip
            runs = ", ".join(r.run_id for r in cell.runs)
            cells.append(f'<td class="cell" data-topology="{escape(t, quote=True)}" '
                         f'data-scenario="{escape(s, quote=True)}" title="runs: {escape(runs, quote=True)}">'
                         f"{lines}</td>")  # fmt: skip
        rows.append(f"<tr><th>{escape(t)}</th>{''.join(cells)}</tr>")
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>ha-harness: runs compared</title>"
        f"<style>{_CSS}</style></head><body><h1>Runs compared</h1>"
        "<p class=note>Rows are topologies, columns are scenarios. Several runs of one pair: the median, then "
        "the range and the number of runs. Green: within its guarantee (lost and duplicated: none); red: "
        "outside it; plain: no guarantee states a bound.</p>"
        f'<table id="compare"><tr><th>topology</th>{head}</tr>{"".join(rows)}</table>'
        '<script>document.body.setAttribute("data-cells", '
        'String(document.querySelectorAll("td.cell").length));</script></body></html>\n'
    )


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1f2328;margin:20px}
h1{font-size:20px}.note{color:#59636e;max-width:900px}
table{border-collapse:collapse}th,td{border:1px solid #d1d9e0;padding:6px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa}.m{font-variant-numeric:tabular-nums;white-space:nowrap}
.m.pass{color:#1a7f37}.m.fail{color:#cf222e;font-weight:600}.m.unknown{color:#9a6700}
td.none{color:#8c959f}
"""


def csv_text(c: Comparison) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["topology", "scenario", "runs", "valid"]
    for m in METRICS:
        header += [f"{m.key}_median", f"{m.key}_min", f"{m.key}_max", f"{m.key}_status"]
    w.writerow(header)
    for (t, s), cell in sorted(c.cells.items()):
        row: list[Any] = [t, s, len(cell.runs), cell.valid]
        for m in METRICS:
            st = cell.stats(m.key) or {}
            row += [st.get("median", ""), st.get("min", ""), st.get("max", ""), cell.status(m)]
        w.writerow(row)
    return buf.getvalue()


def render(c: Comparison, fmt: str) -> str:
    """The comparison as text in ``fmt`` (md, html, json or csv)."""
    if fmt == "md":
        return markdown(c)
    if fmt == "html":
        return html_page(c)
    if fmt == "json":
        return json.dumps(jsonable(c.to_dict()), indent=2) + "\n"  # inf ("never recovered"): null
    if fmt == "csv":
        return csv_text(c)
    raise InputError(f"compare: unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
