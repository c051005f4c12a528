"""openstack-boot: Nova's boot request across the database and the broker of an OpenStack deployment.

Runs on ``system: openstack`` (a database cluster and a RabbitMQ cluster in one run). Three kinds of
client, each with its own connections (pymysql to the database through its proxies, MMM/async through the
writer front; pika to the broker), reconnecting across hosts the way oslo.messaging does (the next
broker node in turn after a lost connection):

* **API** workers (``spec.clients``, paced at ``spec.rate`` requests/s in all): a request ``id`` is
  ``insert`` — the instance row ``(id, 'BUILDING')`` in one transaction (``transact``'s rules: a definite
  abort is ``fail``, a COMMIT that ended unknowably ``info``) — then, only once that committed, ``cast``
  — a persistent message ``id`` on the durable ``hh-queue`` with publisher confirms: ``ok`` on the
  confirm, ``fail`` when the broker nacked or no broker node took a connection (nothing was sent),
  ``info`` on a timeout or a connection lost after sending.
* **compute** workers (``spec.computes``): take a message (``basic.get``, manual ack), ``activate``
  the instance — ``UPDATE … SET state = 'ACTIVE', activations = activations + 1`` in one transaction;
  ``ok`` value ``{"id", "rows", "redelivered"}`` (``rows``: the rows it matched, 0 when the row is not
  there) — then ack. A failed update is nacked back to the queue (requeued); one that ended unknowably
  is requeued too, so it may be processed twice — at-least-once, as a real compute service.
* one **scheduler**: every ``SCAN_INTERVAL_S``, ``scan`` (``ok`` value ``{state: count}``) reads how
  many instances are in each state.

After heal the compute service finishes the queue (``activate`` ops until the queue stays empty), then
``read-rows`` reads every instance row ``[id, state, activations]`` (``harness.checkers.boot``).
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from harness.errors import InfraError
from harness.model.history import HistoryWriter
from harness.model.scenario import WorkloadSpec
from harness.runtime.run import Node
from harness.systems.base import ClusterSystem
from harness.workloads.amqp_queue import QUEUE, AmqpQueue, _describe, _Session
from harness.workloads.base import Workload
from harness.workloads.sql_common import (
    Outcome,
    SqlWorkload,
    close_quietly,
    describe,
    read_only,
    record,
    transact,
)

__all__ = ["TABLE", "OpenstackBoot"]

TABLE = "hh_instances"
SCAN_INTERVAL_S = 0.5
POLL_S = 0.05  # a compute worker's wait after an empty get
FINISH_SETTLE_S = 1.0  # after heal, the queue must stay empty this long for the compute service to stop
FINISH_STALL_S = 30.0


class _Rows(SqlWorkload):
    """The database side: connections and the instance table (the client loop is OpenstackBoot's)."""

    name = "openstack-boot-db"
    table: ClassVar[str] = TABLE

    def setup(self) -> None:
        conn = self.connect(self.system.data_nodes[0])
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, state VARCHAR(16) "
                            "NOT NULL, activations INT NOT NULL DEFAULT 0)")  # fmt: skip
                cur.execute(f"TRUNCATE TABLE {TABLE}")
        finally:
            close_quietly(conn)

    def next_op(self, rng: random.Random) -> tuple[str, Any]:
        raise NotImplementedError("openstack-boot drives its own clients")

    def execute(self, conn: Any, f: str, value: Any, node: Node) -> Outcome:
        raise NotImplementedError("openstack-boot drives its own clients")

    def final_read(self, history: HistoryWriter) -> None:
        raise NotImplementedError("openstack-boot reads its rows itself")


class _Client:
    """One worker's connections: to its database node and to a broker node (the next one after a loss)."""

    def __init__(self, boot: OpenstackBoot, worker: int, *, confirms: bool, label: str) -> None:
        self.boot = boot
        db_nodes, mq_nodes = boot.db_nodes, boot.mq_nodes
        self.db_node = db_nodes[worker % len(db_nodes)]
        self.mq_order = [mq_nodes[(worker + i) % len(mq_nodes)] for i in range(len(mq_nodes))]
        self.confirms = confirms
        self.label = label
        self.conn: Any = None
        self.session: _Session | None = None
        self.mq_node = self.mq_order[0]

    def database(self, history: HistoryWriter, process: int, stop: threading.Event) -> Any:
        if self.conn is None:
            self.conn = self.boot.rows.reconnect(process, self.db_node, history, stop)
        return self.conn

    def drop_database(self) -> None:
        close_quietly(self.conn)
        self.conn = None

    def broker(self, history: HistoryWriter, process: int) -> tuple[_Session | None, str]:
        """The worker's broker session, opened as a ``connect`` op on the first node that takes it, starting
        from the one it used last (oslo.messaging's round robin over ``transport_url`` hosts)."""
        if self.session is not None and self.session.usable:
            return self.session, ""
        if self.session is not None:
            self.session.abandon()
            self.session = None
        errors = []
        start = self.mq_order.index(self.mq_node)
        for node in self.mq_order[start:] + self.mq_order[:start]:
            op = history.invoke(process, "connect", None, node.name)
            try:
                self.session = self.boot.queue.open_session(node, confirms=self.confirms, label=self.label)
            except Exception as exc:
                history.fail(op, _describe(exc))
                errors.append(f"{node.name}: {_describe(exc)}")
                continue
            history.ok(op)
            self.mq_node = node
            return self.session, ""
        return None, "; ".join(errors)

    def drop_broker(self) -> None:
        if self.session is not None:
            self.session.abandon()
            self.session = None

    def close(self) -> None:
        close_quietly(self.conn)
        if self.session is not None:
            self.session.close()


class OpenstackBoot(Workload):
    name = "openstack-boot"

    def __init__(self, system: ClusterSystem, spec: WorkloadSpec, rng: random.Random) -> None:
        super().__init__(system, spec, rng)
        database = getattr(system, "database", None)
        broker = getattr(system, "broker", None)
        if database is None or broker is None:
            raise InfraError(
                f"openstack-boot needs system openstack (a database and a broker), not {system.name}"
            )
        wanted = set(spec.nodes or [])
        part_spec = spec.model_copy(update={"nodes": None})
        self.rows = _Rows(database, part_spec, rng)
        self.queue = AmqpQueue(broker, part_spec, rng)
        self.db_nodes = [
            n for n in database.data_nodes if not wanted or n.name in wanted
        ] or database.data_nodes
        self.mq_nodes = [n for n in broker.run.nodes if not wanted or n.name in wanted] or broker.run.nodes

    # -- setup ------------------------------------------------------------------------------------
    def setup(self) -> None:
        self.rows.setup()
        self.queue.setup()

    def run(self, history: HistoryWriter, stop: threading.Event) -> list[threading.Thread]:
        threads = super().run(history, stop)  # the API workers
        extra: list[tuple[str, Callable[..., None]]] = [
            *((f"compute-{i}", self.compute) for i in range(self.spec.computes)),
            ("scheduler", self.scheduler),
        ]
        for i, (name, target) in enumerate(extra):
            worker = self.spec.clients + i
            thread = threading.Thread(target=target, args=(worker, history, stop), name=f"{self.name}-{name}",
                                      daemon=True)  # fmt: skip
            thread.start()
            threads.append(thread)
        return threads

    # -- the API ----------------------------------------------------------------------------------
    def client(self, worker: int, history: HistoryWriter, stop: threading.Event) -> None:
        me = _Client(self, worker, confirms=True, label=f"api {worker}")
        process = worker
        next_at = time.monotonic()
        try:
            while not stop.is_set():
                next_at = self.pace(stop, next_at)
                if stop.is_set():
                    break
                conn = me.database(history, process, stop)
                if conn is None:
                    continue
                request = self.next_id()
                op = history.invoke(process, "insert", request, me.db_node.name)
                outcome = transact(conn, functools.partial(self.insert_row, request=request))
                record(history, op, outcome)
                if not outcome.usable:
                    me.drop_database()
                if outcome.type == "info":
                    process = history.next_process(process)
                if outcome.type != "ok":
                    continue
                if self.cast(me, request, history, process):
                    process = history.next_process(process)
        finally:
            me.close()

    @staticmethod
    def insert_row(cur: Any, request: int) -> None:
        cur.execute(f"INSERT INTO {TABLE} (id, state, activations) VALUES (%s, 'BUILDING', 0)", (request,))

    def cast(self, me: _Client, request: int, history: HistoryWriter, process: int) -> bool:
        """Publish the request to the compute queue with a confirm (``AmqpQueue.publish``; ``fail`` without
        a broker connection: nothing was sent); True when the op ended ``info``."""
        session, error = me.broker(history, process)
        op = history.invoke(process, "cast", request, me.mq_node.name)
        if session is None:
            history.fail(op, f"not connected: {error}")
            return False
        return self.queue.publish(session, history, op, request) == "info"

    # -- the compute service ----------------------------------------------------------------------
    def compute(self, worker: int, history: HistoryWriter, stop: threading.Event) -> None:
        me = _Client(self, worker, confirms=False, label=f"compute {worker}")
        process = history.new_process()
        try:
            while not stop.is_set():
                got = self.take(me, history, process, stop)
                if got is None:
                    continue
                if got is False:
                    stop.wait(POLL_S)
                    continue
                process = self.activate(me, got, history, process, stop)
        finally:
            me.close()

    def take(self, me: _Client, history: HistoryWriter, process: int, stop: threading.Event
             ) -> tuple[int, int, bool] | Literal[False] | None:  # fmt: skip
        """The next message as (delivery tag, request id, redelivered); False: the queue is empty; None:
        no broker connection (after a back-off) or a get that failed (not recorded: nothing was taken)."""
        session, _error = me.broker(history, process)
        if session is None:
            stop.wait(0.5)
            return None
        channel = session.channel
        assert channel is not None
        try:
            with session.deadline():
                method, _props, body = channel.basic_get(QUEUE, auto_ack=False)
        except Exception:
            me.drop_broker()  # anything checked out is requeued by the broker
            return None
        if method is None:
            return False
        try:
            request = int(body.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            self.settle(me, method.delivery_tag, ack=True)  # not one of ours: dropped
            return None
        return method.delivery_tag, request, bool(method.redelivered)

    def activate(self, me: _Client, got: tuple[int, int, bool], history: HistoryWriter, process: int,
                 stop: threading.Event) -> int:  # fmt: skip
        """Mark the instance ACTIVE, then ack (or requeue after a failed update); the next process id."""
        tag, request, redelivered = got
        conn = me.database(history, process, stop)
        if conn is None:
            self.settle(me, tag, ack=False)
            return process
        op = history.invoke(process, "activate", request, me.db_node.name)

        def update(cur: Any) -> dict[str, Any]:
            rows = cur.execute(f"UPDATE {TABLE} SET state = 'ACTIVE', activations = activations + 1 "
                               "WHERE id = %s", (request,))  # fmt: skip
            return {"id": request, "rows": int(rows), "redelivered": redelivered}

        outcome = transact(conn, update)
        record(history, op, outcome)
        self.settle(me, tag, ack=outcome.type == "ok")
        if not outcome.usable:
            me.drop_database()
        return history.next_process(process) if outcome.type == "info" else process

    def settle(self, me: _Client, tag: int, *, ack: bool) -> None:
        """Ack a processed message, or requeue one; a lost connection requeues it anyway (redelivered)."""
        session = me.session
        if session is None or session.channel is None:
            return
        try:
            with session.deadline():
                if ack:
                    session.channel.basic_ack(tag)
                else:
                    session.channel.basic_nack(tag, requeue=True)
        except Exception:
            me.drop_broker()

    # -- the scheduler ----------------------------------------------------------------------------
    def scheduler(self, worker: int, history: HistoryWriter, stop: threading.Event) -> None:
        me = _Client(self, worker, confirms=False, label="scheduler")
        process = history.new_process()

        def states(cur: Any) -> dict[str, int]:
            cur.execute(f"SELECT state, COUNT(*) FROM {TABLE} GROUP BY state")
            return {str(state): int(count) for state, count in cur.fetchall()}

        next_at = time.monotonic()
        try:
            while not stop.is_set():
                next_at += SCAN_INTERVAL_S
                conn = me.database(history, process, stop)
                if conn is not None:
                    op = history.invoke(process, "scan", None, me.db_node.name)
                    outcome = read_only(conn, states)
                    record(history, op, outcome)
                    if not outcome.usable:
                        me.drop_database()
                stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            me.close()

    # -- after heal -------------------------------------------------------------------------------
    def final_read(self, history: HistoryWriter) -> None:
        self.finish(history)
        process = history.new_process()
        op = history.invoke(process, "read-rows", None, self.db_nodes[0].name)
        try:
            conn = self.rows.connect(self.db_nodes[0])
            try:
                with conn.cursor() as cur:
                    cur.execute(f"SELECT id, state, activations FROM {TABLE} ORDER BY id")
                    rows = [[int(i), str(state), int(n)] for i, state, n in cur.fetchall()]
            finally:
                close_quietly(conn)
        except Exception as exc:
            history.fail(op, describe(exc))
            return
        history.ok(op, rows)

    def finish(self, history: HistoryWriter) -> None:
        """The compute service after heal: process what is still queued, until the queue stays empty for
        ``FINISH_SETTLE_S`` (or nothing arrives for ``FINISH_STALL_S``)."""
        stop = threading.Event()
        me = _Client(self, 0, confirms=False, label="compute (after heal)")
        process = history.new_process()
        empty_since: float | None = None
        last_progress = time.monotonic()
        try:
            while time.monotonic() - last_progress < FINISH_STALL_S:
                got = self.take(me, history, process, stop)
                if got is None or got is False:
                    now = time.monotonic()
                    if got is False:
                        empty_since = now if empty_since is None else empty_since
                        if now - empty_since >= FINISH_SETTLE_S:
                            return
                    time.sleep(POLL_S)
                    continue
                empty_since = None
                last_progress = time.monotonic()
                process = self.activate(me, got, history, process, stop)
        finally:
            me.close()
