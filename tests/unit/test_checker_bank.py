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


# ------------------------------------------------------------------------------- lost updates (locking)
@dataclass
class Blind:
    """A read-modify-write transfer: reads both balances at ``read_at``, writes absolute values at
    ``write_at`` (commit order), as sql-bank's ``locking: none`` does."""

    src: int
    dst: int
    amount: int
    read_at: int
    write_at: int


@st.composite
def blind_runs(draw: st.DrawFn) -> tuple[History, int, int, int, dict[int, int]]:
    """(history, opening balance, true lost writes, true lost amount, final balances) of a simulated run of
    blind transfers, some overlapping, each ok, then a final read."""
    n = draw(st.integers(2, 4))
    opening = 50
    k = draw(st.integers(0, 10))
    transfers: list[Blind] = []
    for _ in range(k):
        src, dst = draw(st.permutations(range(n)))[:2]
        read_at = draw(st.integers(0, 1000))
        transfers.append(
            Blind(src, dst, draw(st.integers(1, 5)), read_at, read_at + draw(st.integers(1, 200)))
        )
    state = dict.fromkeys(range(n), opening)
    history: dict[int, list[tuple[int, int]]] = {a: [(0, opening)] for a in range(n)}  # (time, balance)

    def at(a: int, t: int) -> int:
        return [b for (w, b) in history[a] if w <= t][-1]

    # apply in write order; each write sets the value read at read_at (the snapshot) plus its own effect
    lost_writes = 0
    for tr in sorted(transfers, key=lambda x: (x.write_at, x.read_at)):
        for a, delta in ((tr.src, -tr.amount), (tr.dst, tr.amount)):
            seen = at(a, tr.read_at)
            # every write to a committed between our snapshot and our write is overwritten (lost)
            lost_writes += sum(1 for (w, _) in history[a] if tr.read_at < w <= tr.write_at and w > 0)
            state[a] = seen + delta
            history[a].append((tr.write_at, state[a]))
    ops: list[Op] = []
    for p, tr in enumerate(sorted(transfers, key=lambda x: x.read_at)):
        value = {"from": tr.src, "to": tr.dst, "amount": tr.amount}
        ops.append(Op(0, p, "invoke", "transfer", value, tr.read_at))
        ops.append(Op(0, p, "ok", "transfer", value, tr.write_at))
    ops.sort(key=lambda op: op.time)
    end = max((tr.write_at for tr in transfers), default=0) + 1
    final = {str(a): b for a, b in state.items()}
    ops += [
        Op(0, 10_000, "invoke", "read", None, end, "n1"),
        Op(0, 10_000, "ok", "read", final, end + 1, "n1"),
    ]
    ops = [Op(i, op.process, op.type, op.f, op.value, op.time, op.node) for i, op in enumerate(ops)]
    expected = dict.fromkeys(range(n), opening)
    for tr in transfers:
        expected[tr.src] -= tr.amount
        expected[tr.dst] += tr.amount
    amount = sum(abs(state[a] - expected[a]) for a in range(n))
    return History.from_ops(ops), opening, lost_writes, amount, {a: state[a] - expected[a] for a in range(n)}


@settings(max_examples=500, deadline=None)
@given(run=blind_runs())
def test_lost_updates_of_blind_writes_are_found(run: tuple[History, int, int, int, dict[int, int]]) -> None:
    h, opening, lost_writes, amount, off = run
    n = len(off)
    r = check_bank(
        h, CheckContext(options={"bank": {"expected_total": opening * n, "opening_balance": opening}})
    )
    f = r.figures
    assert f["lost_update_amount"] == amount
    assert f["lost_update_accounts"] == [str(a) for a in sorted(off) if off[a]]
    assert f["final_total_drift"] == sum(off.values())
    # a lower bound on the writes lost: at least one per account off, never more than really were
    assert len(f["lost_update_accounts"]) <= f["lost_updates"] <= lost_writes
    if amount:
        assert r.valid is False and any("lost updates" in note for note in r.notes)
    else:
        assert f["lost_updates"] == 0


def test_relative_writes_lose_nothing_and_a_single_lost_debit_is_identified() -> None:
    ok = [
        Op(0, 0, "invoke", "transfer", {"from": 0, "to": 1, "amount": 10}, 0),
        Op(1, 1, "invoke", "transfer", {"from": 0, "to": 2, "amount": 3}, 1),
        Op(
            2,
            0,
            "ok",
            "transfer",
            {"from": 0, "to": 1, "amount": 10, "retries": 2, "retried_on": {"cas": 2}},
            2,
        ),
        Op(3, 1, "ok", "transfer", {"from": 0, "to": 2, "amount": 3, "retries": 0, "retried_on": {}}, 3),
        Op(4, 2, "invoke", "read", None, 4, "n1"),
    ]
    opts = {"bank": {"expected_total": 300, "opening_balance": 100}}
    good = check_bank(History.from_ops([*ok, Op(5, 2, "ok", "read", {"0": 87, "1": 110, "2": 103}, 5, "n1")]),
                      CheckContext(options=opts))  # fmt: skip
    assert good.valid is True, good.notes
    assert (good.figures["lost_updates"], good.figures["lost_update_amount"]) == (0, 0)
    assert good.figures["retries_per_committed_transfer"] == {"mean": 1.0, "max": 2}
    assert good.figures["retried_on"] == {"cas": 2}
    # the second transfer overwrote account 0 with its stale read: the first one's debit is gone
    bad = check_bank(History.from_ops([*ok, Op(5, 2, "ok", "read", {"0": 97, "1": 110, "2": 103}, 5, "n1")]),
                     CheckContext(options=opts))  # fmt: skip
    f = bad.figures
    assert bad.valid is False
    assert (f["lost_updates"], f["lost_update_amount"], f["lost_update_accounts"]) == (1, 10, ["0"])
    assert f["lost_update_transfers"] == [2]  # the op index of the transfer whose debit is missing
    assert (f["final_total"], f["final_total_drift"]) == (310, 10)
    assert f["wrong_total_reads"] == 1  # the final read shows the created money, too


def test_indeterminate_transfers_widen_the_expected_range_and_errors_are_counted() -> None:
    ops = [
        Op(0, 0, "invoke", "transfer", {"from": 0, "to": 1, "amount": 10}, 0),
        Op(1, 0, "info", "transfer", None, 1, error="OperationalError: (2013, 'Lost connection to MySQL server during query')"),
        Op(2, 1, "invoke", "transfer", {"from": 0, "to": 1, "amount": 5}, 2),
        Op(3, 1, "fail", "transfer", None, 3, error="OperationalError: (1213, 'Deadlock found when trying to get lock')"),
        Op(4, 2, "invoke", "transfer", {"from": 1, "to": 0, "amount": 5}, 4),
        Op(5, 2, "fail", "transfer", None, 5, error="refused: insufficient funds: account 1 has 0 < 5"),
        Op(6, 3, "invoke", "read", None, 6, "n1"),
        Op(7, 3, "ok", "read", {"0": 90, "1": 110}, 7, "n1"),
    ]  # fmt: skip
    r = check_bank(History.from_ops(ops), CheckContext(options={"bank": {"opening_balance": 100}}))
    f = r.figures
    assert r.valid is True and f["lost_update_amount"] == 0  # the info transfer applied: within range
    assert f["aborts_by_code"] == {"1213": 1}
    assert f["failed_by_reason"] == {"1213": 1, "refused": 1}
    assert f["indeterminate_by_reason"] == {"lost-connection": 1}
    no_opening = check_bank(History.from_ops(ops), CheckContext())
    assert no_opening.figures["lost_updates"] is None and no_opening.figures["final_total"] == 200
