"""The bank checker: do snapshot reads always see the same total, with no negative balance?

History shape:

* ``transfer``: value ``{"from": a, "to": b, "amount": n}`` (accounts are ints or strings, amounts numbers);
  ok / fail / info as usual. Transfers are only counted: the invariant is checked on the reads.
* ``read``: ``ok`` value = ``{account: balance}`` for every account, read in one transaction. (JSON object
  keys are strings, so account 0 arrives as "0".)

Options (``ctx.options["bank"]``): see ``BankOptions``.

Verdict: unknown without any ok read; False when any read has the wrong total, a negative balance (unless
allowed), a null balance, or (with ``accounts``) the wrong set of accounts; else True.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from harness.checkers.base import CheckContext, CheckerOptions, Name, Result
from harness.model.history import FAIL, INFO, OK, History

__all__ = ["BankOptions", "check_bank"]


class BankOptions(CheckerOptions):
    """``checks.bank``: the invariant's total and accounts, and the op names."""

    expected_total: int | None = Field(
        default=None, description="the total every read must show, an integer (None: the first ok read's, noted as such)"
    )
    accounts: tuple[Name, ...] | None = Field(
        default=None, description="the full account list; when given, a read with other keys is a violation"
    )
    allow_negative: bool = Field(default=False, description="a negative balance is no violation")
    transfer_f: str = "transfer"
    read_f: str = "read"


def _read_problems(
    value: Any, expected: float | None, accounts: frozenset[str] | None, allow_negative: bool
) -> tuple[float | None, list[str], list[str]]:
    """(total or None, violation kinds, negative accounts) of one read."""
    if not isinstance(value, Mapping):
        return None, ["malformed"], []
    kinds: list[str] = []
    balances = list(value.values())
    if any(b is None or isinstance(b, bool) or not isinstance(b, int | float) for b in balances):
        kinds.append("nil_balance")
        total = None
    else:
        total = sum(balances)
        if expected is not None and total != expected:
            kinds.append("wrong_total")
    negative = sorted(str(k) for k, b in value.items() if isinstance(b, int | float) and b < 0)
    if negative and not allow_negative:
        kinds.append("negative")
    if accounts is not None and frozenset(str(k) for k in value) != accounts:
        kinds.append("unexpected_keys")
    return total, kinds, negative


def check_bank(history: History, ctx: CheckContext) -> Result:
    o = ctx.options_for("bank", BankOptions)
    read_f = o.read_f
    accounts = None if o.accounts is None else frozenset(o.accounts)

    tm = history.mask(o.transfer_f)
    figures: dict[str, Any] = {
        "transfers_ok": int((tm & (history.type == OK)).sum()),
        "transfers_failed": int((tm & (history.type == FAIL)).sum()),
        "transfers_indeterminate": int((tm & (history.type == INFO)).sum()),
    }
    rows = history.rows(read_f, "ok").tolist()
    figures["reads"] = len(rows)
    if not rows:
        return Result("unknown", figures=figures, notes=(f"no ok {read_f!r} op",))

    notes: list[str] = []
    expected = o.expected_total
    source = "option"
    if expected is None:
        first = history.value(rows[0])
        if isinstance(first, Mapping) and all(
            isinstance(b, int | float) and not isinstance(b, bool) for b in first.values()
        ):
            expected = sum(first.values())
            source = "first read"
            notes.append(f"expected total {expected} taken from the first read")
        else:
            source = "none"
            notes.append("no expected_total and the first read has no total: totals not checked")

    counts = {"wrong_total": 0, "negative": 0, "nil_balance": 0, "unexpected_keys": 0, "malformed": 0}
    negative_balances = 0
    totals: list[float] = []
    first_violation: dict[str, Any] | None = None
    for r in rows:
        value = history.value(r)
        total, kinds, negative = _read_problems(value, expected, accounts, o.allow_negative)
        negative_balances += len(negative)
        if total is not None:
            totals.append(total)
        for k in kinds:
            counts[k] += 1
        if kinds and first_violation is None:
            first_violation = {
                "index": int(history.index[r]),
                "time": int(history.time[r]),
                "kinds": kinds,
                "total": total,
                "expected": expected,
                "negative_accounts": negative,
            }
    figures.update(
        {
            "expected_total": expected,
            "expected_total_source": source,
            "wrong_total_reads": counts["wrong_total"],
            "negative_reads": counts["negative"],
            "negative_balances": negative_balances,
            "nil_balance_reads": counts["nil_balance"],
            "unexpected_key_reads": counts["unexpected_keys"],
            "malformed_reads": counts["malformed"],
            "min_total": min(totals) if totals else None,
            "max_total": max(totals) if totals else None,
            "first_violation": first_violation,
        }
    )
    bad = sum(counts.values())
    if first_violation is not None:
        where = first_violation["index"]
        notes.append(f"{bad} violation(s) in {len(rows)} read(s); first at op index {where}")
    return Result(not bad, figures=figures, notes=tuple(notes))
