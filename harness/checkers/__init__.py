"""Pure checkers: history (+ events, samples, checksums) → figures and a three-valued verdict.

The built-ins are listed explicitly in ``CHECKERS`` (no import-time scanning); ``get_checker(name)`` looks
one up and ``build(names)`` composes several. ``CHECK_OPTIONS`` holds each one's options model;
``check_options(name, options)`` validates one checker's options and ``validate_check_options(checks)``
a scenario's whole ``checks:`` mapping, without running anything. See ``harness.checkers.base`` for the
contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.checkers.availability import AvailabilityOptions, check_availability
from harness.checkers.bank import BankOptions, check_bank
from harness.checkers.base import (
    CheckContext,
    Checker,
    CheckerOptions,
    OptionsError,
    Problem,
    Result,
    Validity,
    check_safe,
    compose,
    merge_valid,
    parse_options,
)
from harness.checkers.boot import BootOptions, check_boot
from harness.checkers.counter import CounterOptions, check_counter
from harness.checkers.divergence import DivergenceOptions, check_divergence
from harness.checkers.elle import ElleOptions, check_elle
from harness.checkers.lag import LagOptions, check_lag
from harness.checkers.loss import SetOptions, check_set
from harness.checkers.queue import QueueOptions, check_queue
from harness.checkers.set_full import SetFullOptions, check_set_full
from harness.errors import InputError

__all__ = [
    "CHECKERS",
    "CHECK_OPTIONS",
    "AvailabilityOptions",
    "BankOptions",
    "BootOptions",
    "CheckContext",
    "Checker",
    "CheckerOptions",
    "CounterOptions",
    "DivergenceOptions",
    "ElleOptions",
    "LagOptions",
    "OptionsError",
    "Problem",
    "QueueOptions",
    "Result",
    "SetFullOptions",
    "SetOptions",
    "Validity",
    "build",
    "check_availability",
    "check_bank",
    "check_boot",
    "check_counter",
    "check_divergence",
    "check_elle",
    "check_lag",
    "check_options",
    "check_queue",
    "check_safe",
    "check_set",
    "check_set_full",
    "compose",
    "get_checker",
    "merge_valid",
    "validate_check_options",
]

CHECKERS: Mapping[str, Checker] = {
    "set": check_set,
    "set-full": check_set_full,
    "queue": check_queue,
    "bank": check_bank,
    "counter": check_counter,
    "availability": check_availability,
    "lag": check_lag,
    "divergence": check_divergence,
    "elle": check_elle,
    "boot": check_boot,
}

CHECK_OPTIONS: Mapping[str, type[CheckerOptions]] = {
    "set": SetOptions,
    "set-full": SetFullOptions,
    "queue": QueueOptions,
    "bank": BankOptions,
    "counter": CounterOptions,
    "availability": AvailabilityOptions,
    "lag": LagOptions,
    "divergence": DivergenceOptions,
    "elle": ElleOptions,
    "boot": BootOptions,
}


def _unknown(name: str) -> str:
    return f"unknown checker {name!r}, expected one of: {', '.join(CHECKERS)}"


def get_checker(name: str) -> Checker:
    try:
        return CHECKERS[name]
    except KeyError:
        raise InputError(_unknown(name)) from None


def build(names: Iterable[str]) -> Checker:
    """``compose`` of the named built-ins, in the order given."""
    return compose({n: get_checker(n) for n in names})


def check_options(name: str, options: Mapping[str, Any]) -> CheckerOptions:
    """The options of checker ``name`` as its model; ``OptionsError`` (an ``InputError``) for an unknown
    checker or bad options, with every problem in ``problems``."""
    model = CHECK_OPTIONS.get(name)
    if model is None:
        raise OptionsError([(("checks", name), _unknown(name))])
    return parse_options(name, model, options)


def validate_check_options(checks: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    """Every problem of a scenario's ``checks:`` (checker name → options) as (location, message), the
    location starting with "checks", e.g. ``(("checks", "lag", "max_lag"), "unknown option 'max_lag', …")``;
    empty when all is well. Nothing is run."""
    problems: list[Problem] = []
    for name, options in checks.items():
        try:
            check_options(name, options)
        except OptionsError as e:
            problems.extend(e.problems)
    return problems
