"""Judging a run's guarantees: ``check_guarantees(composed result, bounds)`` adds the child ``guarantees``.

The table of guarantees, bounds and their parsing live in ``harness.model.guarantees`` (specs validate
``expect`` with them); they are re-exported here. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from harness.checkers.base import Result, Validity, merge_valid
from harness.model.guarantees import (
    GUARANTEES,
    NEVER,
    OPS,
    Bound,
    Guarantee,
    Value,
    expect_problems,
    parse_bound,
    resolve_bounds,
    validate_expect,
)

__all__ = [
    "GUARANTEES",
    "NEVER",
    "OPS",
    "Bound",
    "Guarantee",
    "check_guarantees",
    "expect_problems",
    "parse_bound",
    "resolve_bounds",
    "validate_expect",
]


def check_guarantees(result: Result, bounds: Mapping[str, Bound]) -> Result:
    """``result`` (composed: one child per checker) with a child ``guarantees`` judging ``bounds``, and its
    verdict merged in. No bounds: ``result`` unchanged. An unknown guarantee name is a ValueError."""
    if not bounds:
        return result
    rows: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    notes: list[str] = []
    for name, bound in bounds.items():
        g = GUARANTEES.get(name)
        if g is None:
            raise ValueError(f"unknown guarantee {name!r}, expected one of: {', '.join(GUARANTEES)}")
        check = next((c for c in g.checks if c in result.children), None)
        value: Value | None = None
        passed: Validity = "unknown"
        if check is None:
            notes.append(f"{name} {bound}: unknown, the run has no {_either(g.checks)} checker")
        else:
            child = result.children[check]
            value, why = g.read(child.figures)
            if value is None:
                said = (
                    f"; {check} says: {child.error or '; '.join(child.notes)}"
                    if child.error or child.notes
                    else ""
                )
                notes.append(f"{name} {bound}: unknown, {check} has {why}{said}")
            else:
                passed = bound.holds(value)
                if not passed:
                    notes.append(f"{name} {bound} breached: {check}.{g.figure} = {value}")
        figures[name] = value
        rows.append({"name": name, "check": check or "|".join(g.checks), "figure": g.figure, "op": bound.op,
                     "bound": bound.value, "value": value, "passed": passed})  # fmt: skip
    child = Result(merge_valid(r["passed"] for r in rows), figures=figures, details={"bounds": rows},
                   notes=tuple(notes))  # fmt: skip
    children = {**{k: v for k, v in result.children.items() if k != "guarantees"}, "guarantees": child}
    return dataclasses.replace(
        result, valid=merge_valid(c.valid for c in children.values()), children=children
    )


def _either(names: tuple[str, ...]) -> str:
    """``set``, ``set or queue``, ``set, queue or boot``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
