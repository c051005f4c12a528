"""The set checker: were acknowledged inserts kept? (Jepsen's ``set`` checker, plus per-node reads.)

History shape (ids are integers, unique per attempt):

* ``{"f": "add", "type": "invoke", "value": 17}``, completed ``ok`` (committed), ``fail`` (certainly not
  committed) or ``info`` (unknown: timeout, connection lost before the commit ack). The completion's value is
  the id too (null is taken to mean "same as the invoke").
* ``{"f": "read", "type": "ok", "value": [1, 2, 17, ...], "node": "n1"}``: the final read after healing
  and quiescing, one per node (``node`` says which; null counts as one node, "*"). The last ok read of a node
  is its final read.

Buckets (sets of ids): attempted (every add invoke), acknowledged (ok), failed (fail and never ok),
indeterminate (neither ok nor fail: info or never completed). Against the union of the final reads:
*lost* = acknowledged and absent; *unexpected* = present, never attempted; *recovered* = indeterminate and
present; *fail_present* = failed yet present (a violation: a ``fail`` must not have happened);
*duplicated* = read more than once within one read. Per node ("all nodes"): an acknowledged id absent from
that node's final read is lost on that node.

Options (``ctx.options["set"]``): see ``SetOptions``.

Verdict: unknown without any final read; False on lost, unexpected, fail_present or duplicated ids (or
per-node loss when ``require_all_nodes``); else True.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from harness.checkers.base import CheckContext, CheckerOptions, Name, Result, Validity, merge_valid
from harness.checkers.common import (
    MAX_RANGES,
    as_id_array,
    attribute,
    compact_ranges,
    duplicated,
    isin,
    pct,
    setdiff,
    unique_sorted,
)
from harness.model.history import History

__all__ = ["SetOptions", "check_set", "first_per_id", "int_ids", "last_per_node"]

_ANY_NODE = "*"


class SetOptions(CheckerOptions):
    """``checks.set``: the op names, which nodes must have kept every id, and the ranges listed."""

    add_f: str = "add"
    read_f: str = "read"
    require_all_nodes: bool = Field(
        default=True,
        description="a node missing an acknowledged id makes the run invalid, one without a final read unknown",
    )
    nodes: tuple[Name, ...] | None = Field(
        default=None,
        description="the nodes expected to have a final read (None: every node that attempted one)",
    )
    max_ranges: int = Field(default=MAX_RANGES, ge=0, description="id ranges listed per figure")


def int_ids(history: History, rows: np.ndarray, what: str) -> np.ndarray:
    """Integer ids of ``rows`` (completions fall back to their invoke's value); other values are errors."""
    vals, present = history.int_values(rows)
    if not present.all():
        bad = int(history.index[rows[np.flatnonzero(~present)[0]]])
        raise ValueError(f"{what}: op index {bad} has no integer id")
    return vals


def first_per_id(ids: np.ndarray, times: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each id of ``wanted`` (sorted, distinct) occurring in ``ids``, the time of its first occurrence."""
    m = isin(ids, wanted)
    sel_ids, sel_t = ids[m], times[m]
    if len(sel_ids) == 0:
        return np.asarray(sel_t, dtype=np.int64)
    order = np.argsort(sel_ids, kind="stable")
    s = sel_ids[order]
    first = np.concatenate(([True], s[1:] != s[:-1]))
    out: np.ndarray = sel_t[order][first]
    return out


def last_per_node(history: History, rows: np.ndarray) -> dict[str, int]:
    """{node name (or "*"): last row} for ``rows``, ordered by node name."""
    last: dict[str, int] = {}
    for r in rows.tolist():
        name = history.node_name(int(history.node[r]))
        last[_ANY_NODE if name is None else name] = r
    return dict(sorted(last.items()))


def check_set(history: History, ctx: CheckContext) -> Result:
    o = ctx.options_for("set", SetOptions)
    add_f, read_f, max_ranges = o.add_f, o.read_f, o.max_ranges
    events = ctx.sorted_events()

    attempted = unique_sorted(int_ids(history, history.rows(add_f, "invoke"), "add invoke"))
    ok_rows = history.rows(add_f, "ok")
    ok_ids = int_ids(history, ok_rows, "ok add")
    acked = unique_sorted(ok_ids)
    failed = setdiff(unique_sorted(int_ids(history, history.rows(add_f, "fail"), "failed add")), acked)
    indeterminate = setdiff(setdiff(attempted, acked), failed)

    figures: dict[str, Any] = {
        "attempted": len(attempted),
        "acknowledged": len(acked),
        "failed": len(failed),
        "indeterminate": len(indeterminate),
    }

    final = last_per_node(history, history.rows(read_f, "ok"))
    if not final:
        return Result("unknown", figures=figures, notes=(f"no final read (no ok {read_f!r} op)",))
    reads = {node: as_id_array(history.value(r), f"{read_f} of {node}") for node, r in final.items()}
    union = unique_sorted(np.concatenate(list(reads.values())))

    dup_ids = unique_sorted(np.concatenate([duplicated(a)[0] for a in reads.values()]))
    lost = setdiff(acked, union)
    unexpected = setdiff(union, attempted)
    recovered = indeterminate[isin(indeterminate, union)]
    fail_present = failed[isin(failed, union)]
    ok_times = history.time[ok_rows]
    lost_t = first_per_id(ok_ids, ok_times, lost)

    expected_nodes = _expected_nodes(history, read_f, final, o.nodes)
    missing_read = sorted(set(expected_nodes) - set(final))
    per_node: dict[str, dict[str, Any]] = {}
    lost_somewhere = np.zeros(len(acked), dtype=bool)
    for node, ids in reads.items():
        present = isin(acked, ids)
        lost_somewhere |= ~present
        node_lost = acked[~present]
        per_node[node] = {
            "read": len(ids),
            "lost": len(node_lost),
            "lost_ranges": compact_ranges(node_lost, max_ranges),
            "lost_by_event": attribute(first_per_id(ok_ids, ok_times, node_lost), events),
        }
    lost_any_node = int(lost_somewhere.sum())

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
            "duplicated": len(dup_ids),
            "duplicated_ranges": compact_ranges(dup_ids, max_ranges),
            "fail_present": len(fail_present),
            "fail_present_ranges": compact_ranges(fail_present, max_ranges),
            "read_nodes": list(final),
            "nodes_missing_read": missing_read,
            "lost_on_some_node": lost_any_node,
            "lost_on_some_node_pct": pct(lost_any_node, len(acked)),
            "per_node": per_node,
        }
    )

    notes: list[str] = []
    verdicts: list[Validity] = [True]
    for name in ("lost", "unexpected", "fail_present", "duplicated"):
        if figures[name]:
            verdicts.append(False)
            notes.append(f"{figures[name]} {name.replace('_', ' ')} id(s): {figures[name + '_ranges']}")
    if o.require_all_nodes:
        if lost_any_node > len(lost):
            verdicts.append(False)
            notes.append(f"{lost_any_node} acknowledged id(s) missing from some node's final read")
        if missing_read:
            verdicts.append("unknown")
            notes.append(f"no final read from node(s) {', '.join(missing_read)}")
    return Result(merge_valid(verdicts), figures=figures, notes=tuple(notes))


def _expected_nodes(
    history: History, read_f: str, final: dict[str, int], given: tuple[str, ...] | None
) -> list[str]:
    """Nodes that should have a final read: ``given``, else every node that attempted a read."""
    if given is not None:
        return sorted(given)
    return sorted(set(last_per_node(history, history.rows(read_f))) | set(final))
