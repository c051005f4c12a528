"""The bank checker: do snapshot reads always see the same total, with no negative balance, and did every
committed transfer take effect?

History shape:

* ``transfer``: value ``{"from": a, "to": b, "amount": n}`` (accounts are ints or strings, amounts numbers);
  ok / fail / info as usual. A completion may carry its own value with ``retries`` (how many attempts the
  workload retried, sql-bank's ``compare-and-set``) and ``retried_on`` (``{reason: count}``).
* ``read``: ``ok`` value = ``{account: balance}`` for every account, read in one transaction. (JSON object
  keys are strings, so account 0 arrives as "0".) The *final reads* are the ok reads invoked after the
  last transfer op (sql-bank's one read per node after heal); the last one per node counts.

Options (``ctx.options["bank"]``): see ``BankOptions``.

Definitions:

* A **wrong read** is an ok read whose total differs from the expected total (``wrong_total_reads``). It
  says what a reader saw, not why: either the read was not a snapshot (a read anomaly), or the stored
  state itself had lost or gained money (lost updates, below), which every later read then shows too.
* The **expected final balance** of an account is its opening balance (``opening_balance``) plus the
  amounts of the ok transfers into it minus those out of it. An indeterminate transfer (``info``, or never
  completed) may or may not have applied: it widens the account's expected range by its amount, on the
  side it would move it. The final balance's **discrepancy** is its distance from that range (0 inside).
* A **lost update** is a write of an ok transfer that the final state does not reflect: with absolute
  writes (read-modify-write, sql-bank ``locking: none``) a later transaction that read the old balance
  overwrote it. A missing debit leaves an account above its expected balance, a missing credit below.
  ``lost_update_amount`` is the sum of the discrepancies' sizes over the accounts of the first final read
  (by node name); ``lost_update_accounts`` lists the accounts off. ``lost_updates`` counts the lost writes,
  a lower bound: for an account whose discrepancy equals the amount of one ok transfer out of it (above)
  or into it (below), one write (and that transfer, when it is the only such one, is listed in
  ``lost_update_transfers`` by op index); otherwise at least max(2, ⌈|discrepancy| / its largest such
  amount⌉). Lost debits and credits of one account can cancel out, so a zero discrepancy does not prove
  no update was lost; a non-zero one proves one was (or that a failed transfer applied, or the final read
  is wrong). ``final_total_drift`` = the final total − the expected total: money created (> 0) or
  destroyed (< 0); with relative writes (``balance = balance − n``) transfers conserve it whatever the
  interleaving.
* Retries: ``retries_per_committed_transfer`` = mean and max of ``retries`` over ok transfers that carry
  it (None when none does); ``retried_on`` sums their reasons.
* Errors (``harness.checkers.errors``): ``aborts_by_code`` (failed transfers by MySQL code: 1213 deadlock
  or certification failure, …), ``failed_by_reason``, ``indeterminate_by_reason``.

Verdict: unknown without any ok read; False when any read has the wrong total, a negative balance (unless
allowed), a null balance, or (with ``accounts``) the wrong set of accounts, or (with ``opening_balance``
and a final read) any lost update; else True.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from harness.checkers.base import CheckContext, CheckerOptions, Name, Result
from harness.checkers.errors import error_summary
from harness.model.history import FAIL, INFO, INVOKE, OK, History

__all__ = ["BankOptions", "check_bank"]


class BankOptions(CheckerOptions):
    """``checks.bank``: the invariant's total and accounts, and the op names."""

    expected_total: int | None = Field(
        default=None,
        description="the total every read must show, an integer (None: the first ok read's, noted as such)",
    )
    accounts: tuple[Name, ...] | None = Field(
        default=None, description="the full account list; when given, a read with other keys is a violation"
    )
    allow_negative: bool = Field(default=False, description="a negative balance is no violation")
    transfer_f: str = "transfer"
    read_f: str = "read"
    opening_balance: int | None = Field(
        default=None,
        description="every account's opening balance (sql-bank's balance); None: lost updates not computed",
    )


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
    figures.update(error_summary(history, o.transfer_f))
    figures.update(_retries(history, o.transfer_f))
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
    lost, lost_notes = _lost_updates(history, o, expected)
    figures.update(lost)
    notes.extend(lost_notes)
    if lost.get("lost_update_amount"):
        bad += 1
        notes.append(
            f"lost updates: {lost['lost_update_amount']} moved by committed transfers missing from the final "
            f"balances of account(s) {', '.join(lost['lost_update_accounts'])} (at least {lost['lost_updates']} "
            "write(s))"
        )
    return Result(not bad, figures=figures, notes=tuple(notes))


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _transfer_value(history: History, row: int) -> Mapping[str, Any] | None:
    """A transfer's value: the completion's own, else its invoke's; None when malformed."""
    value = history.value(row)
    if value is None and history.type[row] != INVOKE:
        inv = int(history.invoke_of[row])
        value = history.value(inv) if inv >= 0 else None
    if not isinstance(value, Mapping) or not _number(value.get("amount")):
        return None
    if value.get("from") is None or value.get("to") is None:
        return None
    return value


def _retries(history: History, transfer_f: str) -> dict[str, Any]:
    retries: list[int] = []
    reasons: dict[str, int] = {}
    for row in history.rows(transfer_f, "ok").tolist():
        value = history.value(row)
        if not isinstance(value, Mapping) or not isinstance(value.get("retries"), int):
            continue
        retries.append(int(value["retries"]))
        for k, n in (value.get("retried_on") or {}).items():
            if isinstance(n, int):
                reasons[str(k)] = reasons.get(str(k), 0) + n
    per = None if not retries else {"mean": round(sum(retries) / len(retries), 4), "max": max(retries)}
    return {"retries_per_committed_transfer": per, "retried_on": dict(sorted(reasons.items()))}


def _final_reads(history: History, read_f: str, transfer_f: str) -> dict[str, int]:
    """{node (or "*"): row} of the last ok read per node among those invoked after the last transfer op."""
    transfers = history.rows(transfer_f)
    after = int(transfers[-1]) if len(transfers) else -1
    last: dict[str, int] = {}
    for row in history.rows(read_f, "ok").tolist():
        inv = int(history.invoke_of[row])
        if (inv if inv >= 0 else row) > after:
            name = history.node_name(int(history.node[row]))
            last["*" if name is None else name] = row
    return dict(sorted(last.items()))


def _lost_updates(
    history: History, o: BankOptions, expected: float | None
) -> tuple[dict[str, Any], list[str]]:
    """The lost-update figures (see the module docstring) and notes on why they are missing."""
    out: dict[str, Any] = {"final_total": None, "final_total_drift": None, "final_reads_agree": None,
                           "lost_updates": None, "lost_update_amount": None, "lost_update_accounts": None,
                           "lost_update_transfers": None}  # fmt: skip
    final = _final_reads(history, o.read_f, o.transfer_f)
    if not final:
        return out, [
            f"no final read (an ok {o.read_f!r} invoked after the last transfer): no lost-update figures"
        ]
    values = [history.value(r) for r in final.values()]
    first = values[0]
    if not isinstance(first, Mapping) or not all(_number(b) for b in first.values()):
        return out, ["the first final read has no balances: no lost-update figures"]
    out["final_total"] = sum(first.values())
    out["final_reads_agree"] = all(v == first for v in values)
    if expected is not None:
        out["final_total_drift"] = out["final_total"] - expected
    if o.opening_balance is None:
        return out, []

    accounts = sorted(set(map(str, first)) | ({str(a) for a in o.accounts} if o.accounts else set()))
    base = {a: float(o.opening_balance) for a in accounts}
    lo, hi = dict(base), dict(base)
    debits: dict[str, list[tuple[float, int]]] = {a: [] for a in accounts}  # (amount, op index) out of a
    credits: dict[str, list[tuple[float, int]]] = {a: [] for a in accounts}
    comp = history.completion_of
    inv_rows = history.rows(o.transfer_f, "invoke")
    for inv in inv_rows.tolist():
        c = int(comp[inv])
        kind = int(history.type[c]) if c >= 0 else INFO
        if kind == FAIL:
            continue
        value = _transfer_value(history, c if c >= 0 else inv)
        if value is None:
            continue
        src, dst, amount = str(value["from"]), str(value["to"]), float(value["amount"])
        for a in (src, dst):
            for table in (base, lo, hi):
                table.setdefault(a, float(o.opening_balance))
            debits.setdefault(a, [])
            credits.setdefault(a, [])
        if kind == OK:
            for table in (base, lo, hi):
                table[src] -= amount
                table[dst] += amount
            debits[src].append((amount, int(history.index[c])))
            credits[dst].append((amount, int(history.index[c])))
        else:  # indeterminate: may have applied
            lo[src] -= amount
            hi[dst] += amount
    lost_writes = 0
    amount_off = 0.0
    off: list[str] = []
    identified: list[int] = []
    for a in sorted(base):
        balance = first.get(a)
        if not _number(balance):
            balance = 0.0  # an account the final read lacks holds nothing
        d = balance - hi[a] if balance > hi[a] else balance - lo[a] if balance < lo[a] else 0.0
        if d == 0:
            continue
        off.append(a)
        amount_off += abs(d)
        candidates = debits[a] if d > 0 else credits[a]  # above: a debit is missing; below: a credit
        exact = [index for amount, index in candidates if amount == abs(d)]
        if exact:
            lost_writes += 1
            if len(exact) == 1:
                identified.append(exact[0])
        else:
            largest = max((amount for amount, _ in candidates), default=abs(d))
            lost_writes += max(2 if candidates else 1, math.ceil(abs(d) / largest))
    amount_value: float | int = int(amount_off) if float(amount_off).is_integer() else round(amount_off, 6)
    out.update({"lost_updates": lost_writes, "lost_update_amount": amount_value, "lost_update_accounts": off,
                "lost_update_transfers": sorted(identified)})  # fmt: skip
    return out, []
