"""The bank checker against simulated transfers with injected bad reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checkers import CheckContext, check_bank
from harness.model.history import History, Op

KINDS = ["wrong_total", "negative", "nil_balance", "unexpected_keys"]


@dataclass
class Case:
    history: History
    total: int
    accounts: list[str]
    injected: list[tuple[int, str]]  # (op index of the read, kind)
    reads: int
    transfers: dict[str, int]
    give_total: bool
    give_accounts: bool


def inject(draw: st.DrawFn, bal: dict[str, Any], kind: str) -> dict[str, Any]:
    """A copy of ``bal`` with exactly one kind of violation."""
    bad = dict(bal)
    names = sorted(bal)
    a = draw(st.sampled_from(names))
    if kind == "wrong_total":
        bad[a] += draw(st.integers(1, 5))
    elif kind == "negative":
        b = draw(st.sampled_from([n for n in names if n != a]))
        m = draw(st.integers(1, 5))
        bad[b] += bad[a] + m
        bad[a] = -m
    elif kind == "nil_balance":
        bad[a] = None
    else:
        bad["x"] = 0
    return bad


@st.composite
def bank_cases(draw: st.DrawFn, clean: bool = False) -> Case:
    accounts = [str(i) for i in range(draw(st.integers(2, 5)))]
    bal = {a: draw(st.integers(0, 20)) for a in accounts}
    total = sum(bal.values())
    give_total = draw(st.booleans())
    give_accounts = draw(st.booleans())
    kinds = KINDS if give_accounts else KINDS[:3]
    ops: list[Op] = []
    injected: list[tuple[int, str]] = []
    transfers = {"ok": 0, "fail": 0, "info": 0}
    t = 0
    n_reads = 0
    steps = draw(st.lists(st.sampled_from(["transfer", "read"]), max_size=20))
    for p, step in enumerate(steps):
        t += 1000
        if step == "transfer":
            a, b = draw(st.sampled_from(accounts)), draw(st.sampled_from(accounts))
            amount = draw(st.integers(1, 10))
            value = {"from": int(a), "to": int(b), "amount": amount}
            outcome = draw(st.sampled_from(["ok", "fail", "info"]))
            if outcome != "fail" and bal[a] >= amount:
                bal[a] -= amount
                bal[b] += amount
            elif outcome != "fail":
                outcome = "fail"  # the database refuses an overdraft
            transfers[outcome] += 1
            ops += [
                Op(len(ops), p, "invoke", "transfer", value, t),
                Op(len(ops) + 1, p, outcome, "transfer", value, t + 1),
            ]
            continue
        value = dict(bal)
        first_read_must_be_clean = not give_total and n_reads == 0
        if not clean and not first_read_must_be_clean and draw(st.integers(0, 3)) == 0:
            kind = draw(st.sampled_from(kinds))
            value = inject(draw, bal, kind)
            injected.append((len(ops) + 1, kind))
        ops += [Op(len(ops), p, "invoke", "read", None, t), Op(len(ops) + 1, p, "ok", "read", value, t + 1)]
        n_reads += 1
    return Case(
        History.from_ops(ops), total, accounts, injected, n_reads, transfers, give_total, give_accounts
    )


@settings(max_examples=1000, deadline=None)
@given(case=bank_cases())
def test_bank_checker_counts_the_injected_violations(case: Case) -> None:
    opts: dict[str, Any] = {}
    if case.give_total:
        opts["expected_total"] = case.total
    if case.give_accounts:
        opts["accounts"] = case.accounts
    r = check_bank(case.history, CheckContext(options={"bank": opts}))
    f = r.figures
    assert f["reads"] == case.reads
    assert (f["transfers_ok"], f["transfers_failed"], f["transfers_indeterminate"]) == (
        case.transfers["ok"],
        case.transfers["fail"],
        case.transfers["info"],
    )
    if case.reads == 0:
        assert r.valid == "unknown"
        return
    kinds = [k for _, k in case.injected]
    assert f["wrong_total_reads"] == kinds.count("wrong_total")
    assert f["negative_reads"] == kinds.count("negative")
    assert f["nil_balance_reads"] == kinds.count("nil_balance")
    assert f["unexpected_key_reads"] == kinds.count("unexpected_keys")
    assert f["expected_total"] == case.total
    assert f["expected_total_source"] == ("option" if case.give_total else "first read")
    assert r.valid is (not case.injected)
    if case.injected:
        index, kind = case.injected[0]
        fv = f["first_violation"]
        assert (fv["index"], fv["kinds"]) == (index, [kind])
        assert fv["expected"] == case.total
    else:
        assert f["first_violation"] is None
        assert f["min_total"] == f["max_total"] == case.total
    assert json.loads(json.dumps(r.to_dict())) == r.to_dict()
    assert check_bank(case.history, CheckContext(options={"bank": opts})).to_dict() == r.to_dict()


def test_negative_balances_can_be_allowed_and_no_reads_is_unknown() -> None:
    ops = [Op(0, 0, "invoke", "read", None, 0), Op(1, 0, "ok", "read", {"0": -5, "1": 15}, 1)]
    h = History.from_ops(ops)
    r = check_bank(h, CheckContext(options={"bank": {"expected_total": 10}}))
    assert r.valid is False and r.figures["negative_balances"] == 1
    assert r.figures["first_violation"]["negative_accounts"] == ["0"]
    ok = check_bank(h, CheckContext(options={"bank": {"expected_total": 10, "allow_negative": True}}))
    assert ok.valid is True
    assert check_bank(History.from_ops(ops[:1]), CheckContext()).valid == "unknown"
