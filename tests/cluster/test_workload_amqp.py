"""The amqp-queue workload against a real rabbitmq-3: confirmed messages come out again, faults or not.

No throughput floor (a loaded 2-core host publishes at whatever rate it can): progress is asserted as ok
ops in every phase of a run, and a fault's window follows from what the history shows, with deadlines.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

from harness.checkers.base import CheckContext
from harness.checkers.queue import check_queue
from harness.model.history import History, HistoryWriter, read_history
from harness.model.scenario import WorkloadSpec
from harness.runtime.wait import wait_until
from harness.workloads.amqp_queue import AmqpQueue


def run_for(wl: AmqpQueue, history: HistoryWriter, seconds: float) -> None:
    """Run the clients for ``seconds`` (the workload's length, not a synchronisation), then stop and join."""
    stop = threading.Event()
    threads = wl.run(history, stop)
    try:
        stop.wait(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=wl.spec.timeout + 5)
    assert not any(t.is_alive() for t in threads), "client threads did not stop within the op timeout"


def ops(h: History, f: str, type_: str) -> list:  # type: ignore[type-arg]
    return [op for op in h if op.f == f and op.type == type_]


def ok_in_each_half(h: History, f: str) -> tuple[int, int]:
    """ok ``f`` ops in each half of the clients' run (drain ops excluded); both must be > 0."""
    client = [op for op in h if op.f in ("enqueue", "dequeue", "connect")]
    middle = (client[0].time + client[-1].time) // 2
    oks = [op.time for op in client if op.f == f and op.type == "ok"]
    halves = sum(t <= middle for t in oks), sum(t > middle for t in oks)
    assert all(halves), f"{f}: ok ops per half of the run {halves}: the clients stopped making progress"
    return halves


def test_no_faults_every_confirmed_message_is_delivered(rabbit, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, system = rabbit
    spec = WorkloadSpec(type="amqp-queue", clients=4, rate=200, timeout=2)
    wl = AmqpQueue(system, spec, random.Random(1))
    wl.setup()
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path, concurrency=spec.clients) as history:
        run_for(wl, history, 5.0)
        wl.final_read(history)
    h = read_history(path)
    result = check_queue(h, CheckContext())
    fig = result.figures
    assert result.valid is True, (result.notes, fig)
    ok_in_each_half(h, "enqueue")
    ok_in_each_half(h, "dequeue")
    assert fig["lost"] == 0 and fig["unexpected"] == 0
    assert fig["dequeued"] > 0 and fig["drains"] == 1
    # no faults: every publish confirmed, or (a loaded host) timed out waiting for its confirm
    assert not ops(h, "enqueue", "fail")
    timed_out = ops(h, "enqueue", "info")
    assert all((op.error or "").startswith("timeout") for op in timed_out), timed_out
    assert fig["attempted"] == fig["acknowledged"] + len(timed_out)
    # one connect per worker, and one more only after a timeout dropped a connection
    timeouts = [op for op in h if op.type == "info" and (op.error or "").startswith("timeout")]
    assert spec.clients <= len(ops(h, "connect", "ok")) <= spec.clients + len(timeouts)
    assert {op.node for op in ops(h, "enqueue", "ok")} == {"n1", "n3"}  # workers 0 and 2


def test_killed_node_clients_reconnect_and_the_checker_reports(
    rabbit, rabbit_nemesis, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, system = rabbit
    spec = WorkloadSpec(type="amqp-queue", clients=4, rate=200, timeout=2)
    wl = AmqpQueue(system, spec, random.Random(2))
    wl.setup()
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path, concurrency=spec.clients, keep=True) as history:

        def confirmed(node: str, since: int = 0) -> int:
            return len(
                [op for op in ops(history.history(), "enqueue", "ok") if op.node == node and op.time > since]
            )

        def n3_errors(since: int) -> bool:
            return any(op.node == "n3" and op.time > since and op.type in ("fail", "info")
                       for op in history.history())  # fmt: skip

        stop = threading.Event()
        threads = wl.run(history, stop)
        try:
            # both publishers (workers 0 and 2: n1 and n3) confirm messages before the kill
            wait_until(lambda: confirmed("n1") >= 5 and confirmed("n3") >= 5, timeout=30,
                       what="5 confirmed publishes on n1 and on n3")  # fmt: skip
            rabbit_nemesis.kill("n3")
            killed = history.clock.now()
            # the window ends when the history shows what the test claims, within deadlines
            wait_until(lambda: n3_errors(killed), timeout=30, what="the client on n3 to see an error")
            wait_until(lambda: ops(history.history(), "connect", "fail"), timeout=30,
                       what="the client on n3 to fail to reconnect")  # fmt: skip
            wait_until(lambda: confirmed("n1", killed) >= 5, timeout=30, what="n1 confirming after the kill")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=wl.spec.timeout + 5)
        assert not any(t.is_alive() for t in threads), "client threads did not stop within the op timeout"
        killed_at = [killed]
        rabbit_nemesis.heal()
        wl.final_read(history)
    h = read_history(path)
    after = [op for op in ops(h, "enqueue", "ok") if op.time > killed_at[0]]
    seen = Counter((op.node, op.f, op.type) for op in h if op.time > killed_at[0])
    assert after, f"no confirmed publish after n3 was killed; ops after the kill: {dict(seen)}"
    # setup declared the queue afresh through n1, so its leader is on n1 and survives n3's death;
    # the only other publisher (worker 2) talks to n3
    assert {op.node for op in after} == {"n1"}
    n3 = [op for op in h if op.node == "n3" and op.time > killed_at[0] and op.type in ("fail", "info")]
    assert n3, "the publisher on n3 saw no error"
    assert ops(h, "connect", "fail"), "the client on n3 should have tried to reconnect"
    result = check_queue(h, CheckContext())
    assert result.valid != "unknown", result.notes
    for name in ("lost", "duplicated", "recovered", "acknowledged", "indeterminate"):
        assert name in result.figures
    assert result.figures["drains"] == 1


def setup_when_ready(wl: AmqpQueue, timeout: float = 60) -> None:
    """``setup`` once the broker takes the queue's declaration. Right after a node restarted (the kill
    test's heal) cluster_status already lists it running, yet declaring a quorum queue through it can fail
    with 541 INTERNAL_ERROR for a while: wait for it, with a deadline, instead of failing on it."""

    attempts: list[str] = []

    def attempt() -> bool:
        try:
            wl.setup()
        except Exception as exc:
            attempts.append(f"{type(exc).__name__}: {exc}")
            raise
        return True

    wait_until(attempt, timeout=timeout, interval=0.5, what="the broker to accept a fresh hh-queue")
    if attempts:
        print(f"setup refused {len(attempts)} time(s) before it took: {attempts[0]}")


def test_paused_node_ops_time_out_and_clients_stop_promptly(rabbit, rabbit_nemesis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, system = rabbit
    spec = WorkloadSpec(type="amqp-queue", clients=3, rate=60, timeout=1, nodes=["n3"])
    wl = AmqpQueue(system, spec, random.Random(3))
    setup_when_ready(wl)
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path, concurrency=spec.clients, keep=True) as history:
        stop = threading.Event()
        threads = wl.run(history, stop)
        try:
            wait_until(lambda: ops(history.history(), "enqueue", "ok"), timeout=30,
                       what="a confirmed publish on n3 before the pause")  # fmt: skip
            rabbit_nemesis.pause("n3")
            paused = history.clock.now()

            def timed_out() -> bool:
                return any(op.type == "info" and op.time > paused and (op.error or "").startswith("timeout")
                           for op in history.history())  # fmt: skip

            wait_until(timed_out, timeout=spec.timeout + 10, what="an op on the frozen node to time out")
        finally:
            stopped = time.monotonic()
            stop.set()  # while the clients are blocked on the frozen node
            for thread in threads:
                thread.join(timeout=10)
            joined = time.monotonic() - stopped
        rabbit_nemesis.heal()
        wl.final_read(history)
    assert not any(t.is_alive() for t in threads)
    assert joined < spec.timeout + 1.5, f"clients took {joined:.1f}s to stop"
    h = read_history(path)
    timeouts = [op for op in h if op.type == "info" and (op.error or "").startswith("timeout")]
    assert timeouts, "an op on the frozen node should have ended info (timeout)"
    result = check_queue(h, CheckContext())
    assert result.valid is True, (result.notes, result.figures)
