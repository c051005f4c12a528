"""Building list-append histories for the elle checker tests (not a test module)."""

from __future__ import annotations

from typing import Any

from harness.checkers import CheckContext, Result, check_elle
from harness.model.history import History

Mop = list[Any]


def A(k: Any, v: int) -> Mop:
    return ["append", k, v]


def R(k: Any, v: list[int] | None = None) -> Mop:
    return ["r", k, v]


def invoked(mops: list[Mop]) -> list[Mop]:
    """What the invoke carries: reads without their values."""
    return [[f, k, None] if f == "r" else [f, k, v] for f, k, v in mops]


def serial(*txns: tuple[str, list[Mop]]) -> History:
    """Each (type, mops) invoked and completed before the next, one process each."""
    ops: list[dict[str, Any]] = []
    for p, (type_, mops) in enumerate(txns):
        n = len(ops)
        ops.append(
            {"index": n, "process": p, "type": "invoke", "f": "txn", "value": invoked(mops), "time": n}
        )
        ops.append({"index": n + 1, "process": p, "type": type_, "f": "txn", "value": mops, "time": n + 1})
    return History.from_ops(ops)


def ops(*events: tuple[int, str, list[Mop]]) -> History:
    """Ops in the order given: (process, type, mops); an invoke's read values are dropped."""
    out: list[dict[str, Any]] = []
    for i, (p, type_, mops) in enumerate(events):
        value = invoked(mops) if type_ == "invoke" else mops
        out.append({"index": i, "process": p, "type": type_, "f": "txn", "value": value, "time": i})
    return History.from_ops(out)


def check(history: History, **options: Any) -> Result:
    return check_elle(history, CheckContext(options={"elle": options}))


def types(result: Result) -> list[str]:
    return list(result.figures["anomaly_types"])
