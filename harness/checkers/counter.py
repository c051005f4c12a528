"""The counter checker (Jepsen's ``counter``, one counter per key): do reads see every acknowledged add,
and nothing that was never added? Finds stale reads and lost updates.

History shape:

* ``add``: value ``{"key": k, "delta": d}`` (k an int or a string, d an int; a completion without a value
  takes its invoke's); ``ok`` it happened, ``fail`` it certainly did not, ``info`` (or never completed) it
  may have.
* ``read``: ``ok`` value ``{"<key>": v, ...}`` for any subset of the keys. (JSON object keys are strings, so
  key 0 arrives as "0"; add keys are compared as strings too.)

Bounds of one key's value in a read (in history order; ``initial`` before any add), for deltas >= 0:

* lower = initial + the deltas of the ``ok`` adds *completed before the read was invoked*;
* upper = initial + the deltas of the ``ok`` and indeterminate adds *invoked before the read completed*.

(A negative delta counts the other way round: in the lower bound once invoked, in the upper once
acknowledged.) A value below its lower bound is a *stale* read, one above its upper bound a *phantom*
read: with increments, a stale read misses an acknowledged add and a phantom read shows an add that failed
or never was (with decrements the roles swap). Both are bad reads, as is a value that is not an integer
(*malformed*). A read counts once per key it returns.

A *final* read is an ok read invoked after every add was invoked and every ``ok``/``fail`` add completed
(the reads after heal): its bounds are [all ok adds, all ok + indeterminate adds]. *Lost updates* of a key =
how far the lowest final read falls below its lower bound (with unit deltas: the number of acknowledged adds
missing from the final value).

Options (``ctx.options["counter"]``): see ``CounterOptions``.

Figures: totals (keys, read ops, reads, bad/stale/phantom/malformed reads, lost updates, adds by outcome,
final reads, the first bad reads) and ``per_key``: reads, bad reads, adds by outcome, final value(s), the
bounds of a final value (all ok adds, all ok + indeterminate adds), lost updates.

Verdict: False on any bad read or lost update; else unknown without an ok read, when a key that was added
to has no final read, or when an add is malformed; else True.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import Field

from harness.checkers.base import CheckContext, CheckerOptions, Result
from harness.model.history import FAIL, INFO, OK, History

__all__ = ["CounterOptions", "check_counter"]

_KINDS = ("stale", "phantom", "malformed")


class CounterOptions(CheckerOptions):
    """``checks.counter``: the op names, every counter's initial value and how many bad reads to list."""

    add_f: str = "add"
    read_f: str = "read"
    initial: int = Field(default=0, description="every counter's value before any add")
    examples: int = Field(default=5, ge=0, description="how many bad reads to list")


@dataclass
class _Adds:
    """One key's adds as row-sorted prefix sums: ``certain`` at ``ok`` completions, ``possible`` at the
    invokes of every add that did not fail."""

    certain_rows: list[int] = field(default_factory=list)
    certain: list[int] = field(default_factory=list)
    possible_rows: list[int] = field(default_factory=list)
    possible: list[int] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=lambda: {"ok": 0, "fail": 0, "info": 0})


class _Sums:
    """Sum of the positive (or negative) deltas at rows before a given row, by binary search."""

    def __init__(self, rows: list[int], deltas: list[int]) -> None:
        order = np.argsort(np.asarray(rows, dtype=np.int64), kind="stable")
        self.rows = np.asarray(rows, dtype=np.int64)[order]
        d = np.asarray(deltas, dtype=np.int64)[order]
        self.pos = np.concatenate(([0], np.cumsum(np.maximum(d, 0))))
        self.neg = np.concatenate(([0], np.cumsum(np.minimum(d, 0))))

    def before(self, row: int) -> tuple[int, int]:
        i = int(np.searchsorted(self.rows, row, side="left"))
        return int(self.pos[i]), int(self.neg[i])


@dataclass
class _KeyTally:
    reads: int = 0
    kinds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_KINDS, 0))
    final_values: list[int] = field(default_factory=list)
    lost: int = 0

    @property
    def bad(self) -> int:
        return sum(self.kinds.values())

    def count(self, v: Any, lower: int, upper: int, final: bool) -> str | None:
        """Count one read of this key returning ``v``; what is wrong with it (a kind), or None."""
        self.reads += 1
        kind: str | None
        if isinstance(v, bool) or not isinstance(v, int):
            kind = "malformed"
        else:
            if final:
                self.final_values.append(v)
                self.lost = max(self.lost, lower - v)
            kind = "stale" if v < lower else "phantom" if v > upper else None
        if kind is not None:
            self.kinds[kind] += 1
        return kind


def _add_value(value: Any) -> tuple[str, int] | None:
    if not isinstance(value, Mapping) or "key" not in value:
        return None
    delta = value.get("delta")
    if isinstance(delta, bool) or not isinstance(delta, int):
        return None
    return str(value["key"]), delta


def _collect_adds(history: History, add_f: str) -> tuple[dict[str, _Adds], int, int]:
    """Per key: the adds; plus the last row before which no add can still be pending, and malformed adds."""
    adds: dict[str, _Adds] = {}
    last, malformed = -1, 0
    comp = history.completion_of
    for row in history.rows(add_f, "invoke").tolist():
        parsed = _add_value(history.value(row))
        c = int(comp[row])
        ctype = int(history.type[c]) if c >= 0 else INFO
        last = max(last, row, c if ctype in (OK, FAIL) else -1)
        if parsed is None:
            malformed += 1
            continue
        key, delta = parsed
        a = adds.setdefault(key, _Adds())
        a.outcomes[{OK: "ok", FAIL: "fail"}.get(ctype, "info")] += 1
        if ctype == FAIL:
            continue
        a.possible_rows.append(row)
        a.possible.append(delta)
        if ctype == OK:
            a.certain_rows.append(c)
            a.certain.append(delta)
    return adds, last, malformed


def _bounds(certain: _Sums, possible: _Sums, invoke: int, done: int, initial: int) -> tuple[int, int]:
    c_pos, c_neg = certain.before(invoke)
    p_pos, p_neg = possible.before(done)
    return initial + c_pos + p_neg, initial + p_pos + c_neg


def check_counter(history: History, ctx: CheckContext) -> Result:
    o = ctx.options_for("counter", CounterOptions)

    adds, last_add_row, malformed_adds = _collect_adds(history, o.add_f)
    sums = {
        k: (_Sums(a.certain_rows, a.certain), _Sums(a.possible_rows, a.possible)) for k, a in adds.items()
    }
    empty = (_Sums([], []), _Sums([], []))
    tallies: dict[str, _KeyTally] = {k: _KeyTally() for k in adds}
    examples: list[dict[str, Any]] = []
    read_rows = history.rows(o.read_f, "ok").tolist()
    invoke_of = history.invoke_of
    final_reads = 0
    for row in read_rows:
        inv = int(invoke_of[row])
        invoke = inv if inv >= 0 else row
        final = invoke > last_add_row
        final_reads += final
        value = history.value(row)
        items = value.items() if isinstance(value, Mapping) else [("*", None)]  # not a map: malformed
        for raw_key, v in items:
            key = str(raw_key)
            lower, upper = _bounds(*sums.get(key, empty), invoke, row, o.initial)
            kind = tallies.setdefault(key, _KeyTally()).count(v, lower, upper, final)
            if kind is not None and len(examples) < o.examples:
                examples.append({"index": int(history.index[row]), "node": history.op(row).node, "key": key,
                                 "value": v, "lower": lower, "upper": upper, "kind": kind, "final": final})  # fmt: skip
    end = len(history)
    bounds = {k: _bounds(*sums.get(k, empty), end, end, o.initial) for k in tallies}
    return _result(adds, tallies, bounds, examples, len(read_rows), final_reads, malformed_adds)


def _result(
    adds: dict[str, _Adds],
    tallies: dict[str, _KeyTally],
    bounds: dict[str, tuple[int, int]],
    examples: list[dict[str, Any]],
    read_ops: int,
    final_reads: int,
    malformed_adds: int,
) -> Result:
    per_key: dict[str, dict[str, Any]] = {}
    for key in sorted(tallies, key=_key_order):
        t, outcomes = tallies[key], (adds[key].outcomes if key in adds else {"ok": 0, "fail": 0, "info": 0})
        per_key[key] = {
            "reads": t.reads,
            "bad_reads": t.bad,
            "adds_ok": outcomes["ok"],
            "adds_failed": outcomes["fail"],
            "adds_indeterminate": outcomes["info"],
            "final_value": min(t.final_values) if t.final_values else None,
            "final_values": sorted(set(t.final_values)),
            "bounds": list(bounds[key]),
            "lost_updates": t.lost,
        }
    figures: dict[str, Any] = {
        "keys": len(per_key),
        "read_ops": read_ops,
        "final_reads": final_reads,
        "reads": sum(t.reads for t in tallies.values()),
        "bad_reads": sum(t.bad for t in tallies.values()),
        **{f"{k}_reads": sum(t.kinds[k] for t in tallies.values()) for k in _KINDS},
        "lost_updates": sum(t.lost for t in tallies.values()),
        "adds_ok": sum(a.outcomes["ok"] for a in adds.values()),
        "adds_failed": sum(a.outcomes["fail"] for a in adds.values()),
        "adds_indeterminate": sum(a.outcomes["info"] for a in adds.values()),
        "malformed_adds": malformed_adds,
        "first_bad_reads": examples,
        "per_key": per_key,
    }
    return _verdict(figures, adds, tallies)


def _verdict(figures: dict[str, Any], adds: dict[str, _Adds], tallies: dict[str, _KeyTally]) -> Result:
    notes: list[str] = []
    if figures["bad_reads"] or figures["lost_updates"]:
        notes.append(f"{figures['bad_reads']} bad read(s), {figures['lost_updates']} lost update(s)")
        return Result(False, figures=figures, notes=tuple(notes))
    if not figures["read_ops"]:
        return Result("unknown", figures=figures, notes=("no ok read",))
    unread = sorted((k for k in adds if not tallies[k].final_values), key=_key_order)
    if unread:
        notes.append(f"no final read of key(s) {', '.join(unread)}: lost updates not judged")
    if figures["malformed_adds"]:
        notes.append(f"{figures['malformed_adds']} malformed add(s): bounds not trustworthy")
    return Result("unknown" if notes else True, figures=figures, notes=tuple(notes))


def _key_order(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.lstrip("-").isdigit() else (1, key)
