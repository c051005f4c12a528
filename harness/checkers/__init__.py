"""Pure checkers: history (+ events, samples, checksums) → figures and a three-valued verdict.

The built-ins are listed explicitly in ``CHECKERS`` (no import-time scanning); ``get_checker(name)`` looks
one up and ``build(names)`` composes several. See ``harness.checkers.base`` for the contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from harness.checkers.availability import check_availability
from harness.checkers.bank import check_bank
from harness.checkers.base import (
    CheckContext,
    Checker,
    Result,
    Validity,
    check_safe,
    compose,
    merge_valid,
)
from harness.checkers.counter import check_counter
from harness.checkers.divergence import check_divergence
from harness.checkers.lag import check_lag
from harness.checkers.loss import check_set
from harness.checkers.queue import check_queue
from harness.errors import InputError

__all__ = [
    "CHECKERS",
    "CheckContext",
    "Checker",
    "Result",
    "Validity",
    "build",
    "check_availability",
    "check_bank",
    "check_counter",
    "check_divergence",
    "check_lag",
    "check_queue",
    "check_safe",
    "check_set",
    "compose",
    "get_checker",
    "merge_valid",
]

CHECKERS: Mapping[str, Checker] = {
    "set": check_set,
    "queue": check_queue,
    "bank": check_bank,
    "counter": check_counter,
    "availability": check_availability,
    "lag": check_lag,
    "divergence": check_divergence,
}


def get_checker(name: str) -> Checker:
    try:
        return CHECKERS[name]
    except KeyError:
        raise InputError(f"unknown checker {name!r}; known: {', '.join(CHECKERS)}") from None


def build(names: Iterable[str]) -> Checker:
    """``compose`` of the named built-ins, in the order given."""
    return compose({n: get_checker(n) for n in names})
