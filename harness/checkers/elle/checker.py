"""The ``elle`` checker: transactional anomalies of a list-append history, after Jepsen's Elle.

Parse the ``txn`` ops (``txn``), index their micro-ops (``mops``), infer each key's version order from the
reads (``versions``), find what needs no cycle (``direct``: G1a, G1b, lost updates; ``mops``: internal
inconsistency, duplicate appends; ``versions``: incompatible orders, duplicate elements), build the ww / wr
/ rw (+ real-time, process) graph (``graph``), take its strongly connected components (``scc``) and one
shortest cycle per anomaly class in each (``cycles``), and explain every example (``explain``).

Verdict: unknown without an ok txn; False when an anomaly the ``model`` forbids (``models``) was found;
else True (anomalies the model allows are still counted and shown).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from pydantic import Field

from harness.checkers.base import CheckContext, CheckerOptions, Result
from harness.checkers.elle.cycles import Cycle, find_cycles
from harness.checkers.elle.direct import g1a, g1b, lost_updates
from harness.checkers.elle.explain import Explainer
from harness.checkers.elle.graph import Graph, build_graph
from harness.checkers.elle.models import ANOMALIES, Model, forbidden, needs_realtime
from harness.checkers.elle.mops import index_mops
from harness.checkers.elle.txn import parse_txns
from harness.checkers.elle.versions import infer_versions
from harness.model.history import History

__all__ = ["ElleOptions", "check_elle"]


class ElleOptions(CheckerOptions):
    """``checks.elle``: the consistency model to hold the history to, and which orders to add."""

    model: Model = Field(default="serializable", description="the consistency model the history must satisfy")
    realtime: bool | None = Field(
        default=None, description="add real-time edges (default: when the model is strict-serializable)"
    )
    process: bool = Field(default=False, description="add process-order edges (-process anomalies)")
    f: str = Field(default="txn", description="the f of transaction ops")
    max_examples: int = Field(default=10, ge=0, description="examples listed per anomaly class")


def _txn_case(ex: Explainer, case: dict[str, Any], *roles: str) -> dict[str, Any]:
    out = dict(case)
    for role in roles:
        if role in out:
            out[role] = ex.txn(out[role])
    return out


def check_elle(history: History, ctx: CheckContext) -> Result:
    o = ctx.options_for("elle", ElleOptions)
    enabled = gc.isenabled()
    gc.disable()  # millions of small containers, none cyclic: the collector would walk them again and again
    try:
        return _check(history, o)
    finally:
        if enabled:
            gc.enable()


def _cycles(graph: Graph, *, ext: bool) -> tuple[list[Cycle], int]:
    """No search when the graph is acyclic (the usual valid history: then no real-time barriers are built
    either); else the search over the whole graph."""
    if graph.acyclic():
        return [], 0
    graph.complete()
    return find_cycles(graph.adj, graph.txns, ext=ext)


def _check(history: History, o: ElleOptions) -> Result:
    realtime = needs_realtime(o.model) if o.realtime is None else o.realtime
    txns = parse_txns(history, o.f)
    counts = txns.counts()
    ix = index_mops(txns)
    vs = infer_versions(ix)
    graph = build_graph(txns, ix, vs, realtime=realtime, process=o.process)
    cycles, scc_count = _cycles(graph, ext=realtime or o.process)
    ex = Explainer(txns, ix, vs)

    found: dict[str, list[dict[str, Any]]] = {}
    totals: dict[str, int] = {}

    def add(name: str, cases: list[Any], render: Callable[[Any], dict[str, Any]]) -> None:
        if cases:
            found[name] = [render(c) for c in cases[: o.max_examples]]
            totals[name] = len(cases)

    add("internal", ix.internal, lambda c: _txn_case(ex, c, "txn"))
    add("duplicate-appends", ix.duplicate_appends, lambda c: _txn_case(ex, c, "txn"))
    add("incompatible-order", vs.incompatible, lambda c: c)
    add("duplicate-elements", vs.duplicates, lambda c: _txn_case(ex, c, "txn"))
    add("G1a", g1a(ix, vs), lambda c: _txn_case(ex, c, "txn", "writer"))
    add("G1b", g1b(ix, vs), lambda c: _txn_case(ex, c, "txn", "writer"))
    add("lost-update", lost_updates(ix, vs), lambda c: {**c, "txns": [ex.txn(t) for t in c["txns"]]})
    by_class: dict[str, list[Any]] = {}
    for c in cycles:
        by_class.setdefault(c.anomaly, []).append(c)
    for name in ANOMALIES:
        if name in by_class:
            cs = sorted(by_class[name], key=lambda c: len(c.kinds))
            add(name, cs, ex.cycle)

    types = [a for a in ANOMALIES if a in totals]
    bad = [a for a in types if a in forbidden(o.model)]
    figures: dict[str, Any] = {
        "model": o.model,
        "txns": len(txns),
        "txns_ok": counts["ok"],
        "txns_fail": counts["fail"],
        "txns_info": counts["info"],
        "txns_malformed": len(txns.malformed),
        "keys": len(ix.writer.keys() | ix.reads.keys()),
        "edges": graph.edges,
        "sccs": scc_count,
        "cycles": len(cycles),
        "anomaly_types": types,
        "anomalies": {a: totals[a] for a in types},
        "anomaly_count": sum(totals.values()),
        "forbidden_count": sum(totals[a] for a in bad),
        "invalid_because": bad,
        "realtime": realtime,
        "process": o.process,
    }
    notes: list[str] = []
    if txns.malformed:
        notes.append(f"{len(txns.malformed)} txn(s) with a malformed value ignored")
    for a in types:
        verdict = f"forbidden by {o.model}" if a in bad else f"allowed by {o.model}"
        notes.append(f"{a}: {totals[a]} ({verdict})")
    first_cycle = next((found[a][0] for a in bad if "steps" in found[a][0]), None)
    if first_cycle is not None:
        notes.append(Explainer.text(first_cycle))
    details = {"anomalies": found} if found else {}
    if counts["ok"] == 0:
        notes.insert(0, f"no ok {o.f!r} op")
        return Result("unknown" if not bad else False, figures=figures, details=details, notes=tuple(notes))
    return Result(not bad, figures=figures, details=details, notes=tuple(notes))
