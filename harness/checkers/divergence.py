"""The divergence checker: do all nodes end with the same data?

Input: ``ctx.checksums`` = ``{node: {table: {"rows": int, "checksum": str}}}``, taken after the final heal
and quiesce (e.g. ``CHECKSUM TABLE`` or an ordered hash per table). The history is not read.

A table *differs* when some node lacks it or two nodes disagree on its rows or checksum.
Figures: nodes, tables, differing (table names), and per differing table the entry of each node
(None where missing).

Options (``ctx.options["divergence"]``): see ``DivergenceOptions``.

Verdict: unknown without checksums or with fewer than two nodes; False when any table differs; else True.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from harness.checkers.base import CheckContext, CheckerOptions, Name, Result
from harness.model.history import History

__all__ = ["DivergenceOptions", "check_divergence"]


class DivergenceOptions(CheckerOptions):
    """``checks.divergence``: which tables to compare."""

    tables: tuple[Name, ...] | None = Field(default=None, description="only compare these (None: all)")


def _entry(e: Any) -> dict[str, Any] | None:
    if e is None:
        return None
    if not isinstance(e, Mapping):
        raise ValueError(f"a checksum entry must be {{'rows': n, 'checksum': str}}, not {e!r}")
    return {"rows": e.get("rows"), "checksum": e.get("checksum")}


def check_divergence(history: History, ctx: CheckContext) -> Result:
    o = ctx.options_for("divergence", DivergenceOptions)
    sums = ctx.checksums
    if not sums:
        return Result("unknown", notes=("no final checksums",))
    nodes = sorted(sums)
    if len(nodes) < 2:
        return Result("unknown", figures={"nodes": nodes}, notes=("fewer than two nodes to compare",))
    tables = sorted({t for n in nodes for t in sums[n]} if o.tables is None else set(o.tables))
    differing: dict[str, dict[str, Any]] = {}
    for table in tables:
        by_node = {n: _entry(sums[n].get(table)) for n in nodes}
        if len({None if e is None else (e["rows"], e["checksum"]) for e in by_node.values()}) > 1:
            differing[table] = by_node
    figures = {
        "nodes": nodes,
        "tables": len(tables),
        "differing": list(differing),
        "by_table": differing,
    }
    notes = tuple(f"table {t} differs between nodes" for t in differing)
    return Result(not differing, figures=figures, notes=notes)
