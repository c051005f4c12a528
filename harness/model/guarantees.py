"""Guarantees: bounds a scenario (or a topology, for defaults) states on the checkers' figures (``expect:``).

Here: the vocabulary and the one table, as data and parsing with no checker imported (specs validate their
``expect`` with it, and the model may not import the checkers); ``harness.checkers.guarantees`` judges the
bounds on a run's composed result.

The table, ``GUARANTEES``, maps a guarantee's name to where its figure lives: the checkers that may
hold it (the first one the run has wins: ``lost`` is the set checker's in a SQL run, the queue checker's in
an AMQP run) and the figure, read directly (``lost``), down a path (lag's ``overall.p99``) or derived
(``time_to_recover_s``: the slowest recovery from a fault, out of availability's outages).

A bound is a number (meaning ``==``) or a string ``"OP NUMBER"`` with OP one of ``== != < <= > >=``::

    expect:
      lost: 0
      availability: ">= 0.95"
      longest_outage_s: "<= 10"

A scenario's ``expect`` may also hold sections, a system or topology name mapping to bounds that apply to
that system or topology only (a scenario often runs on several, which do not all promise the same)::

    expect:
      unexpected: 0                  # every topology
      galera: {lost: 0}              # topologies of system galera
      rabbitmq-3: {lost: 0}          # the topology named rabbitmq-3 (quorum queues)

Which bound applies (``resolve_bounds``), per name, the later winning: the topology's ``expect``, the
scenario's own names, its section for the topology's system, its section for the topology's name.

``harness.checkers.guarantees.check_guarantees(result, bounds)`` adds a child ``guarantees`` to a composed
result::

    {"valid": ..., "figures": {name: value},
     "details": {"bounds": [{"name": "lost", "check": "set", "figure": "lost", "op": "==", "bound": 0,
                             "value": 0, "passed": true}, ...]}}

A breached bound makes the verdict False; a figure the run does not have (no such checker, a checker that
could not tell, a crashed one) makes that bound ``"unknown"``, never a pass.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from pydantic import ValidationError
from pydantic_core import InitErrorDetails

__all__ = [
    "GUARANTEES",
    "NEVER",
    "OPS",
    "Bound",
    "Guarantee",
    "expect_problems",
    "parse_bound",
    "resolve_bounds",
    "validate_expect",
]

NEVER = "never"
"""The value of a time figure whose event never ended (a fault the service never recovered from): it
compares as +infinity, so ``time_to_recover_s: "<= 15"`` is breached, not unknown."""

Value: TypeAlias = int | float | str  # a number, or NEVER
Reading: TypeAlias = tuple[Value | None, str]  # (value or None, why it is None)

OPS: Mapping[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
SECTION = re.compile(r"^[a-z][a-z0-9-]{0,40}$")  # a system or topology name
_BOUND = re.compile(r"^\s*(==|!=|<=|>=|<|>)?\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_SYNTAX = f"a bound is a number (meaning ==) or a string 'OP NUMBER', OP one of {' '.join(OPS)}"


@dataclass(frozen=True)
class Bound:
    """``op`` ``value``, e.g. ``<= 10``."""

    op: str
    value: int | float

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown operator {self.op!r}, expected one of: {', '.join(OPS)}")

    def holds(self, figure: Value) -> bool:
        """Does ``figure`` satisfy the bound? ``NEVER`` is +infinity."""
        x = math.inf if figure == NEVER else float(figure)
        return OPS[self.op](x, float(self.value))

    def __str__(self) -> str:
        return f"{self.op} {self.value}"


def parse_bound(raw: object) -> Bound:
    """A bound as written in YAML: ``0`` (== 0), ``0.95``, ``">= 0.95"``, ``"<2"``; ValueError otherwise."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        got = "a mapping" if isinstance(raw, Mapping) else "a list" if isinstance(raw, list) else repr(raw)
        raise ValueError(f"{_SYNTAX}, got {got}")
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise ValueError(f"{_SYNTAX}, got {raw!r} (not a finite number)")
        return Bound("==", raw)
    m = _BOUND.match(raw)
    if m is None:
        raise ValueError(f"{_SYNTAX}, got {raw!r}")
    op, number = m.group(1) or "==", m.group(2)
    value: int | float = int(number) if re.fullmatch(r"[-+]?\d+", number) else float(number)
    if not math.isfinite(value):
        raise ValueError(f"{_SYNTAX}, got {raw!r} (not a finite number)")
    return Bound(op, value)


# ------------------------------------------------------------------------------------------ the table
@dataclass(frozen=True)
class Guarantee:
    """Where a guarantee's figure lives: the checkers that may hold it (first present wins), the figure as
    shown in reports, and how to read it out of that checker's figures."""

    name: str
    checks: tuple[str, ...]
    figure: str
    description: str
    read: Callable[[Mapping[str, Any]], Reading]


def _at(*path: str) -> Callable[[Mapping[str, Any]], Reading]:
    """The number at ``path`` in a checker's figures."""

    def read(figures: Mapping[str, Any]) -> Reading:
        node: Any = figures
        for key in path:
            if not isinstance(node, Mapping) or node.get(key) is None:
                return None, f"no figure {'.'.join(path)}"
            node = node[key]
        if isinstance(node, bool) or not isinstance(node, int | float):
            return None, f"figure {'.'.join(path)} is not a number ({node!r})"
        return node, ""

    return read


def _count(key: str) -> Callable[[Mapping[str, Any]], Reading]:
    """How many entries the list at ``key`` holds (divergence's ``differing`` tables)."""

    def read(figures: Mapping[str, Any]) -> Reading:
        items = figures.get(key)
        if not isinstance(items, list | tuple):
            return None, f"no figure {key}"
        return len(items), ""

    return read


def _time_to_recover(figures: Mapping[str, Any]) -> Reading:
    """The slowest recovery from a fault, in seconds: the largest ``time_to_recover_ns`` of the outages the
    availability checker attributes to a fault event (from the event's end when the heal brought the
    service back, from its start when a failover did); ``NEVER`` when one of them never recovered; 0 when
    no fault caused an outage. Outages before any fault (``event: none``) are not recoveries from a fault
    (``longest_outage_s`` bounds them). Unknown when the outage list was cut short (``max_outages``)."""
    outages = figures.get("outages")
    count = figures.get("outage_count")
    if not isinstance(outages, list | tuple) or not isinstance(count, int):
        return None, "no figure outages"
    if count > len(outages):
        return None, f"only {len(outages)} of {count} outages listed (raise checks.availability.max_outages)"
    worst: float = 0.0
    for outage in outages:
        if not isinstance(outage, Mapping) or outage.get("event", "none") == "none":
            continue
        ttr = outage.get("time_to_recover_ns")
        if ttr is None:
            return NEVER, ""
        worst = max(worst, ttr / 1e9)
    return round(worst, 6), ""


_TABLE = (
    Guarantee("lost", ("set", "queue", "boot"), "lost",
              "acknowledged writes / confirmed messages / committed instance rows missing at the end",
              _at("lost")),
    Guarantee("lost_on_some_node", ("set",), "lost_on_some_node",
              "acknowledged writes missing from some node's final read", _at("lost_on_some_node")),
    Guarantee("unexpected", ("set", "queue", "boot"), "unexpected", "ids read or delivered that were never attempted",
              _at("unexpected")),
    Guarantee("fail_present", ("set", "queue"), "fail_present", "ids that failed yet are present",
              _at("fail_present")),
    Guarantee("duplicated", ("set", "queue", "boot"), "duplicated",
              "ids read twice (set), delivered more than once, redeliveries included (queue), or boot requests "
              "processed more than once (boot)", _at("duplicated")),
    Guarantee("stuck", ("boot",), "stuck", "accepted boot requests still BUILDING at the end", _at("stuck")),
    Guarantee("orphan_rows", ("boot",), "orphan_rows",
              "instance rows left BUILDING by a cast that was not confirmed", _at("orphan_rows")),
    Guarantee("messages_without_row", ("boot",), "messages_without_row",
              "boot messages a compute processed without finding their row", _at("messages_without_row")),
    Guarantee("boot_latency_p99_s", ("boot",), "latency_p99_s",
              "boot request to ACTIVE, 99th percentile, s", _at("latency_p99_s")),
    Guarantee("duplicated_unflagged", ("queue",), "duplicated_unflagged",
              "messages delivered again without the redelivered flag", _at("duplicated_unflagged")),
    Guarantee("divergent_tables", ("divergence",), "differing (count)",
              "tables whose final rows or checksums differ between nodes", _count("differing")),
    Guarantee("wrong_total_reads", ("bank",), "wrong_total_reads", "bank reads with the wrong total",
              _at("wrong_total_reads")),
    Guarantee("negative_reads", ("bank",), "negative_reads", "bank reads with a negative balance",
              _at("negative_reads")),
    Guarantee("bad_reads", ("counter",), "bad_reads", "stale, phantom or malformed counter reads",
              _at("bad_reads")),
    Guarantee("lost_updates", ("counter", "bank"), "lost_updates",
              "acknowledged increments (counter) or committed transfers' writes (bank) missing at the end",
              _at("lost_updates")),
    Guarantee("stale_reads", ("set-full",), "stale_reads",
              "reads lacking an id known before they began that a later read of the node holds",
              _at("stale_reads")),
    Guarantee("lost_after_seen", ("set-full",), "lost_after_seen",
              "ids a node's read held and a later read of the same node lacked", _at("lost_after_seen")),
    Guarantee("forbidden_anomalies", ("elle",), "forbidden_count",
              "transactional anomalies the elle check's consistency model forbids (cycles, aborted or "
              "intermediate reads, lost updates…)", _at("forbidden_count")),
    Guarantee("anomalies", ("elle",), "anomaly_count", "every anomaly elle found, allowed by its model or not",
              _at("anomaly_count")),
    Guarantee("availability", ("availability",), "availability",
              "fraction of offered 100 ms bins in which some write succeeded", _at("availability")),
    Guarantee("longest_outage_s", ("availability",), "longest_outage_s", "the longest outage, in seconds",
              _at("longest_outage_s")),
    Guarantee("outage_count", ("availability",), "outage_count", "how many outages", _at("outage_count")),
    Guarantee("time_to_recover_s", ("availability",), "outages.time_to_recover_ns (max, s)",
              "the slowest recovery from a fault, in seconds (never: it did not recover)", _time_to_recover),
    Guarantee("lag_p99_s", ("lag",), "overall.p99", "replication lag, 99th percentile over all nodes, s",
              _at("overall", "p99")),
    Guarantee("lag_max_s", ("lag",), "overall.max", "the highest replication lag seen, s",
              _at("overall", "max")),
)  # fmt: skip
GUARANTEES: Mapping[str, Guarantee] = {g.name: g for g in _TABLE}


# ------------------------------------------------------------------------------------------ validation
def expect_problems(expect: Any, *, sections: bool) -> list[tuple[tuple[str, ...], str]]:
    """Every problem of an ``expect`` mapping as (location inside it, message); empty when all is well.

    ``sections``: whether system/topology sections are allowed (a scenario's, not a topology's)."""
    if not isinstance(expect, Mapping):
        return [((), "expected a mapping of guarantee names to bounds")]
    known = ", ".join(GUARANTEES)
    problems: list[tuple[tuple[str, ...], str]] = []
    for key, raw in expect.items():
        name = str(key)
        if name in GUARANTEES:
            try:
                parse_bound(raw)
            except ValueError as e:
                problems.append(((name,), str(e)))
        elif sections and isinstance(raw, Mapping):
            if not SECTION.match(name):
                problems.append(((name,), f"not a guarantee ({known}) nor a system or topology name"))
                continue
            problems.extend(((name, *loc), message) for loc, message in expect_problems(raw, sections=False))
        else:
            also = " (or a system or topology name with bounds for it only)" if sections else ""
            problems.append(((name,), f"unknown guarantee {name!r}, expected one of: {known}{also}"))
    return problems


def validate_expect(expect: Any, *, sections: bool) -> Any:
    """``expect`` unchanged, or a pydantic ``ValidationError`` with one error per problem, located at its
    key (the spec loader turns each into ``FILE:LINE: expect.KEY: message``). For a model's validator."""
    problems = expect_problems(expect, sections=sections)
    if problems:
        errors = [InitErrorDetails(type="value_error", loc=loc, input=_at_loc(expect, loc),
                                   ctx={"error": ValueError(message)}) for loc, message in problems]  # fmt: skip
        raise ValidationError.from_exception_data("expect", errors)
    return expect


def _at_loc(doc: Any, loc: tuple[str, ...]) -> Any:
    for key in loc:
        doc = doc.get(key) if isinstance(doc, Mapping) else None
    return doc


def resolve_bounds(
    topology_expect: Mapping[str, Any], scenario_expect: Mapping[str, Any], *, system: str, topology: str
) -> dict[str, Bound]:
    """The bounds that apply to a run of a scenario on a topology, in table order: per name, the topology's
    ``expect``, overridden by the scenario's own names, then by its section for ``system``, then by its
    section for ``topology`` (both validated already; sections for other systems and topologies ignored)."""
    layers: list[Mapping[str, Any]] = [topology_expect, scenario_expect]
    for section in (system, topology):
        chosen = scenario_expect.get(section)
        if section not in GUARANTEES and isinstance(chosen, Mapping):
            layers.append(chosen)
    merged: dict[str, Bound] = {}
    for layer in layers:
        for name, raw in layer.items():
            if name in GUARANTEES:
                merged[name] = parse_bound(raw)
    return {name: merged[name] for name in GUARANTEES if name in merged}
