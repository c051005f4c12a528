"""The AMQP queue workload: publishers with confirms, consumers with manual acks, a final drain.

One queue ``hh-queue`` (a quorum queue, of ``quorum_size`` members if set, or a classic queue mirrored by
the topology's ``mirroring`` policy, after its ``queue_type``), durable and fed persistent messages unless
the spec turns ``durable`` / ``persistent`` off. Even workers publish, odd workers consume; with a single client it
alternates publish and get. Every worker owns its own pika ``BlockingConnection`` (pika is not thread-safe)
to the node ``node_for(worker)`` through the run's Toxiproxy (``system.endpoint``). With ``failover`` a
client behaves as oslo.messaging with a ``rabbit_hosts`` list: when its connection is lost or refused it
moves to the next node, declares the queue again on the new connection and resumes; with ``confirms`` off a
publish is ``ok`` once sent (no publisher confirm), so a message lost after that counts as lost.

What is recorded (see ``harness.checkers.queue`` for the shapes the checker reads):

* ``connect`` (value null): each attempt to (re)open the worker's connection and channel; ``ok`` or
  ``fail``.
* ``enqueue`` (value = message id, the message body): ``ok`` on the publisher confirm; ``fail`` when the
  broker nacked it or returned it unroutable, or when no connection could be opened for it (nothing was
  sent); ``info`` on a timeout or a connection/channel lost after it was sent.
* ``dequeue`` (invoke value null): a ``basic.get`` with manual ack. ``ok`` with ``{"id": n, "redelivered":
  flag}`` once the message is in hand (then acked); ``ok`` with null for an empty get; ``fail`` when no
  connection could be opened or the broker closed the channel before answering; ``info`` on a timeout or a
  connection lost before the get answered (an unacked message is requeued and redelivered later).
  A delivery whose ack could not be sent (connection died right after the get) is still ``ok``: the
  message did reach the client, and whether the ack landed only decides whether it comes back flagged
  redelivered, which the checker allows (at-least-once). Recording it ``info`` would drop the delivery and
  report a loss whenever the ack did land.
* ``drain`` (after heal): one op; ``ok`` with the list of every message drained, from whichever nodes
  answered, once the queue stays empty for ``DRAIN_SETTLE_S``; ``info`` (value = what was drained) when no
  node let the drain finish.

Every blocking pika call runs under a deadline of ``spec.timeout``: past it the connection's transport is
aborted (pika's own timer, so the call returns in its thread with ``StreamLostError``) and the op ends
``info`` with error ``timeout``. A client thread therefore leaves within about ``spec.timeout`` of ``stop``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from harness.model.history import HistoryWriter, Op
from harness.runtime.run import Node
from harness.workloads.base import Workload

QUEUE = "hh-queue"
DEFAULT_POLICY: dict[str, object] = {"ha-mode": "all", "ha-sync-mode": "automatic"}
POLICY = "hh-queue-ha"
BACKOFF_MIN_S = 0.1  # first wait after a failed connect; doubles up to BACKOFF_MAX_S
BACKOFF_MAX_S = 1.0
DRAIN_SETTLE_S = 1.0  # the queue must stay empty this long for the drain to finish
DRAIN_POLL_S = 0.2
DRAIN_STALL_S = 30.0  # the drain gives up after this long without receiving a message
CLOSE_TIMEOUT_S = 1.0


class _Timeout(Exception):
    """A pika call ran past the op deadline (its connection was aborted)."""


class _Session:
    """One pika connection and its channel, used by exactly one thread."""

    def __init__(self, conn: Any, timeout: float) -> None:
        self.conn = conn  # pika.BlockingConnection
        self.timeout = timeout
        self.channel: Any = None  # its BlockingChannel, once open
        self.aborted = False

    @property
    def usable(self) -> bool:
        open_channel = self.channel is not None and self.channel.is_open
        return not self.aborted and self.conn.is_open and open_channel

    @contextlib.contextmanager
    def deadline(self, seconds: float | None = None) -> Iterator[None]:
        """Bound the blocking pika calls inside: past ``seconds`` the transport is aborted, so the call
        raises (in this thread) and ``_Timeout`` is raised instead."""
        impl = self.conn._impl

        def fire() -> None:
            self.aborted = True
            with contextlib.suppress(Exception):
                impl._adapter_disconnect_stream()

        limit = self.timeout if seconds is None else seconds
        timer = impl._adapter_call_later(limit, fire)
        try:
            yield
        except Exception as exc:
            if self.aborted:
                raise _Timeout(f"no answer within {limit:g}s") from exc
            raise
        finally:
            with contextlib.suppress(Exception):
                impl._adapter_remove_timeout(timer)
        # (if it fired as the call completed, the call still succeeded; the session is just unusable now)

    def close(self) -> None:
        """Close politely when possible (bounded), else abort the transport. Never raises."""
        if self.conn.is_open and not self.aborted:
            try:
                with self.deadline(CLOSE_TIMEOUT_S):
                    self.conn.close()
                return
            except Exception:
                pass
        self.abandon()

    def abandon(self) -> None:
        """Drop a broken connection without waiting for the broker: abort the transport, then let pika
        finish its bookkeeping (bounded) so the socket and ioloop are released."""
        with contextlib.suppress(Exception):
            if not self.conn.is_closed and not self.aborted:
                self.aborted = True
                self.conn._impl._adapter_disconnect_stream()
        for _ in range(20):
            if self.conn.is_closed:
                break
            with contextlib.suppress(Exception):
                self.conn.process_data_events(0)


def _delivery(method: Any, body: bytes) -> dict[str, Any]:
    return {"id": int(body.decode("ascii")), "redelivered": bool(method.redelivered)}


def _describe(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"[:200]


class AmqpQueue(Workload):
    queue_arguments: dict[str, Any] | None = None  # as declared by setup (failover declares it again)
    name = "amqp-queue"

    # -- connections ------------------------------------------------------------------------------
    @property
    def timeout(self) -> float:
        return float(self.spec.timeout)

    @property
    def queue_type(self) -> str:
        settings = getattr(self.system.topology, "settings", None)
        return str(getattr(settings, "queue_type", "quorum"))

    def open_session(self, node: Node, *, confirms: bool, label: str) -> _Session:
        """Connect to ``node`` through its proxy and open a channel; raises on any failure."""
        import pika  # type: ignore[import-untyped]

        host, port = self.system.endpoint(node)
        params = pika.ConnectionParameters(
            host=host,
            port=port,
            credentials=pika.PlainCredentials(*self.system.client_credentials()),
            connection_attempts=1,
            socket_timeout=self.timeout,
            stack_timeout=self.timeout,
            blocked_connection_timeout=self.timeout,
            client_properties={"connection_name": f"ha-harness {label} via {node.name}"},
        )
        session = _Session(pika.BlockingConnection(params), self.timeout)
        try:
            with session.deadline():
                channel = session.conn.channel()
                if confirms:
                    channel.confirm_delivery()
            session.channel = channel
        except BaseException:
            session.abandon()
            raise
        return session

    def any_session(self, nodes: list[Node], label: str) -> tuple[Node, _Session]:
        errors = []
        for node in nodes:
            try:
                return node, self.open_session(node, confirms=False, label=label)
            except Exception as exc:
                errors.append(f"{node.name}: {_describe(exc)}")
        raise ConnectionError("no node accepted an AMQP connection: " + "; ".join(errors))

    # -- setup ------------------------------------------------------------------------------------
    def setup(self) -> None:
        """A fresh, empty ``hh-queue``: deleted and declared again (its leader/master on the first target node
        that answers, whatever an earlier run left), then purged."""
        nodes = self.system.data_nodes
        targets = [nodes[i] for i in self.targets()]
        ordered = targets + [n for n in nodes if n not in targets]
        node, session = self.any_session(ordered, "setup")
        try:
            settings = getattr(self.system.topology, "settings", None)
            if self.queue_type == "classic-mirrored":
                self.set_mirroring_policy(node, settings.mirroring.policy() if settings else DEFAULT_POLICY)
                arguments: dict[str, Any] = {"x-queue-type": "classic"}
            else:
                arguments = {"x-queue-type": "quorum"}
                if settings is not None and settings.quorum_size is not None:
                    arguments["x-quorum-initial-group-size"] = settings.quorum_size
            self.queue_arguments = arguments
            channel = session.channel
            assert channel is not None
            with session.deadline(max(self.timeout, 15.0)):
                channel.queue_delete(QUEUE)
                channel.queue_declare(QUEUE, durable=self.spec.durable, arguments=arguments)
                channel.queue_purge(QUEUE)
        finally:
            session.close()

    def set_mirroring_policy(self, node: Node, policy: dict[str, object]) -> None:
        """The classic queue's ``ha-*`` policy, set with ``rabbitmqctl set_policy`` on ``node`` (the system's
        ``ctl``: only RabbitMQ offers the queues this workload needs)."""
        definition = json.dumps(policy, separators=(",", ":"))
        args = ["set_policy", "--apply-to", "queues", POLICY, f"^{QUEUE}$", definition]
        self.system.ctl(node, args, time.monotonic() + 30)  # type: ignore[attr-defined]

    # -- clients ----------------------------------------------------------------------------------
    def role(self, worker: int, n: int) -> str:
        """The f of a worker's ``n``-th op: even workers enqueue, odd ones dequeue; a lone worker alternates."""
        if self.spec.clients == 1:
            return "enqueue" if n % 2 == 0 else "dequeue"
        return "enqueue" if worker % 2 == 0 else "dequeue"

    def client(self, worker: int, history: HistoryWriter, stop: threading.Event) -> None:
        nodes = self.system.data_nodes
        at = self.node_for(worker)
        node = nodes[at]
        confirms = (self.spec.clients == 1 or worker % 2 == 0) and self.spec.confirms  # a publisher's
        process = worker
        session: _Session | None = None
        backoff = BACKOFF_MIN_S
        next_at = time.monotonic()
        n = 0

        def hop() -> None:  # failover, as oslo.messaging does: the next host of rabbit_hosts
            nonlocal at, node
            at = (at + 1) % len(nodes)
            node = nodes[at]

        try:
            while not stop.is_set():
                next_at = self.pace(stop, next_at)
                if stop.is_set():
                    break
                f = self.role(worker, n)
                n += 1
                if session is None or not session.usable:
                    if session is not None:
                        session.abandon()
                        if self.spec.failover:
                            hop()
                    session, error = self.connect(node, history, process, confirms, worker)
                    if session is None:
                        # the op that was due could not even be sent
                        value = self.next_id() if f == "enqueue" else None
                        op = history.invoke(process, f, value, node=node.name)
                        history.fail(op, f"not connected: {error}")
                        if self.spec.failover:
                            hop()
                        stop.wait(backoff)
                        backoff = min(backoff * 2, BACKOFF_MAX_S)
                        continue
                    backoff = BACKOFF_MIN_S
                if f == "enqueue":
                    self.enqueue(session, history, process, node)
                else:
                    self.dequeue(session, history, process, node)
                process = history.next_process(process)
        finally:
            if session is not None:
                session.close()

    def connect(
        self, node: Node, history: HistoryWriter, process: int, confirms: bool, worker: int
    ) -> tuple[_Session | None, str | None]:
        op = history.invoke(process, "connect", None, node=node.name)
        try:
            session = self.open_session(node, confirms=confirms, label=f"worker {worker}")
            if self.spec.failover:  # declared again on every connection, as oslo.messaging does
                try:
                    with session.deadline():
                        assert session.channel is not None
                        session.channel.queue_declare(QUEUE, durable=self.spec.durable,
                                                      arguments=self.queue_arguments)  # fmt: skip
                except BaseException:
                    session.abandon()
                    raise
        except Exception as exc:
            error = _describe(exc)
            history.fail(op, error)
            return None, error
        history.ok(op)
        return session, None

    def enqueue(self, session: _Session, history: HistoryWriter, process: int, node: Node) -> None:
        msg_id = self.next_id()
        self.publish(session, history, history.invoke(process, "enqueue", msg_id, node=node.name), msg_id)

    @property
    def delivery_mode(self) -> int:
        """2 (persistent: written to disk) or 1 (transient: held in memory), after ``spec.persistent``."""
        return 2 if self.spec.persistent else 1

    def publish(self, session: _Session, history: HistoryWriter, op: Op, msg_id: int) -> str:
        """Publish ``msg_id`` (persistent unless ``spec.persistent`` is off; mandatory) and wait for its confirm, completing ``op``: ``ok`` on
        the confirm, ``fail`` when the broker nacked it or returned it unroutable, ``info`` on a timeout or a
        connection or channel lost after sending (the session is then abandoned). Returns the op's type."""
        import pika  # type: ignore[import-untyped]

        channel = session.channel
        assert channel is not None
        try:
            with session.deadline():
                channel.basic_publish(
                    exchange="",
                    routing_key=QUEUE,
                    body=str(msg_id).encode("ascii"),
                    properties=pika.BasicProperties(delivery_mode=self.delivery_mode),
                    mandatory=True,
                )
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            history.fail(op, _describe(exc))
            return "fail"
        except _Timeout as exc:
            history.info(op, f"timeout: {exc}")
            session.abandon()
            return "info"
        except Exception as exc:  # connection or channel lost after sending: unknown
            history.info(op, _describe(exc))
            session.abandon()
            return "info"
        history.ok(op)
        return "ok"

    def dequeue(self, session: _Session, history: HistoryWriter, process: int, node: Node) -> None:
        import pika  # type: ignore[import-untyped]

        channel = session.channel
        assert channel is not None
        op = history.invoke(process, "dequeue", None, node=node.name)
        try:
            with session.deadline():
                method, _props, body = channel.basic_get(QUEUE, auto_ack=False)
        except pika.exceptions.ChannelClosedByBroker as exc:  # refused; anything checked out is requeued
            history.fail(op, _describe(exc))
            session.abandon()
            return
        except _Timeout as exc:
            history.info(op, f"timeout: {exc}")
            session.abandon()
            return
        except Exception as exc:
            history.info(op, _describe(exc))
            session.abandon()
            return
        if method is None:
            history.ok(op, None)
            return
        try:
            value: dict[str, Any] | None = _delivery(method, body)
        except (ValueError, UnicodeDecodeError):
            value = None  # not one of ours: acked and dropped
        try:
            with session.deadline():
                channel.basic_ack(method.delivery_tag)
        except Exception:
            session.abandon()  # delivered; if the ack was lost it comes back flagged redelivered
        if value is None:
            history.info(op, f"foreign message body {body[:40]!r} (acked, dropped)")
        else:
            history.ok(op, value)

    # -- final read -------------------------------------------------------------------------------
    def final_read(self, history: HistoryWriter) -> None:
        process = history.new_process()
        op = history.invoke(process, "drain", None)
        got: list[dict[str, Any]] = []
        errors: list[str] = []
        last_progress = time.monotonic()
        nodes = list(self.system.data_nodes)
        while time.monotonic() - last_progress < DRAIN_STALL_S:
            for node in nodes:
                before = len(got)
                try:
                    session = self.open_session(node, confirms=False, label="drain")
                except Exception as exc:
                    errors.append(f"{node.name} connect: {_describe(exc)}")
                    continue
                try:
                    done = self.drain(session, got, last_progress)
                except Exception as exc:
                    errors.append(f"{node.name}: {_describe(exc)}")
                    done = False
                finally:
                    session.close()
                if len(got) > before:
                    last_progress = time.monotonic()
                if done:
                    history.complete(op, "ok", got, node=node.name)
                    return
            time.sleep(BACKOFF_MAX_S)  # every node refused: wait before the next round
        history.info(op, "drain did not finish: " + "; ".join(errors[-6:]), value=got)

    def drain(self, session: _Session, got: list[dict[str, Any]], since: float) -> bool:
        """Get and ack until the queue stays empty for ``DRAIN_SETTLE_S``; True when it did. Deliveries are
        appended to ``got`` before their ack (a lost ack means a flagged redelivery, never a gap)."""
        channel = session.channel
        assert channel is not None
        empty_since: float | None = None
        last_progress = since
        while time.monotonic() - last_progress < DRAIN_STALL_S:
            with session.deadline():
                method, _props, body = channel.basic_get(QUEUE, auto_ack=False)
            if method is not None:
                with contextlib.suppress(ValueError, UnicodeDecodeError):  # a foreign message is dropped
                    got.append(_delivery(method, body))
                with session.deadline():
                    channel.basic_ack(method.delivery_tag)
                empty_since = None
                last_progress = time.monotonic()
                continue
            with session.deadline():
                count = channel.queue_declare(QUEUE, passive=True).method.message_count
            if count:
                empty_since = None
                continue
            now = time.monotonic()
            if empty_since is None:
                empty_since = now
            elif now - empty_since >= DRAIN_SETTLE_S:
                return True
            time.sleep(DRAIN_POLL_S)  # the settle interval: the queue must stay empty, not be empty once
        return False
