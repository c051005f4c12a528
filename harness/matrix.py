"""A matrix of runs: every (topology, scenario) pair that fits, each topology's scenarios on one reused
cluster (``harness.runner.run_scenarios``), then the comparison of what they produced.

``plan_matrix`` loads every file first: a file that is itself invalid is an InputError with every problem
(exit 2, nothing started); a pair that does not fit (a scenario with no workload for the system, a
partition on a system without a peer mesh…) is *skipped*, with the reason, not an error.

``reports/matrix-<UTC timestamp>/`` holds the runs (one directory each) and ``matrix.html``, ``matrix.md``,
``matrix.json`` (the comparison, the runs and the skipped pairs, read back by ``harness.report.trends``) and
``junit.xml`` (a testsuite per topology, a testcase per scenario run).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checkers.base import Result, Validity, jsonable, merge_valid
from harness.errors import InputError
from harness.model.loading import SpecError
from harness.model.nightly import resolve_paths
from harness.model.scenario import Scenario
from harness.model.topology import TopologyBase
from harness.report.compare import METRICS, Comparison, compare, html_page, markdown, summarise
from harness.report.trends import MATRIX_KIND
from harness.runner import RunOutcome, run_scenarios
from harness.runtime.base import Runtime
from harness.runtime.signals import no_interrupts

log = logging.getLogger(__name__)

__all__ = ["MATRIX_KIND", "MatrixPlan", "MatrixRun", "Pair", "Skipped", "expand", "figure_value", "matrix_dir",
           "outcome_doc", "plan_matrix", "run_matrix", "verdict_word", "write_matrix"]  # fmt: skip

MATRIX_VERSION = 1


@dataclass(frozen=True)
class Pair:
    topology_path: Path
    topology: TopologyBase
    scenario_path: Path
    scenario: Scenario


@dataclass(frozen=True)
class Skipped:
    topology_path: Path
    topology: str
    scenario_path: Path
    scenario: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"topology": self.topology, "scenario": self.scenario, "topology_file": str(self.topology_path),
                "scenario_file": str(self.scenario_path), "reason": self.reason}  # fmt: skip


@dataclass
class MatrixPlan:
    pairs: list[Pair] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def by_topology(self) -> list[tuple[Path, TopologyBase, list[Pair]]]:
        """The pairs grouped by topology file, in the order they were planned."""
        groups: dict[Path, tuple[TopologyBase, list[Pair]]] = {}
        for pair in self.pairs:
            groups.setdefault(pair.topology_path, (pair.topology, []))[1].append(pair)
        return [(path, topology, pairs) for path, (topology, pairs) in groups.items()]


@dataclass(frozen=True)
class MatrixRun:
    directory: Path
    plan: MatrixPlan
    outcomes: list[RunOutcome]
    comparison: Comparison | None
    doc: dict[str, Any]

    @property
    def valid(self) -> Validity:
        return merge_valid(o.result.valid for o in self.outcomes)


def expand(entries: Iterable[str | Path], base: Path = Path()) -> list[Path]:
    """Files, ``*.yaml`` of directories, glob matches; an entry that matches nothing is kept as it is (so
    that loading it says "file not found"). Duplicates once."""
    out: list[Path] = []
    for entry in entries:
        found = resolve_paths(base, str(entry))
        out.extend(found or [Path(entry) if Path(entry).is_absolute() else base / entry])
    return list(dict.fromkeys(out))


def plan_matrix(groups: Sequence[tuple[Sequence[Path], Sequence[Path]]]) -> MatrixPlan:
    """Every (topology, scenario) of each group (topology files × scenario files) that fits; the others as
    skipped. Raises SpecError with every problem of every file that is invalid by itself."""
    from harness.plan import Source, check_pair, check_scenario
    from harness.specs import load_scenario, load_topology

    problems: list[str] = []
    topologies: dict[Path, TopologyBase] = {}
    scenarios: dict[Path, Scenario] = {}
    for tpaths, spaths in groups:
        for path in tpaths:
            if path in topologies:
                continue
            try:
                topologies[path] = load_topology(path)
            except InputError as exc:
                problems.extend(p for p in str(exc).splitlines() if p not in problems)
        for path in spaths:
            if path in scenarios:
                continue
            try:
                scenario = load_scenario(path)
            except InputError as exc:
                problems.extend(p for p in str(exc).splitlines() if p not in problems)
                continue
            found = check_scenario(scenario, Source.of(scenario, path))
            problems.extend(p for p in found if p not in problems)
            if not found:
                scenarios[path] = scenario
    if problems:
        raise SpecError(problems)
    plan = MatrixPlan()
    seen: set[tuple[Path, Path]] = set()
    for tpaths, spaths in groups:
        for tpath in tpaths:
            topology = topologies[tpath]
            for spath in spaths:
                if (tpath, spath) in seen:
                    continue
                seen.add((tpath, spath))
                scenario = scenarios[spath]
                misfit = check_pair(scenario, topology, Source.of(scenario, spath))
                if misfit:
                    reasons = [p.split(": ", 1)[1] if ": " in p else p for p in misfit]
                    more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
                    plan.skipped.append(
                        Skipped(tpath, topology.name, spath, scenario.name, reasons[0] + more)
                    )
                else:
                    plan.pairs.append(Pair(tpath, topology, spath, scenario))
    return plan


def matrix_dir(reports: Path, prefix: str = "matrix", now: dt.datetime | None = None) -> Path:
    """``reports/<prefix>-<UTC timestamp>`` (``-2``, ``-3``… if one of that second exists), created."""
    stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = reports / f"{prefix}-{stamp}"
    k = 2
    while candidate.exists():
        candidate = reports / f"{prefix}-{stamp}-{k}"
        k += 1
    candidate.mkdir(parents=True)
    return candidate


def run_matrix(plan: MatrixPlan, *, runtime: Runtime, directory: Path, count: int = 1, keep: bool = False,
               seed: int = 0, on_outcome: Callable[[RunOutcome], None] | None = None,
               meta: Mapping[str, Any] | None = None) -> MatrixRun:  # fmt: skip
    """Each topology's pairs (``count`` times over, on one reused cluster) with ``run_scenarios``; the runs'
    directories go into ``directory``, then the matrix files (``write_matrix``)."""
    outcomes: list[RunOutcome] = []

    def finished(outcome: RunOutcome) -> None:
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    info = {"count": count, "seed": seed, **(meta or {})}
    try:
        for _, topology, pairs in plan.by_topology():
            scenarios = [p.scenario for p in pairs] * count
            run_scenarios(topology, scenarios, runtime=runtime, reports=directory, keep=keep, seed=seed,
                          on_outcome=finished)  # fmt: skip
    except KeyboardInterrupt:
        # the runs already finished stay, and so does their comparison (the cluster was removed by the runner)
        with no_interrupts():
            write_matrix(directory, plan, outcomes, {**info, "interrupted": True})
        log.warning(f"matrix interrupted: {len(outcomes)} run(s) finished, compared in {directory}/")
        raise
    return write_matrix(directory, plan, outcomes, info)


def verdict_word(valid: object) -> str:
    return {True: "valid", False: "invalid"}.get(valid, "unknown")  # type: ignore[call-overload]


def figure_value(value: float | None) -> float | str | None:
    """A figure for JSON: a number, None when absent, "never" for an infinite time (never recovered)."""
    if value is None:
        return None
    return "never" if math.isinf(value) else value


def outcome_doc(outcome: RunOutcome) -> dict[str, Any]:
    """One run as data: ids, directory, verdict, the headline figures, whether its cluster was reused."""
    summary = summarise(outcome.report_dir, outcome.result)
    return {"run_id": outcome.run_id, "report_dir": str(outcome.report_dir), "topology": summary.topology,
            "scenario": summary.scenario, "valid": outcome.result.valid,
            "verdict": verdict_word(outcome.result.valid),
            "figures": {k: figure_value(v) for k, v in summary.values.items()},
            "cluster_id": outcome.cluster_id or outcome.run_id, "reused": outcome.reused,
            "replaced": outcome.replaced}  # fmt: skip


def _cells(comparison: Comparison | None) -> list[dict[str, Any]]:
    if comparison is None:
        return []
    out = []
    for (topology, scenario), cell in sorted(comparison.cells.items()):
        figures = {}
        for m in METRICS:
            st = cell.stats(m.key)
            figures[m.key] = figure_value(st["median"]) if st is not None else None
        out.append({"topology": topology, "scenario": scenario, "valid": cell.valid, "runs": len(cell.runs),
                    "verdict": verdict_word(cell.valid), "figures": figures,
                    "status": {m.key: cell.status(m) for m in METRICS}})  # fmt: skip
    return out


def write_matrix(directory: Path, plan: MatrixPlan, outcomes: Sequence[RunOutcome],
                 meta: Mapping[str, Any]) -> MatrixRun:  # fmt: skip
    """``matrix.json``, ``matrix.md``, ``matrix.html`` and ``junit.xml`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    comparison = compare([o.report_dir for o in outcomes]) if outcomes else None
    valid = merge_valid(o.result.valid for o in outcomes)
    doc: dict[str, Any] = {
        "kind": MATRIX_KIND,
        "version": MATRIX_VERSION,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        **meta,
        "valid": valid,
        "verdict": verdict_word(valid),
        "cells": _cells(comparison),
        "runs": [outcome_doc(o) for o in outcomes],
        "skipped": [s.to_dict() for s in plan.skipped],
        "comparison": comparison.to_dict() if comparison is not None else None,
    }
    (directory / "matrix.json").write_text(json.dumps(jsonable(doc), indent=2) + "\n", encoding="utf-8")
    (directory / "matrix.md").write_text(_markdown(comparison, plan), encoding="utf-8")
    (directory / "matrix.html").write_text(_html(comparison, plan), encoding="utf-8")
    (directory / "junit.xml").write_bytes(junit_matrix(outcomes))
    return MatrixRun(directory, plan, list(outcomes), comparison, doc)


def _markdown(comparison: Comparison | None, plan: MatrixPlan) -> str:
    out = ["# Matrix\n"]
    out.append(markdown(comparison) if comparison is not None else "No pair ran.\n")
    if plan.skipped:
        out.append("\n## Skipped (does not fit)\n")
        out += [f"- {s.scenario} on {s.topology}: {s.reason}" for s in plan.skipped]
        out.append("")
    return "\n".join(out)


def _html(comparison: Comparison | None, plan: MatrixPlan) -> str:
    from html import escape

    page = html_page(comparison) if comparison is not None else html_page(Comparison([], [], {}))
    page = page.replace("<title>ha-harness: runs compared</title>", "<title>ha-harness: matrix</title>", 1)
    page = page.replace("<h1>Runs compared</h1>", "<h1>Matrix</h1>", 1)
    if plan.skipped:
        items = "".join(f'<li class="skipped" data-topology="{escape(s.topology, quote=True)}" '
                        f'data-scenario="{escape(s.scenario, quote=True)}">{escape(s.scenario)} on '
                        f"{escape(s.topology)}: {escape(s.reason)}</li>" for s in plan.skipped)  # fmt: skip
        page = page.replace(
            "<script>", f'<h2>Skipped (does not fit)</h2><ul id="skipped">{items}</ul><script>', 1
        )
    return page


# -- junit ----------------------------------------------------------------------------------------------------
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # not allowed in XML 1.0


def _clean(text: object) -> str:
    return _CONTROL.sub("?", str(text))


def _failing(result: Result) -> list[str]:
    """What made ``result`` invalid (or unknown): checks and broken bounds."""
    out = []
    for name, child in result.children.items():
        bounds = (
            child.details.get("bounds")
            if name == "guarantees" and isinstance(child.details, Mapping)
            else None
        )
        if isinstance(bounds, list):
            for b in bounds:
                if isinstance(b, Mapping) and b.get("passed") is not True:
                    out.append(
                        f"expect {b.get('name')} {b.get('op')} {b.get('bound')}: value {b.get('value')}"
                    )
        elif child.valid is not True:
            out.append(
                f"check {name} {verdict_word(child.valid)}"
                + (f": {'; '.join(child.notes)}" if child.notes else "")
            )
    return out


def junit_matrix(outcomes: Sequence[RunOutcome]) -> bytes:
    """One ``<testsuite>`` per topology, one ``<testcase>`` per scenario run (repeats numbered)."""
    root = ET.Element("testsuites", {"name": "ha-harness matrix"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suites: dict[str, tuple[ET.Element, dict[str, int]]] = {}
    seen: dict[tuple[str, str], int] = {}
    stamp = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0).isoformat()
    for outcome in outcomes:
        doc = outcome_doc(outcome)
        topology, scenario = doc["topology"], doc["scenario"]
        if topology not in suites:
            el = ET.SubElement(
                root, "testsuite", {"name": topology, "timestamp": stamp, "package": "ha-harness"}
            )
            suites[topology] = (el, {"tests": 0, "failures": 0, "errors": 0, "skipped": 0})
        suite, counts = suites[topology]
        n = seen[(topology, scenario)] = seen.get((topology, scenario), 0) + 1
        case = ET.SubElement(suite, "testcase", {"name": _clean(scenario if n == 1 else f"{scenario} #{n}"),
                                                 "classname": f"{topology}.{scenario}", "time": "0"})  # fmt: skip
        counts["tests"] += 1
        valid = outcome.result.valid
        reasons = _failing(outcome.result)
        if valid is False:
            ET.SubElement(
                case, "failure", {"message": _clean("; ".join(reasons) or "invalid"), "type": "invalid"}
            ).text = _clean("\n".join(reasons))
            counts["failures"] += 1
        elif valid != True:  # noqa: E712 - True, False or "unknown"
            ET.SubElement(
                case, "skipped", {"message": _clean("verdict unknown: " + ("; ".join(reasons) or "?"))}
            )
            counts["skipped"] += 1
        lines = [f"run_id = {doc['run_id']}", f"report_dir = {doc['report_dir']}",
                 f"cluster_id = {doc['cluster_id']}", f"reused = {str(doc['reused']).lower()}"]  # fmt: skip
        if doc["replaced"]:
            lines.append(f"replaced = {doc['replaced']}")
        lines += [f"{k} = {'null' if v is None else v}" for k, v in doc["figures"].items()]
        ET.SubElement(case, "system-out").text = _clean("\n".join(lines))
    for suite, counts in suites.values():
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"
