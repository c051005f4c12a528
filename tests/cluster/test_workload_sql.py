"""The sql-bank and sql-register workloads against the shared real galera-3, with and without a partition.

No throughput floor: a loaded 2-core host runs these at whatever rate it can, so progress is asserted as
relations (ok ops in every phase, recovery measured against the same run before the fault), and the fault
window follows from what the cluster and the histories show, not from fixed sleeps.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.checkers.bank import check_bank
from harness.checkers.base import CheckContext, Result
from harness.checkers.counter import check_counter
from harness.model.clock import RunClock
from harness.model.history import History, HistoryWriter, Op, read_history
from harness.model.scenario import WorkloadSpec
from harness.runtime.wait import wait_until
from harness.workloads.sql_bank import SqlBank
from harness.workloads.sql_common import ROLLBACK_FAILED, SqlWorkload
from harness.workloads.sql_register import SqlRegister


@contextmanager
def running(runs: list[tuple[SqlWorkload, HistoryWriter]]) -> Iterator[None]:
    """Every workload's clients run inside the block; on leaving it they are stopped and joined."""
    stop = threading.Event()
    threads = [t for wl, history in runs for t in wl.run(history, stop)]
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=max(wl.spec.timeout for wl, _ in runs) + 5)
    assert not any(t.is_alive() for t in threads), "client threads did not stop within the op timeout"


def run_together(runs: list[tuple[SqlWorkload, HistoryWriter]], seconds: float) -> None:
    """Run every workload's clients for ``seconds`` (the workload's length, not a synchronisation), then
    stop and join them."""
    with running(runs):
        threading.Event().wait(seconds)


def final_reads(runs: list[tuple[SqlWorkload, HistoryWriter]]) -> None:
    for wl, history in runs:
        wl.final_read(history)
        history.close()


def ops(h: History, f: str, *types: str) -> list[Op]:
    return [op for op in h if op.f == f and op.type in types]


def client_ops(h: History) -> list[Op]:
    """The clients' ops: everything before the final reads (one per node, after the clients stopped)."""
    return list(h)[:-6]


def ok_in_each_half(h: History, f: str) -> tuple[int, int]:
    """ok ``f`` ops in the first and in the second half of the clients' run; both must be > 0."""
    ops_ = client_ops(h)
    begin, end = ops_[0].time, ops_[-1].time
    middle = (begin + end) // 2
    oks = [op.time for op in ops_ if op.f == f and op.type == "ok"]
    halves = sum(t <= middle for t in oks), sum(t > middle for t in oks)
    assert all(halves), f"{f}: ok ops per half of the run {halves}: the clients stopped making progress"
    return halves


def timed_out(op: Op) -> bool:
    """A client-side timeout (pymysql 2013/2003 "... (timed out)"): on a loaded host even without faults."""
    return "timed out" in (op.error or "")


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
    ok_in_each_half(h, "transfer")
    ok_in_each_half(h, "read")
    assert fig["transfers_ok"] > 0 and fig["reads"] > 0, fig
    assert fig["min_total"] == fig["max_total"] == 500
    assert fig["expected_total_source"] == "option"
    assert_nodes_agree(h)
    assert any(v != 100 for v in finals(h)[0].value.values()), "no transfer reached the final balances"
    # without faults a transfer ends only ok, refused, in a Galera deadlock/certification failure (1213),
    # or in a client timeout (a loaded host)
    for op in ops(h, "transfer", "fail", "info"):
        assert (op.error or "").startswith(
            ("refused: insufficient funds", "OperationalError: (1213")
        ) or timed_out(op), op
    assert not [op for op in ops(h, "transfer", "info") if (op.error or "").startswith("refused")]
    assert {op.node for op in ops(h, "transfer", "ok")} == {"n1", "n2", "n3"}
    dropped = [op for op in client_ops(h) if op.type in ("fail", "info")
               and (timed_out(op) or ROLLBACK_FAILED in (op.error or ""))]  # fmt: skip
    # one connect per client, and one more only after a timeout or a refused ROLLBACK dropped a connection
    assert spec.clients <= len(ops(h, "connect", "ok")) <= spec.clients + len(dropped), dropped
    assert all(timed_out(op) for op in ops(h, "connect", "fail")), ops(h, "connect", "fail")


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
    ok_in_each_half(h, "add")
    ok_in_each_half(h, "read")
    assert fig["final_reads"] >= 3 and fig["keys"] == 3  # clients' reads after the last add count too
    assert_nodes_agree(h)
    assert fig["bad_reads"] == fig["lost_updates"] == 0
    for key, pk in fig["per_key"].items():
        assert len(pk["final_values"]) == 1, (key, pk)  # every node ends with the same value
        low, high = pk["bounds"]
        assert low == pk["adds_ok"] and high == pk["adds_ok"] + pk["adds_indeterminate"]
        assert low <= pk["final_value"] <= high
    for op in ops(h, "add", "fail", "info"):
        # without faults only certification conflicts between nodes, or client timeouts on a loaded host
        assert "(1213" in (op.error or "") or timed_out(op), op


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
        (bank, HistoryWriter(tmp_path / "bank.jsonl", clock, concurrency=3, keep=True)),
        (register, HistoryWriter(tmp_path / "register.jsonl", clock, concurrency=3, keep=True)),
    ]
    n1, n2, _ = system.run.nodes
    histories = [writer for _, writer in runs]

    def ok_on(nodes: set[str], since: int) -> list[int]:
        """Per workload: ok writes by ``nodes`` completed after ``since`` (run clock)."""
        return [len([op for op in ops(w.history(), f, "ok") if op.node in nodes and op.time > since])
                for w, f in zip(histories, ("transfer", "add"), strict=True)]  # fmt: skip

    def refused_on_n3(writer: HistoryWriter, since: int) -> bool:
        return any(
            op.node == "n3" and op.time > since and op.type in ("fail", "info") for op in writer.history()
        )

    def cluster_size(node: Any) -> str | None:
        try:
            return system.wsrep(node, timeout=1.0).get("wsrep_cluster_size")
        except Exception:
            return None

    timeout = bank_spec.timeout
    with running(runs):
        # before the fault: writes commit on every node, in both workloads
        wait_until(lambda: all(min(ok_on({n.name}, 0)) >= 5 for n in system.run.nodes), timeout=30,
                   what="5 ok writes per node and workload before the partition")  # fmt: skip
        galera_nemesis.partition("isolate", node="n3")
        t0 = clock.now()
        before = ok_on({"n1", "n2"}, 0)
        # the majority evicts n3 (EVS timers); from then on n1 and n2 commit again
        wait_until(lambda: cluster_size(n1) == "2" and cluster_size(n2) == "2", timeout=30,
                   what="n1 and n2 in a component of 2")  # fmt: skip
        evicted = clock.now()
        # ... and recover at least half of what they had committed before the cut, after the eviction
        wait_until(lambda: all(a >= max(1, b // 2) for a, b in zip(ok_on({"n1", "n2"}, evicted), before, strict=True)),
                   timeout=30, what=f"n1 and n2 committing again after the eviction (before: {before})")  # fmt: skip
        # ... and the isolated node's clients have run into the cut, in both workloads
        wait_until(lambda: all(refused_on_n3(w, t0) for w in histories), timeout=30,
                   what="an op on n3 failing after the cut, in each workload")  # fmt: skip
    galera_nemesis.heal()  # waits until n3 is back, Synced, in a Primary component of 3
    final_reads(runs)
    hb, hr = read_history(tmp_path / "bank.jsonl"), read_history(tmp_path / "register.jsonl")
    for h, write in ((hb, "transfer"), (hr, "add")):
        cut_off = [op for op in h if op.node == "n3" and op.time > t0 and op.type in ("fail", "info")]
        assert cut_off, f"{write}: no op on n3 failed while it was isolated"
        # an op completing more than one op timeout after the cut was invoked after it: n3 cannot commit it
        assert not [op for op in ops(h, write, "ok") if op.node == "n3" and op.time > t0 + timeout * 1e9], (
            f"{write}: n3 acknowledged writes while cut off from the other two"
        )
        survivors = [op for op in ops(h, write, "ok") if op.node in ("n1", "n2") and op.time > evicted]
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
    assert counter.figures["adds_ok"] > 0
