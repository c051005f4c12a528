"""The amqp-queue workload against a real rabbitmq-3: confirmed messages come out again, faults or not."""

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
from harness.workloads.amqp_queue import AmqpQueue


def run_for(wl: AmqpQueue, history: HistoryWriter, seconds: float, during=None) -> None:  # type: ignore[no-untyped-def]
    """Run the clients for ``seconds`` (``during=(at, action)``: call ``action()`` ``at`` s in), then stop and
    join them."""
    stop = threading.Event()
    threads = wl.run(history, stop)
    try:
        if during is not None:
            at, action = during
            stop.wait(at)  # the run's own schedule, not synchronisation
            action()
            stop.wait(seconds - at)
        else:
            stop.wait(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=wl.spec.timeout + 5)
    assert not any(t.is_alive() for t in threads), "client threads did not stop within the op timeout"


def ops(h: History, f: str, type_: str) -> list:  # type: ignore[type-arg]
    return [op for op in h if op.f == f and op.type == type_]


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
    assert fig["acknowledged"] > 100
    assert fig["lost"] == 0 and fig["unexpected"] == 0
    assert fig["dequeued"] > 0 and fig["drains"] == 1
    # no faults: every op succeeded, one connect per worker
    assert not ops(h, "enqueue", "fail") and not ops(h, "enqueue", "info")
    assert len(ops(h, "connect", "ok")) == spec.clients
    assert {op.node for op in ops(h, "enqueue", "ok")} == {"n1", "n3"}  # workers 0 and 2
    assert fig["attempted"] == fig["acknowledged"]


def test_killed_node_clients_reconnect_and_the_checker_reports(
    rabbit, rabbit_nemesis, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, system = rabbit
    spec = WorkloadSpec(type="amqp-queue", clients=4, rate=200, timeout=2)
    wl = AmqpQueue(system, spec, random.Random(2))
    wl.setup()
    path = tmp_path / "history.jsonl"
    killed_at: list[int] = []
    with HistoryWriter(path, concurrency=spec.clients) as history:

        def kill() -> None:
            rabbit_nemesis.kill("n3")
            killed_at.append(history.clock.now())

        run_for(wl, history, 10.0, during=(2.0, kill))  # 8 s after the kill: room on a loaded host
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


def test_paused_node_ops_time_out_and_clients_stop_promptly(rabbit, rabbit_nemesis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, system = rabbit
    spec = WorkloadSpec(type="amqp-queue", clients=3, rate=60, timeout=1, nodes=["n3"])
    wl = AmqpQueue(system, spec, random.Random(3))
    wl.setup()
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path, concurrency=spec.clients) as history:
        stop = threading.Event()
        threads = wl.run(history, stop)
        stop.wait(0.5)  # the run's own schedule
        rabbit_nemesis.pause("n3")
        stop.wait(2.0)
        stopped = time.monotonic()
        stop.set()  # while every client is blocked on the frozen node
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
