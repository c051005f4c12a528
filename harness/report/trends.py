"""Trends over stored nightlies: per (topology, scenario, figure) the series over time, and the regressions
of the latest nightly against the one before it and against a rolling median baseline.

A nightly is a directory holding a ``matrix.json`` (``harness.matrix``): its ``cells`` give, per pair, the
verdict and the median of each figure over the pair's runs. The figures are those ``harness compare``
shows (lost, duplicated, availability, longest outage, time to recover, p99 lag) and the verdict itself.

What is a regression (thresholds from ``nightly.yaml``'s ``regressions``, :class:`Regressions`):

* verdict: valid in the previous nightly, invalid in the latest;
* lost / duplicated: 0 before, more than 0 now;
* availability: a drop of more than ``availability_drop`` (absolute: 0.05 is five points);
* longest outage, time to recover, p99 lag: more than ``*_growth`` relative growth *and* more than
  ``min_seconds`` absolute growth (sub-second jitter is noise); a time to recover that became "never".

"Previous" is the latest earlier nightly where the pair has the figure; the baseline is the median of the
figure over the last ``baseline`` earlier nightlies that have it (compared only with two or more of them:
with one it is the previous nightly again). A pair that an earlier nightly ran and the latest did not is
listed as missing (not a regression: the matrix may have changed on purpose); a new pair has no reference.

Outputs: ``trends.json`` (everything), ``regressions.md`` (the summary for a CI job's page or a chat message)
and ``trends.html`` (self-contained: a table of pairs × figures, an SVG sparkline per figure, regressions
marked).
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from harness.checkers.base import Validity, jsonable
from harness.errors import InputError
from harness.model.nightly import Regressions
from harness.report.compare import METRICS, read_json_object

__all__ = ["FIGURES", "Nightly", "Regression", "Trends", "append_history", "build_trends", "load_history",
           "prune_history",
           "regressions_md", "trends_html", "write_trends"]  # fmt: skip

MATRIX_KIND = "ha-harness matrix"  # as harness.matrix writes it (the report layer does not import it)
FIGURES: tuple[str, ...] = ("verdict", *(m.key for m in METRICS))
LABELS = {"verdict": "verdict", **{m.key: m.label for m in METRICS}}
UNITS = {"verdict": "", **{m.key: m.unit for m in METRICS}}
VERDICT_VALUE = {True: 1.0, False: 0.0, "unknown": 0.5}

Key = tuple[str, str]  # (topology, scenario)


@dataclass(frozen=True)
class Nightly:
    id: str
    directory: Path
    created: str
    valid: Validity
    cells: dict[Key, dict[str, float | None]]  # figure → value (verdict as 1 / 0.5 / 0, "never" as inf)


@dataclass(frozen=True)
class Regression:
    topology: str
    scenario: str
    figure: str
    against: str  # "previous" or "baseline"
    reference: float
    value: float
    rule: str  # the threshold, in words

    @property
    def message(self) -> str:
        ref = "the previous nightly" if self.against == "previous" else "the baseline (rolling median)"
        return (f"{self.scenario} on {self.topology}: {LABELS[self.figure]} {_text(self.figure, self.reference)}"
                f" → {_text(self.figure, self.value)} against {ref} ({self.rule})")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"topology": self.topology, "scenario": self.scenario, "figure": self.figure,
                "against": self.against, "reference": _json_value(self.reference),
                "value": _json_value(self.value), "rule": self.rule, "message": self.message}  # fmt: skip


@dataclass
class Trends:
    nightlies: list[Nightly]
    thresholds: Regressions
    pairs: list[Key] = field(default_factory=list)
    series: dict[tuple[str, str, str], list[float | None]] = field(default_factory=dict)
    regressions: list[Regression] = field(default_factory=list)
    missing: list[Key] = field(default_factory=list)  # ran before, not in the latest nightly
    new: list[Key] = field(default_factory=list)  # first seen in the latest nightly
    invalid: list[Key] = field(default_factory=list)  # invalid in the latest nightly
    unknown: list[Key] = field(default_factory=list)

    @property
    def latest(self) -> Nightly | None:
        return self.nightlies[-1] if self.nightlies else None

    @property
    def failed(self) -> bool:
        """A regression, or an invalid verdict in the latest nightly."""
        return bool(self.regressions or self.invalid)

    def regressed(self, key: Key, figure: str) -> list[Regression]:
        return [r for r in self.regressions if (r.topology, r.scenario) == key and r.figure == figure]

    def to_dict(self) -> dict[str, Any]:
        return {
            "nightlies": [
                {"id": n.id, "directory": str(n.directory), "created": n.created, "valid": n.valid}
                for n in self.nightlies
            ],
            "thresholds": self.thresholds.model_dump(),
            "series": [
                {"topology": t, "scenario": s, "figure": f, "values": [_json_value(v) for v in values]}
                for (t, s, f), values in sorted(self.series.items())
            ],
            "regressions": [r.to_dict() for r in self.regressions],
            "missing": [{"topology": t, "scenario": s} for t, s in self.missing],
            "new": [{"topology": t, "scenario": s} for t, s in self.new],
            "invalid": [{"topology": t, "scenario": s} for t, s in self.invalid],
            "unknown": [{"topology": t, "scenario": s} for t, s in self.unknown],
            "failed": self.failed,
        }


# -- reading ------------------------------------------------------------------------------------------------
def _value(v: Any) -> float | None:
    if v == "never":
        return math.inf
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def _json_value(v: float | None) -> float | str | None:
    return "never" if v is not None and math.isinf(v) else v


def read_nightly(directory: Path) -> Nightly:
    path = directory / "matrix.json"
    doc = read_json_object(path)
    if doc.get("kind") != MATRIX_KIND or not isinstance(doc.get("cells"), list):
        raise InputError(f"{path}: not a matrix.json (expected kind {MATRIX_KIND!r} and a list of cells)")
    cells: dict[Key, dict[str, float | None]] = {}
    for i, cell in enumerate(doc["cells"]):
        if (
            not isinstance(cell, dict)
            or not isinstance(cell.get("topology"), str)
            or not isinstance(cell.get("scenario"), str)
        ):
            raise InputError(f"{path}: cells[{i}]: expected an object with topology and scenario")
        raw = cell.get("figures")
        figures: dict[str, Any] = raw if isinstance(raw, dict) else {}
        values: dict[str, float | None] = {"verdict": VERDICT_VALUE.get(cell.get("valid"))}  # type: ignore[arg-type]
        values |= {key: _value(figures.get(key)) for key in FIGURES[1:]}
        cells[(cell["topology"], cell["scenario"])] = values
    valid = doc.get("valid")
    return Nightly(directory.name, directory, str(doc.get("created") or ""),
                   valid if valid in (True, False) else "unknown", cells)  # fmt: skip


def load_history(root: Path) -> list[Nightly]:
    """Every nightly directly under ``root`` (a directory with a ``matrix.json``), oldest first."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such directory (expected a directory of nightlies)")
    found = [read_nightly(d) for d in sorted(root.iterdir()) if d.is_dir() and (d / "matrix.json").is_file()]
    return sorted(found, key=lambda n: (n.created, n.id))


def prune_history(root: Path, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest nightlies under ``root``; returns what was removed."""
    nightlies = load_history(root)
    gone = [n.directory for n in nightlies[: max(len(nightlies) - keep, 0)]]
    for directory in gone:
        shutil.rmtree(directory)
    return gone


HISTORY_FILE = "history.jsonl"


def append_history(root: Path, nightly: Nightly) -> Path:
    """One JSON line per (topology, scenario, figure) of ``nightly`` appended to ``<root>/history.jsonl``:
    the long memory, kept when pruning removes old nightly directories. A nightly already in it is not
    appended twice."""
    path = Path(root) / HISTORY_FILE
    seen: set[str] = set()
    if path.is_file():
        with path.open() as f:
            seen = {json.loads(line).get("nightly") for line in f if line.strip()}
    if nightly.id in seen:
        return path
    with path.open("a") as f:
        for (topology, scenario), values in sorted(nightly.cells.items()):
            for figure, value in values.items():
                line = {"nightly": nightly.id, "created": nightly.created, "topology": topology,
                        "scenario": scenario, "figure": figure, "value": _json_value(value)}  # fmt: skip
                f.write(json.dumps(line) + "\n")
    return path


# -- the logic (pure) ----------------------------------------------------------------------------------------
def _rules(figure: str, ref: float, value: float, th: Regressions) -> str | None:
    """The rule ``value`` breaks against ``ref``, in words; None when it is no regression."""
    if figure == "verdict":
        return "a valid pair turned invalid" if th.verdict and ref == 1.0 and value == 0.0 else None
    if figure in ("lost", "duplicated"):
        on = th.lost if figure == "lost" else th.duplicated
        return f"{figure} 0 → more than 0" if on and ref == 0 and value > 0 else None
    if figure == "availability":
        drop = ref - value
        return f"drop of more than {th.availability_drop:g}" if drop > th.availability_drop + 1e-12 else None
    growth = th.growth(figure)
    if growth is None or math.isinf(ref):
        return None
    if math.isinf(value):
        return "never recovered"
    if value - ref > th.min_seconds and value > ref * (1 + growth) + 1e-12:
        return f"growth of more than {100 * growth:g} % and {th.min_seconds:g} s"
    return None


def build_trends(nightlies: Sequence[Nightly], thresholds: Regressions | None = None) -> Trends:
    """Series of every pair and figure over ``nightlies`` (oldest first), the latest one's regressions."""
    th = thresholds or Regressions()
    nights = list(nightlies)
    trends = Trends(nights, th)
    pairs: dict[Key, None] = {}
    for n in nights:
        pairs.update(dict.fromkeys(sorted(n.cells)))
    trends.pairs = sorted(pairs)
    for key in trends.pairs:
        for figure in FIGURES:
            values = [n.cells[key].get(figure) if key in n.cells else None for n in nights]
            if any(v is not None for v in values):
                trends.series[(*key, figure)] = values
    if not nights:
        return trends
    latest, earlier = nights[-1], nights[:-1]
    trends.missing = [k for k in trends.pairs if k not in latest.cells and earlier and k in earlier[-1].cells]
    trends.new = [k for k in sorted(latest.cells) if earlier and not any(k in n.cells for n in earlier)]
    trends.invalid = [k for k in sorted(latest.cells) if latest.cells[k].get("verdict") == 0.0]
    trends.unknown = [k for k in sorted(latest.cells) if latest.cells[k].get("verdict") not in (0.0, 1.0)]
    for key in sorted(latest.cells):
        for figure in FIGURES:
            value = latest.cells[key].get(figure)
            if value is None:
                continue
            before = [v for n in earlier if key in n.cells and (v := n.cells[key].get(figure)) is not None]
            if not before:
                continue
            rule = _rules(figure, before[-1], value, th)
            if rule is not None:
                trends.regressions.append(Regression(*key, figure, "previous", before[-1], value, rule))
            window = before[-th.baseline :]
            if figure != "verdict" and len(window) >= 2:
                baseline = statistics.median(window)
                rule = _rules(figure, baseline, value, th)
                if rule is not None:
                    trends.regressions.append(Regression(*key, figure, "baseline", baseline, value, rule))
    return trends


# -- rendering ------------------------------------------------------------------------------------------------
def _text(figure: str, v: float | None) -> str:
    if v is None:
        return "–"
    if figure == "verdict":
        return {1.0: "valid", 0.0: "invalid"}.get(v, "unknown")
    if math.isinf(v):
        return "never"
    unit = UNITS[figure]
    if unit == "%":
        return f"{100 * v:.2f}%"
    if unit == "s":
        return f"{v:.2f}s"
    return f"{v:g}"


def regressions_md(trends: Trends) -> str:
    latest = trends.latest
    out = ["# Nightly regressions\n"]
    if latest is None:
        return out[0] + "\nNo nightly stored yet.\n"
    out.append(f"Latest nightly: `{latest.id}` ({latest.created or 'no date'}), compared with "
               f"{len(trends.nightlies) - 1} earlier one(s).\n")  # fmt: skip
    verdict = "**FAILED**" if trends.failed else "**passed**"
    out.append(
        f"{verdict}: {len(trends.regressions)} regression(s), {len(trends.invalid)} invalid pair(s).\n"
    )
    if trends.regressions:
        out.append("## Regressions\n")
        out += [f"- {r.message}" for r in trends.regressions]
        out.append("")
    for title, keys in (("Invalid in the latest nightly", trends.invalid), ("Verdict unknown", trends.unknown),
                        ("Not run in the latest nightly", trends.missing), ("New pairs", trends.new)):  # fmt: skip
        if keys:
            out.append(f"## {title}\n")
            out += [f"- {s} on {t}" for t, s in keys]
            out.append("")
    return "\n".join(out) + "\n"


SPARK_W, SPARK_H, PAD = 150, 34, 4


def sparkline(trends: Trends, key: Key, figure: str) -> str:
    """An inline SVG of one series: a line through the nightlies that have the figure, a dot per nightly,
    the latest dot marked (red when it regressed); an infinite time ("never") sits on the top edge."""
    values = trends.series.get((*key, figure))
    if values is None:
        return ""
    n = len(values)
    finite = [v for v in values if v is not None and math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if figure == "verdict":
        lo, hi = 0.0, 1.0
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5

    def sx(i: int) -> float:
        return PAD + (i / (n - 1) if n > 1 else 0.5) * (SPARK_W - 2 * PAD)

    def sy(v: float) -> float:
        f = 1.0 if math.isinf(v) else (v - lo) / (hi - lo)
        return SPARK_H - PAD - f * (SPARK_H - 2 * PAD)

    regressed = bool(trends.regressed(key, figure))
    path, pen, dots = [], False, []
    for i, v in enumerate(values):
        if v is None:
            pen = False
            continue
        x, y = sx(i), sy(v)
        path.append(f"{'L' if pen else 'M'}{x:.1f} {y:.1f}")
        pen = True
        cls = "pt"
        if math.isinf(v):
            cls += " never"
        if i == n - 1:
            cls += " last" + (" regressed" if regressed else "")
        nightly = trends.nightlies[i]
        dots.append(f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="{3 if i == n - 1 else 2}">'
                    f"<title>{escape(nightly.id)}: {escape(_text(figure, v))}</title></circle>")  # fmt: skip
    data = ",".join("" if v is None else str(_json_value(v)) for v in values)
    cls = "spark regressed" if regressed else "spark"
    return (f'<svg class="{cls}" viewBox="0 0 {SPARK_W} {SPARK_H}" width="{SPARK_W}" height="{SPARK_H}" '
            f'data-topology="{escape(key[0], quote=True)}" data-scenario="{escape(key[1], quote=True)}" '
            f'data-figure="{figure}" data-values="{escape(data, quote=True)}" role="img" '
            f'aria-label="{escape(LABELS[figure], quote=True)} over {n} nightlies">'
            f'<path class="trend" d="{"".join(path)}"/>{"".join(dots)}</svg>')  # fmt: skip


def trends_html(trends: Trends) -> str:
    head = "".join(f"<th>{escape(LABELS[f])}</th>" for f in FIGURES)
    rows = []
    for key in trends.pairs:
        cells = []
        for figure in FIGURES:
            values = trends.series.get((*key, figure))
            if values is None:
                cells.append('<td class="none">–</td>')
                continue
            latest = values[-1]
            prev = next((v for v in reversed(values[:-1]) if v is not None), None)
            found = trends.regressed(key, figure)
            marks = ""
            if found:
                marks = "".join(f'<div class="why">▲ {escape(r.against)}: {escape(_text(figure, r.reference))} → '
                                f"{escape(_text(figure, r.value))} ({escape(r.rule)})</div>" for r in found)  # fmt: skip
            attrs = f' data-regression="{" ".join(sorted({r.against for r in found}))}"' if found else ""
            was = f' <span class="was">(was {escape(_text(figure, prev))})</span>' if prev is not None else ""
            cells.append(f'<td class="fig{" regressed" if found else ""}" data-figure="{figure}"{attrs}>'
                         f"{sparkline(trends, key, figure)}<div class=now>{escape(_text(figure, latest))}{was}</div>"
                         f"{marks}</td>")  # fmt: skip
        state = ("missing" if key in trends.missing else "invalid" if key in trends.invalid
                 else "new" if key in trends.new else "")  # fmt: skip
        tag = f' <span class="tag {state}">{state}</span>' if state else ""
        rows.append(f'<tr class="pair {state}" data-topology="{escape(key[0], quote=True)}" '
                    f'data-scenario="{escape(key[1], quote=True)}"><th>{escape(key[1])}<br><span class=topo>on '
                    f"{escape(key[0])}</span>{tag}</th>{''.join(cells)}</tr>")  # fmt: skip
    items = "".join(f'<li class="regression" data-topology="{escape(r.topology, quote=True)}" '
                    f'data-scenario="{escape(r.scenario, quote=True)}" data-figure="{r.figure}">'
                    f"{escape(r.message)}</li>" for r in trends.regressions)  # fmt: skip
    last = trends.latest
    summary = (f"{len(trends.nightlies)} nightlies, latest {escape(last.id)}; {len(trends.regressions)} "
               f"regression(s), {len(trends.invalid)} invalid pair(s), {len(trends.missing)} missing"
               if last else "no nightly stored yet")  # fmt: skip
    status = "failed" if trends.failed else "passed"
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>ha-harness: nightly trends</title>"
        f'<style>{_CSS}</style></head><body data-status="{status}"><h1>Nightly trends</h1>'
        f'<p class="summary {status}">{summary}</p>'
        + (f'<h2>Regressions</h2><ul id="regressions">{items}</ul>' if items else "")
        + "<p class=note>One row per (scenario, topology), one sparkline per figure over the stored nightlies "
        "(oldest left; the latest dot is bigger, red when it regressed against the previous nightly or the "
        "rolling median baseline). Figures are medians over each nightly's runs of the pair.</p>"
        f'<table id="trends"><tr><th>pair</th>{head}</tr>{"".join(rows)}</table></body></html>\n'
    )


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1f2328;margin:20px}
h1{font-size:20px}.note{color:#59636e;max-width:900px}.summary.failed{color:#cf222e;font-weight:600}
.summary.passed{color:#1a7f37}li.regression{color:#cf222e}
table{border-collapse:collapse}th,td{border:1px solid #d1d9e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}.topo{font-weight:normal;color:#59636e}td.none{color:#8c959f}
td.regressed{background:#ffebe9}.now{font-variant-numeric:tabular-nums;white-space:nowrap}.was{color:#59636e}
.why{color:#cf222e;font-size:12px}.tag{font-size:11px;border-radius:3px;padding:0 4px;background:#eaeef2}
.tag.invalid,.tag.missing{background:#ffebe9;color:#cf222e}
svg.spark{display:block}.trend{fill:none;stroke:#0969da;stroke-width:1.5}.pt{fill:#0969da}
.pt.last{fill:#1f2328}.pt.regressed{fill:#cf222e}.pt.never{fill:#9a6700}
"""


def write_trends(trends: Trends, directory: Path) -> list[Path]:
    """``trends.html``, ``trends.json`` and ``regressions.md`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "trends.html", directory / "trends.json", directory / "regressions.md"]
    paths[0].write_text(trends_html(trends), encoding="utf-8")
    paths[1].write_text(json.dumps(jsonable(trends.to_dict()), indent=2) + "\n", encoding="utf-8")
    paths[2].write_text(regressions_md(trends), encoding="utf-8")
    return paths
