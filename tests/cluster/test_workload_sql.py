"""The sql-bank and sql-register workloads against the shared real galera-3, with and without a partition."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.checkers.bank import check_bank
from harness.checkers.base import CheckContext, Result
from harness.checkers.counter import check_counter
from harness.model.clock import RunClock
from harness.model.history import History, HistoryWriter, Op, read_history
from harness.model.scenario import WorkloadSpec
from harness.workloads.sql_bank import SqlBank
from harness.workloads.sql_common import SqlWorkload
from harness.workloads.sql_register import SqlRegister

Action = tuple[float, Callable[[], None]]


def run_together(runs: list[tuple[SqlWorkload, HistoryWriter]], seconds: float, during: Action | None = None) -> None:  # fmt: skip
    """Run every workload's clients for ``seconds`` (``during=(at, action)``: call ``action()`` ``at`` s in),
    stop and join them, then take each workload's final read."""
    stop = threading.Event()
    threads = [t for wl, history in runs for t in wl.run(history, stop)]
    try:
        if during is not None:
            stop.wait(during[0])  # the run's own schedule, not synchronisation
            during[1]()
            stop.wait(seconds - during[0])
        else:
            stop.wait(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=max(wl.spec.timeout for wl, _ in runs) + 5)
    assert not any(t.is_alive() for t in threads), "client threads did not stop within the op timeout"


def final_reads(runs: list[tuple[SqlWorkload, HistoryWriter]]) -> None:
    for wl, history in runs:
        wl.final_read(history)
        history.close()


def ops(h: History, f: str, *types: str) -> list[Op]:
    return [op for op in h if op.f == f and op.type in types]


def bank_check(h: History, spec: WorkloadSpec, **extra: Any) -> Result:
    opts = {"expected_total": spec.accounts * spec.balance, "accounts": list(range(spec.accounts)), **extra}
    return check_bank(h, CheckContext(options={"bank": opts}))


def finals(h: History) -> list[Op]:
    """The final reads' completions: the history ends with one read per node, taken after the clients
    stopped."""
    tail = list(h)[-6:]
    assert [(op.f, op.type) for op in tail[::2]] == [("read", "invoke")] * 3, tail
    return tail[1::2]


def assert_nodes_agree(h: History) -> None:
    done = finals(h)
    assert [(op.node, op.type) for op in done] == [("n1", "ok"), ("n2", "ok"), ("n3", "ok")], done
    assert done[0].value == done[1].value == done[2].value, "the nodes disagree after the run"


def test_bank_without_faults_keeps_every_total(galera, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, system = galera
    spec = WorkloadSpec(type="sql-bank", clients=4, rate=250, timeout=2)
    wl = SqlBank(system, spec, random.Random(1))
    wl.setup()
    path = tmp_path / "bank.jsonl"
    history = HistoryWriter(path, concurrency=spec.clients)
    run_together([(wl, history)], 4.0)
    final_reads([(wl, history)])
    h = read_history(path)
    result = bank_check(h, spec)
    fig = result.figures
    assert result.valid is True, (result.notes, fig)
    assert fig["transfers_ok"] > 100, fig
    assert fig["reads"] > 20 and fig["min_total"] == fig["max_total"] == 500
    assert fig["expected_total_source"] == "option"
    assert_nodes_agree(h)
    assert any(v != 100 for v in finals(h)[0].value.values()), "no transfer reached the final balances"
    # without faults a transfer ends only ok, refused, or in a Galera deadlock/certification failure (1213)
    for op in ops(h, "transfer", "fail", "info"):
        assert (op.error or "").startswith(("refused: insufficient funds", "OperationalError: (1213")), op
    assert not [op for op in ops(h, "transfer", "info") if (op.error or "").startswith("refused")]
    assert {op.node for op in ops(h, "transfer", "ok")} == {"n1", "n2", "n3"}
    assert len(ops(h, "connect", "ok")) == spec.clients and not ops(h, "connect", "fail")


def test_bank_may_overdraw_when_allowed(galera, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, system = galera
    spec = WorkloadSpec(type="sql-bank", clients=3, rate=250, timeout=2, balance=4, allow_negative=True,
                        isolation="serializable")  # fmt: skip
    wl = SqlBank(system, spec, random.Random(2))
    wl.setup()
    path = tmp_path / "bank.jsonl"
    history = HistoryWriter(path, concurrency=spec.clients)
    run_together([(wl, history)], 3.0)
    final_reads([(wl, history)])
    h = read_history(path)
    assert not [op for op in ops(h, "transfer", "fail") if (op.error or "").startswith("refused")]
    allowed = bank_check(h, spec, allow_negative=True)
    assert allowed.valid is True, (allowed.notes, allowed.figures)
    assert allowed.figures["min_total"] == allowed.figures["max_total"] == 20
    strict = bank_check(h, spec)
    assert strict.valid is False and strict.figures["negative_reads"] > 0, strict.figures
    assert strict.figures["wrong_total_reads"] == 0


def test_register_without_faults_loses_no_update_and_reads_nothing_stale(galera, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, system = galera
    spec = WorkloadSpec(type="sql-register", clients=4, rate=250, timeout=2, keys=3)
    wl = SqlRegister(system, spec, random.Random(3))
    wl.setup()
    path = tmp_path / "register.jsonl"
    history = HistoryWriter(path, concurrency=spec.clients)
    run_together([(wl, history)], 4.0)
    final_reads([(wl, history)])
    h = read_history(path)
    result = check_counter(h, CheckContext())
    fig = result.figures
    assert result.valid is True, (result.notes, fig)
    assert fig["adds_ok"] > 100 and fig["read_ops"] > 100, fig
    assert fig["final_reads"] >= 3 and fig["keys"] == 3  # clients' reads after the last add count too
    assert_nodes_agree(h)
    assert fig["bad_reads"] == fig["lost_updates"] == 0
    for key, pk in fig["per_key"].items():
        assert len(pk["final_values"]) == 1, (key, pk)  # every node ends with the same value
        low, high = pk["bounds"]
        assert low == pk["adds_ok"] and high == pk["adds_ok"] + pk["adds_indeterminate"]
        assert low <= pk["final_value"] <= high
    for op in ops(h, "add", "fail", "info"):
        assert "(1213" in (op.error or ""), op  # without faults only certification conflicts between nodes


def test_isolated_node_fails_its_ops_and_both_invariants_hold(galera, galera_nemesis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, system = galera
    bank_spec = WorkloadSpec(type="sql-bank", clients=3, rate=150, timeout=2)
    register_spec = WorkloadSpec(type="sql-register", clients=3, rate=150, timeout=2)
    bank, register = (
        SqlBank(system, bank_spec, random.Random(4)),
        SqlRegister(system, register_spec, random.Random(5)),
    )
    bank.setup()
    register.setup()
    clock = RunClock()  # one time line for both histories
    runs: list[tuple[SqlWorkload, HistoryWriter]] = [
        (bank, HistoryWriter(tmp_path / "bank.jsonl", clock, concurrency=3)),
        (register, HistoryWriter(tmp_path / "register.jsonl", clock, concurrency=3)),
    ]
    isolated_at: list[int] = []

    def isolate() -> None:
        galera_nemesis.partition("isolate", node="n3")
        isolated_at.append(clock.now())

    run_together(runs, 8.0, during=(1.0, isolate))  # n1 and n2 stall ~4 s until Galera evicts n3
    galera_nemesis.heal()  # waits until n3 is back, Synced, in a Primary component of 3
    final_reads(runs)
    hb, hr = read_history(tmp_path / "bank.jsonl"), read_history(tmp_path / "register.jsonl")
    t0 = isolated_at[0]
    for h, write in ((hb, "transfer"), (hr, "add")):
        cut_off = [op for op in h if op.node == "n3" and op.time > t0 and op.type in ("fail", "info")]
        assert cut_off, f"{write}: no op on n3 failed while it was isolated"
        # an op completing more than one op timeout after the cut was invoked after it: n3 cannot commit it
        assert not [op for op in ops(h, write, "ok") if op.node == "n3" and op.time > t0 + 2e9], (
            f"{write}: n3 acknowledged writes while cut off from the other two"
        )
        survivors = [op for op in ops(h, write, "ok") if op.node in ("n1", "n2") and op.time > t0 + 1e9]
        assert survivors, f"{write}: n1 and n2 never recovered from the partition"

    bank_result = bank_check(hb, bank_spec)
    assert bank_result.valid is True, (bank_result.notes, bank_result.figures)
    assert bank_result.figures["min_total"] == bank_result.figures["max_total"] == 500
    assert bank_result.figures["transfers_failed"] + bank_result.figures["transfers_indeterminate"] > 0
    assert_nodes_agree(hb)
    assert_nodes_agree(hr)

    counter = check_counter(hr, CheckContext())
    assert counter.valid is True, (counter.notes, counter.figures)
    assert counter.figures["final_reads"] >= 3 and counter.figures["lost_updates"] == 0
    assert counter.figures["adds_ok"] > 50
