"""How the AMQP queue workload turns pika's answers and errors into ``ok`` / ``fail`` / ``info``.

Two layers, both through the real ``AmqpQueue.enqueue`` / ``dequeue`` / ``client`` and the real
``_Session`` (its op deadline included):

* tables with fake pika connection/channel objects that raise the real ``pika.exceptions`` at each stage
  (the publish and its confirm, the ``basic.get``, the ``basic.ack``), and fire the deadline's timer the
  way pika's ioloop would while a call is blocked;
* the same outcomes with a real ``pika.BlockingConnection`` talking to a scripted broker on a loopback
  socket (pika's own frame codec on the server side), which checks the fakes' assumptions: what pika
  really raises for a nack, a ``basic.return``, a channel closed by the broker, a dropped socket, and
  what an op deadline that fires while pika waits for a confirm really does.

Jepsen's rule: ``fail`` only when the op certainly did not happen; a timeout or a connection lost after
sending is ``info``. Rows whose current rule we think contradicts it carry a ``# NOTE:``.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pika  # type: ignore[import-untyped]
import pytest
from pika import frame, spec
from pika.adapters.blocking_connection import ReturnedMessage  # type: ignore[import-untyped]
from pika.exceptions import (  # type: ignore[import-untyped]
    AMQPConnectionError,
    AMQPHeartbeatTimeout,
    ChannelClosedByBroker,
    ChannelWrongStateError,
    ConnectionBlockedTimeout,
    ConnectionClosedByBroker,
    NackError,
    StreamLostError,
    UnroutableError,
)

from harness.model.clock import ManualClock
from harness.model.history import HistoryWriter, Op
from harness.model.scenario import WorkloadSpec
from harness.workloads.amqp_queue import QUEUE, AmqpQueue, _Session

OP_TIMEOUT_S = 2.0  # the workload's spec.timeout in the fake tables (the deadline is fired, not waited)
REAL_TIMEOUT_S = 0.3  # the real-pika tests do wait for their deadline: keep it short
JOIN_S = 30.0
NODE = SimpleNamespace(name="n1")

# What pika 1.4 raises inside the blocked call once ``_Session.deadline`` aborted the transport (see
# test_real_a_confirm_that_never_comes_is_info_timeout): pika's own consistency assert, not StreamLostError.
ABORTED = AssertionError(
    "_on_stream_terminated() expected self._error to be populated with reason for terminating stack."
)


class Timeout:
    """A fake call that blocks until the op deadline fires: runs the pending timers, then raises what pika
    raises after the abort."""


TIMEOUT = Timeout()


def returned(body: bytes = b"1") -> ReturnedMessage:
    return ReturnedMessage(spec.Basic.Return(312, "NO_ROUTE", "", QUEUE), pika.BasicProperties(), body)


def get_ok(body: bytes, *, redelivered: bool = False, tag: int = 7) -> tuple[Any, Any, bytes]:
    method = spec.Basic.GetOk(delivery_tag=tag, redelivered=redelivered, exchange="", routing_key=QUEUE)
    return method, pika.BasicProperties(delivery_mode=2), body


EMPTY: tuple[None, None, None] = (None, None, None)


# ------------------------------------------------------------------------------------------ the fakes
class FakeImpl:
    """The ``_impl`` of a BlockingConnection as ``_Session`` uses it: timers and the transport abort."""

    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.timers: dict[int, tuple[float, Callable[[], None]]] = {}
        self.scheduled: list[float] = []
        self.disconnects = 0

    def _adapter_call_later(self, delay: float, callback: Callable[[], None]) -> int:
        self.scheduled.append(delay)
        handle = len(self.scheduled)
        self.timers[handle] = (delay, callback)
        return handle

    def _adapter_remove_timeout(self, handle: int) -> None:
        self.timers.pop(handle, None)

    def _adapter_disconnect_stream(self) -> None:
        self.disconnects += 1
        self.conn.is_open = False

    def fire_timers(self) -> None:
        for _delay, callback in list(self.timers.values()):
            callback()


@dataclass
class FakeChannel:
    """Each call takes the next action scripted for its method: a return value, an exception to raise,
    or ``TIMEOUT``."""

    conn: FakeConnection
    script: dict[str, list[Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    is_open: bool = True

    def _call(self, method: str, **kwargs: Any) -> Any:
        self.calls.append((method, kwargs))
        actions = self.script.get(method) or [None]
        action = actions.pop(0) if len(actions) > 1 else actions[0]
        if isinstance(action, Timeout):
            self.conn._impl.fire_timers()
            raise ABORTED
        if isinstance(action, BaseException):
            raise action
        return action

    def basic_publish(self, **kwargs: Any) -> None:
        self._call("basic_publish", **kwargs)

    def basic_get(self, queue: str, auto_ack: bool = False) -> Any:
        return self._call("basic_get", queue=queue, auto_ack=auto_ack)

    def basic_ack(self, delivery_tag: int = 0) -> None:
        self._call("basic_ack", delivery_tag=delivery_tag)

    def confirm_delivery(self) -> None:
        self._call("confirm_delivery")


class FakeConnection:
    def __init__(self, script: dict[str, list[Any]] | None = None) -> None:
        self.is_open = True
        self.closes = 0
        self._impl = FakeImpl(self)
        self.channel_obj = FakeChannel(self, script or {})

    @property
    def is_closed(self) -> bool:
        return not self.is_open

    def channel(self) -> FakeChannel:
        return self.channel_obj._call("channel") or self.channel_obj

    def close(self) -> None:
        self.closes += 1
        self.is_open = False

    def process_data_events(self, time_limit: float = 0) -> None:
        return None


def session_for(script: dict[str, list[Any]]) -> tuple[_Session, FakeConnection]:
    conn = FakeConnection(script)
    session = _Session(conn, OP_TIMEOUT_S)
    session.channel = conn.channel_obj
    return session, conn


def workload(**spec: Any) -> AmqpQueue:
    system = SimpleNamespace(
        run=SimpleNamespace(nodes=[NODE], topology=SimpleNamespace(node_names=["n1"], settings=None)),
        data_nodes=[NODE],
        endpoint=lambda node, service=None: ("127.0.0.1", 5672),
        client_credentials=lambda: ("harness", "per-run-password"),
    )
    spec.setdefault("timeout", OP_TIMEOUT_S)
    return AmqpQueue(system, WorkloadSpec(type="amqp-queue", **spec), random.Random(3))  # type: ignore[arg-type]


@pytest.fixture
def history(tmp_path: Path) -> Iterator[HistoryWriter]:
    with HistoryWriter(
        tmp_path / "history.jsonl", ManualClock(), concurrency=2, keep=True, background_flush=False
    ) as writer:
        yield writer


def completions(history: HistoryWriter) -> list[Op]:
    return [op for op in history.history() if op.type != "invoke"]


# ----------------------------------------------------------------------------------- enqueue's table
@dataclass(frozen=True)
class Case:
    name: str
    action: Any  # what the scripted call does
    type: str
    error: str | None  # the recorded error, exactly
    kept: bool  # the session stays usable (not abandoned)


TIMEOUT_ERROR = f"timeout: no answer within {OP_TIMEOUT_S:g}s"

ENQUEUE_TABLE = [
    Case("confirmed (basic.ack)", None, "ok", None, True),
    # NOTE: possibly not certain. RabbitMQ sends basic.nack when "an internal error occurs in the Erlang
    # process responsible for a queue", i.e. the broker refuses responsibility; a durable queue that
    # persisted the message before failing may still deliver it, and the queue checker then reports the id
    # as fail_present (invalid). `info` would be the safe reading of a nack.
    Case("nacked (basic.nack)", NackError([]), "fail", "NackError: 0 message(s) NACKed", True),
    Case("nacked, returned too", NackError([returned()]), "fail", "NackError: 1 message(s) NACKed", True),
    # mandatory + basic.return then basic.ack: routed to no queue, so stored nowhere.
    Case(
        "unroutable (basic.return)",
        UnroutableError([returned()]),
        "fail",
        "UnroutableError: 1 unroutable message(s) returned",
        True,
    ),
    # Sent, no confirm in time: the deadline aborts the connection.
    Case("timeout waiting for the confirm", TIMEOUT, "info", TIMEOUT_ERROR, False),
    # Connection or channel lost after the publish was sent: unknown.
    Case(
        "stream lost (reset)",
        StreamLostError("Stream connection lost: ConnectionResetError(104, 'Connection reset by peer')"),
        "info",
        "StreamLostError: Stream connection lost: ConnectionResetError(104, 'Connection reset by peer')",
        False,
    ),
    Case(
        "stream lost (EOF)",
        StreamLostError("Transport indicated EOF"),
        "info",
        "StreamLostError: Transport indicated EOF",
        False,
    ),
    Case(
        "heartbeat timeout",
        AMQPHeartbeatTimeout("No activity or too many missed heartbeats in the last 60 seconds"),
        "info",
        "AMQPHeartbeatTimeout: No activity or too many missed heartbeats in the last 60 seconds",
        False,
    ),
    Case(
        "connection closed by broker",
        ConnectionClosedByBroker(
            320, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
        ),
        "info",
        "ConnectionClosedByBroker: (320, \"CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'\")",
        False,
    ),
    Case(
        "blocked connection timeout",
        ConnectionBlockedTimeout("Blocked connection timeout expired."),
        "info",
        "ConnectionBlockedTimeout: Blocked connection timeout expired.",
        False,
    ),
    Case(
        "channel closed by broker",
        ChannelClosedByBroker(404, "NOT_FOUND - no exchange 'x' in vhost '/'"),
        "info",
        "ChannelClosedByBroker: (404, \"NOT_FOUND - no exchange 'x' in vhost '/'\")",
        False,
    ),
    # Raised by pika before anything is sent (the channel was already closed): `info` is conservative here.
    Case(
        "channel already closed",
        ChannelWrongStateError("Channel is closed."),
        "info",
        "ChannelWrongStateError: Channel is closed.",
        False,
    ),
    Case("other connection error", AMQPConnectionError("boom"), "info", "AMQPConnectionError: boom", False),
    Case(
        "not a pika error",
        OSError(9, "Bad file descriptor"),
        "info",
        "OSError: [Errno 9] Bad file descriptor",
        False,
    ),
]


@pytest.mark.parametrize("case", ENQUEUE_TABLE, ids=lambda c: c.name)
def test_enqueue(case: Case, history: HistoryWriter) -> None:
    session, conn = session_for({"basic_publish": [case.action]})
    workload().enqueue(session, history, 0, NODE)  # type: ignore[arg-type]
    [invoke, done] = list(history.history())
    assert (invoke.type, invoke.f, invoke.value, invoke.node) == ("invoke", "enqueue", 1, "n1")
    assert (done.type, done.value, done.error) == (case.type, 1, case.error)
    assert session.usable is case.kept
    assert (conn._impl.disconnects == 0) is case.kept, "an unknown outcome abandons the connection"
    assert history.retired(0) is (case.type == "info")
    assert not conn._impl.timers, "the deadline's timer is always removed"
    assert conn._impl.scheduled == [OP_TIMEOUT_S], "one deadline of spec.timeout per op"


def test_publish_is_mandatory_persistent_and_carries_the_id(history: HistoryWriter) -> None:
    """mandatory=True is what turns "routed nowhere" into a basic.return (``fail``) instead of a bare
    confirm, which would be recorded ``ok`` and reported lost; persistence makes the confirm mean disk."""
    session, conn = session_for({})
    wl = workload()
    wl.enqueue(session, history, 0, NODE)  # type: ignore[arg-type]
    wl.enqueue(session, history, 0, NODE)  # type: ignore[arg-type]
    publishes = [kw for name, kw in conn.channel_obj.calls if name == "basic_publish"]
    assert [kw["body"] for kw in publishes] == [b"1", b"2"]
    for kw in publishes:
        assert (kw["exchange"], kw["routing_key"], kw["mandatory"]) == ("", QUEUE, True)
        assert kw["properties"].delivery_mode == pika.DeliveryMode.Persistent.value
    assert [(op.type, op.value) for op in completions(history)] == [("ok", 1), ("ok", 2)]


def test_a_deadline_that_fires_as_the_call_returns_still_counts_the_confirm(history: HistoryWriter) -> None:
    """The confirm arrived (the call returned normally) as the timer fired: ``ok``, but the session is
    spent."""
    session, conn = session_for({})
    original = conn.channel_obj._call

    def confirm_then_fire(method: str, **kwargs: Any) -> Any:
        result = original(method, **kwargs)
        conn._impl.fire_timers()
        return result

    conn.channel_obj._call = confirm_then_fire  # type: ignore[method-assign]
    workload().enqueue(session, history, 0, NODE)  # type: ignore[arg-type]
    assert [(op.type, op.error) for op in completions(history)] == [("ok", None)]
    assert not session.usable


# ----------------------------------------------------------------------------------- dequeue's table
@dataclass(frozen=True)
class GetCase:
    name: str
    get: Any  # what basic_get does
    ack: Any  # what basic_ack does (if reached)
    type: str
    value: Any
    error: str | None
    kept: bool
    acked: bool  # basic_ack was sent


DEQUEUE_TABLE = [
    GetCase("a message", get_ok(b"17"), None, "ok", {"id": 17, "redelivered": False}, None, True, True),
    GetCase(
        "a redelivery",
        get_ok(b"17", redelivered=True),
        None,
        "ok",
        {"id": 17, "redelivered": True},
        None,
        True,
        True,
    ),
    GetCase("empty queue (basic.get-empty)", EMPTY, None, "ok", None, None, True, False),
    # The message reached the client; a lost ack only means it comes back flagged redelivered.
    GetCase(
        "ack lost with the connection",
        get_ok(b"17"),
        StreamLostError("Transport indicated EOF"),
        "ok",
        {"id": 17, "redelivered": False},
        None,
        False,
        True,
    ),
    GetCase(
        "ack timed out", get_ok(b"17"), TIMEOUT, "ok", {"id": 17, "redelivered": False}, None, False, True
    ),
    GetCase(
        "ack on a closed channel",
        get_ok(b"17"),
        ChannelClosedByBroker(406, "PRECONDITION_FAILED - unknown delivery tag 7"),
        "ok",
        {"id": 17, "redelivered": False},
        None,
        False,
        True,
    ),
    # The broker refused the get (manual ack: anything it checked out is requeued).
    GetCase(
        "channel closed by broker (404)",
        ChannelClosedByBroker(404, "NOT_FOUND - no queue 'hh-queue' in vhost '/'"),
        None,
        "fail",
        None,
        "ChannelClosedByBroker: (404, \"NOT_FOUND - no queue 'hh-queue' in vhost '/'\")",
        False,
        False,
    ),
    GetCase(
        "channel closed by broker (541)",
        ChannelClosedByBroker(541, "INTERNAL_ERROR"),
        None,
        "fail",
        None,
        "ChannelClosedByBroker: (541, 'INTERNAL_ERROR')",
        False,
        False,
    ),
    # No answer to the get: unknown (conservative: an unacked delivery is requeued anyway).
    GetCase("timeout", TIMEOUT, None, "info", None, TIMEOUT_ERROR, False, False),
    GetCase(
        "stream lost",
        StreamLostError("Transport indicated EOF"),
        None,
        "info",
        None,
        "StreamLostError: Transport indicated EOF",
        False,
        False,
    ),
    GetCase(
        "connection closed by broker",
        ConnectionClosedByBroker(320, "CONNECTION_FORCED"),
        None,
        "info",
        None,
        "ConnectionClosedByBroker: (320, 'CONNECTION_FORCED')",
        False,
        False,
    ),
    GetCase(
        "heartbeat timeout",
        AMQPHeartbeatTimeout("missed heartbeats"),
        None,
        "info",
        None,
        "AMQPHeartbeatTimeout: missed heartbeats",
        False,
        False,
    ),
    GetCase(
        "channel already closed",
        ChannelWrongStateError("Channel is closed."),
        None,
        "info",
        None,
        "ChannelWrongStateError: Channel is closed.",
        False,
        False,
    ),
    # Not one of ours: acked and dropped, recorded `info` without a value.
    GetCase(
        "foreign body",
        get_ok(b"hello"),
        None,
        "info",
        None,
        "foreign message body b'hello' (acked, dropped)",
        True,
        True,
    ),
    GetCase(
        "non-ascii body",
        get_ok(b"\xff\xfe"),
        None,
        "info",
        None,
        "foreign message body b'\\xff\\xfe' (acked, dropped)",
        True,
        True,
    ),
]


@pytest.mark.parametrize("case", DEQUEUE_TABLE, ids=lambda c: c.name)
def test_dequeue(case: GetCase, history: HistoryWriter) -> None:
    session, conn = session_for({"basic_get": [case.get], "basic_ack": [case.ack]})
    workload().dequeue(session, history, 1, NODE)  # type: ignore[arg-type]
    [invoke, done] = list(history.history())
    assert (invoke.f, invoke.value) == ("dequeue", None)
    assert (done.type, done.value, done.error) == (case.type, case.value, case.error)
    assert session.usable is case.kept
    calls = conn.channel_obj.calls
    assert calls[0] == ("basic_get", {"queue": QUEUE, "auto_ack": False}), "manual ack, always"
    assert (("basic_ack", {"delivery_tag": 7}) in calls) is case.acked
    assert not conn._impl.timers


# -------------------------------------------------------------------------------- the client's loop
def run_client(wl: AmqpQueue, worker: int, history: HistoryWriter, stop: threading.Event) -> None:
    thread = threading.Thread(target=wl.client, args=(worker, history, stop), name=f"amqp-{worker}")
    thread.start()
    thread.join(timeout=JOIN_S)
    assert not thread.is_alive(), "the client loop did not stop"


@pytest.mark.parametrize(
    ("connect_error", "stage"),
    [
        (AMQPConnectionError("Connection refused"), "connect"),
        (StreamLostError("Transport indicated EOF"), "connect"),
        (ConnectionClosedByBroker(530, "NOT_ALLOWED - access to vhost '/' refused"), "connect"),
        (ChannelClosedByBroker(406, "PRECONDITION_FAILED"), "channel"),
        (TIMEOUT, "confirm_delivery"),
    ],
)
def test_no_connection_means_the_due_op_fails(
    monkeypatch: pytest.MonkeyPatch, history: HistoryWriter, connect_error: Any, stage: str
) -> None:
    """The connect op fails, and the op that was due is recorded ``fail``: nothing was sent."""
    stop = threading.Event()
    attempts: list[FakeConnection] = []

    def blocking_connection(params: Any) -> FakeConnection:
        if len(attempts) == 1:
            stop.set()  # the second attempt ends the loop, after its ops are recorded
        conn = FakeConnection({stage: [connect_error]} if stage != "connect" else {})
        attempts.append(conn)
        if stage == "connect":
            raise connect_error
        return conn

    monkeypatch.setattr(pika, "BlockingConnection", blocking_connection)
    run_client(workload(clients=2, rate=10_000), 0, history, stop)
    done = [(op.process, op.f, op.type, op.value) for op in completions(history)]
    assert done == [
        (0, "connect", "fail", None),
        (0, "enqueue", "fail", 1),
        (0, "connect", "fail", None),
        (0, "enqueue", "fail", 2),
    ]
    errors = [op.error for op in completions(history)]
    assert errors[1] == f"not connected: {errors[0]}"
    if stage != "connect":
        assert all(conn._impl.disconnects == 1 for conn in attempts), "a half-open session is abandoned"


def test_client_loop_publishes_and_reconnects_after_info(
    monkeypatch: pytest.MonkeyPatch, history: HistoryWriter
) -> None:
    """ok, nack (fail: same process, same session), lost (info: retired, session dropped), then a new
    connection under a fresh process."""
    stop = threading.Event()
    publishes: list[Any] = [None, NackError([]), StreamLostError("Transport indicated EOF"), None]
    conns: list[FakeConnection] = []

    def blocking_connection(params: Any) -> FakeConnection:
        conn = FakeConnection()
        original = conn.channel_obj._call

        def scripted(method: str, **kwargs: Any) -> Any:
            if method == "basic_publish":
                action = publishes.pop(0)
                if not publishes:
                    stop.set()
                conn.channel_obj.script["basic_publish"] = [action]
            return original(method, **kwargs)

        conn.channel_obj._call = scripted  # type: ignore[method-assign]
        conns.append(conn)
        return conn

    monkeypatch.setattr(pika, "BlockingConnection", blocking_connection)
    run_client(workload(clients=2, rate=10_000), 0, history, stop)
    done = [(op.process, op.f, op.type) for op in completions(history)]
    assert len(done) == 6, done
    fresh = done[4][0]
    assert fresh not in (0, 1), "a fresh process, not another worker's"
    assert done == [
        (0, "connect", "ok"),
        (0, "enqueue", "ok"),
        (0, "enqueue", "fail"),
        (0, "enqueue", "info"),
        (fresh, "connect", "ok"),
        (fresh, "enqueue", "ok"),
    ]
    assert len(conns) == 2
    assert ("confirm_delivery", {}) in conns[0].channel_obj.calls, "publishers use confirms"
    assert conns[0]._impl.disconnects == 1 and conns[1].closes == 1, "abandoned after info; closed at stop"


def test_consumers_do_not_ask_for_confirms(monkeypatch: pytest.MonkeyPatch, history: HistoryWriter) -> None:
    stop = threading.Event()
    conns: list[FakeConnection] = []

    def blocking_connection(params: Any) -> FakeConnection:
        conn = FakeConnection({"basic_get": [get_ok(b"5"), EMPTY]})
        conns.append(conn)
        original = conn.channel_obj._call

        def scripted(method: str, **kwargs: Any) -> Any:
            if method == "basic_get" and len(conn.channel_obj.script["basic_get"]) == 1:
                stop.set()
            return original(method, **kwargs)

        conn.channel_obj._call = scripted  # type: ignore[method-assign]
        return conn

    monkeypatch.setattr(pika, "BlockingConnection", blocking_connection)
    run_client(workload(clients=2, rate=10_000), 1, history, stop)
    assert [(op.f, op.type, op.value) for op in completions(history)] == [
        ("connect", "ok", None),
        ("dequeue", "ok", {"id": 5, "redelivered": False}),
        ("dequeue", "ok", None),
    ]
    assert ("confirm_delivery", {}) not in conns[0].channel_obj.calls


# ------------------------------------------------------- the same outcomes with real pika, real frames
class ScriptedBroker:
    """Just enough of an AMQP 0-9-1 broker on 127.0.0.1 for one BlockingConnection at a time: the
    handshake, a channel, confirm.select, then the scripted answer to each publish / get."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.on_publish: str = "ack"  # ack | nack | return | silent | drop | close-channel | close-connection
        self.on_get: str = "empty"  # empty | message | silent | drop | close-channel
        self.body = b"17"
        self.received: list[str] = []
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, name="scripted-broker", daemon=True)
        self.thread.start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not)
        with contextlib.suppress(OSError):
            self.listener.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        self.thread.join(timeout=JOIN_S)
        assert not self.thread.is_alive(), "the scripted broker did not stop"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            with contextlib.suppress(OSError):
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        buffer = b""

        def send(*frames: Any) -> None:
            conn.sendall(b"".join(f.marshal() for f in frames))

        while True:
            data = conn.recv(65536)
            if not data:
                return
            buffer += data
            while True:
                used, got = frame.decode_frame(buffer)
                if not used:
                    break
                buffer = buffer[used:]
                if self._answer(conn, got, send) == "closed":
                    return

    def _answer(self, conn: socket.socket, got: Any, send: Callable[..., None]) -> str | None:
        ch = getattr(got, "channel_number", 0)
        method = getattr(got, "method", None)
        self.received.append(type(method).__name__ if method is not None else type(got).__name__)
        if isinstance(got, frame.ProtocolHeader):
            capabilities = {"publisher_confirms": True, "basic.nack": True}
            send(
                frame.Method(
                    0,
                    spec.Connection.Start(
                        server_properties={"capabilities": capabilities}, mechanisms="PLAIN", locales="en_US"
                    ),
                )
            )
        elif isinstance(method, spec.Connection.StartOk):
            send(frame.Method(0, spec.Connection.Tune(channel_max=8, frame_max=131072, heartbeat=0)))
        elif isinstance(method, spec.Connection.Open):
            send(frame.Method(0, spec.Connection.OpenOk()))
        elif isinstance(method, spec.Channel.Open):
            send(frame.Method(ch, spec.Channel.OpenOk()))
        elif isinstance(method, spec.Confirm.Select):
            send(frame.Method(ch, spec.Confirm.SelectOk()))
        elif isinstance(method, spec.Channel.Close):
            send(frame.Method(ch, spec.Channel.CloseOk()))
        elif isinstance(method, spec.Connection.Close):
            send(frame.Method(0, spec.Connection.CloseOk()))
        elif isinstance(got, frame.Body):  # the end of a publish: method, header, body
            return self._published(conn, ch, got.fragment, send)
        elif isinstance(method, spec.Basic.Get):
            return self._get(conn, ch, send)
        return None

    def _published(self, conn: socket.socket, ch: int, body: bytes, send: Callable[..., None]) -> str | None:
        how = self.on_publish
        if how == "ack":
            send(frame.Method(ch, spec.Basic.Ack(delivery_tag=1)))
        elif how == "nack":
            send(frame.Method(ch, spec.Basic.Nack(delivery_tag=1)))
        elif how == "return":
            send(
                frame.Method(ch, spec.Basic.Return(312, "NO_ROUTE", "", QUEUE)),
                frame.Header(ch, len(body), pika.BasicProperties()),
                frame.Body(ch, body),
                frame.Method(ch, spec.Basic.Ack(delivery_tag=1)),
            )
        elif how == "close-channel":
            send(
                frame.Method(ch, spec.Channel.Close(404, "NOT_FOUND - no exchange 'x' in vhost '/'", 60, 40))
            )
        elif how == "close-connection":
            send(frame.Method(0, spec.Connection.Close(320, "CONNECTION_FORCED - shutdown", 0, 0)))
        elif how == "drop":
            conn.close()
            return "closed"
        return None  # silent: never confirm

    def _get(self, conn: socket.socket, ch: int, send: Callable[..., None]) -> str | None:
        how = self.on_get
        if how == "empty":
            send(frame.Method(ch, spec.Basic.GetEmpty()))
        elif how == "message":
            send(
                frame.Method(
                    ch,
                    spec.Basic.GetOk(
                        delivery_tag=7, redelivered=True, exchange="", routing_key=QUEUE, message_count=0
                    ),
                ),
                frame.Header(ch, len(self.body), pika.BasicProperties(delivery_mode=2)),
                frame.Body(ch, self.body),
            )
        elif how == "close-channel":
            send(
                frame.Method(
                    ch, spec.Channel.Close(404, "NOT_FOUND - no queue 'hh-queue' in vhost '/'", 60, 70)
                )
            )
        elif how == "drop":
            conn.close()
            return "closed"
        return None


@pytest.fixture
def broker() -> Iterator[ScriptedBroker]:
    server = ScriptedBroker()
    try:
        yield server
    finally:
        server.close()


def real_workload(broker: ScriptedBroker) -> AmqpQueue:
    wl = workload(timeout=REAL_TIMEOUT_S)
    wl.system.endpoint = lambda node, service=None: ("127.0.0.1", broker.port)  # type: ignore[method-assign]
    return wl


@pytest.mark.parametrize(
    ("on_publish", "type_", "error", "kept"),
    [
        ("ack", "ok", None, True),
        ("nack", "fail", "NackError: 0 message(s) NACKed", True),
        ("return", "fail", "UnroutableError: 1 unroutable message(s) returned", True),
        (
            "close-channel",
            "info",
            "ChannelClosedByBroker: (404, \"NOT_FOUND - no exchange 'x' in vhost '/'\")",
            False,
        ),
        (
            "close-connection",
            "info",
            "ConnectionClosedByBroker: (320, 'CONNECTION_FORCED - shutdown')",
            False,
        ),
        ("drop", "info", "StreamLostError: Transport indicated EOF", False),
    ],
)
def test_real_pika_publish(
    broker: ScriptedBroker, history: HistoryWriter, on_publish: str, type_: str, error: str | None, kept: bool
) -> None:
    broker.on_publish = on_publish
    wl = real_workload(broker)
    session = wl.open_session(NODE, confirms=True, label="test")  # type: ignore[arg-type]
    try:
        wl.enqueue(session, history, 0, NODE)  # type: ignore[arg-type]
        assert [(op.type, op.error) for op in completions(history)] == [(type_, error)]
        assert session.usable is kept
    finally:
        session.close()
    assert "Select" in broker.received and "Publish" in broker.received


def test_real_a_confirm_that_never_comes_is_info_timeout(
    broker: ScriptedBroker, history: HistoryWriter
) -> None:
    """The deadline aborts the transport while pika waits for the confirm; the blocked call returns (with
    pika's AssertionError, the ``ABORTED`` the fakes raise) and the op is ``info`` "timeout"."""
    broker.on_publish = "silent"
    wl = real_workload(broker)
    session = wl.open_session(NODE, confirms=True, label="test")  # type: ignore[arg-type]
    seen: list[BaseException | None] = []
    original = session.deadline

    @contextlib.contextmanager
    def watching(seconds: float | None = None) -> Iterator[None]:
        try:
            with original(seconds):
                yield
        except Exception as exc:
            seen.append(exc.__cause__)
            raise

    session.deadline = watching  # type: ignore[method-assign]
    try:
        wl.enqueue(session, history, 0, NODE)  # type: ignore[arg-type]
    finally:
        session.close()
    assert [(op.type, op.error) for op in completions(history)] == [
        ("info", f"timeout: no answer within {REAL_TIMEOUT_S:g}s")
    ]
    assert not session.usable
    assert len(seen) == 1 and type(seen[0]) is type(ABORTED) and str(seen[0]) == str(ABORTED)


@pytest.mark.parametrize(
    ("on_get", "type_", "value", "error"),
    [
        ("empty", "ok", None, None),
        ("message", "ok", {"id": 17, "redelivered": True}, None),
        (
            "close-channel",
            "fail",
            None,
            "ChannelClosedByBroker: (404, \"NOT_FOUND - no queue 'hh-queue' in vhost '/'\")",
        ),
        ("drop", "info", None, "StreamLostError: Transport indicated EOF"),
        ("silent", "info", None, f"timeout: no answer within {REAL_TIMEOUT_S:g}s"),
    ],
)
def test_real_pika_get(
    broker: ScriptedBroker, history: HistoryWriter, on_get: str, type_: str, value: Any, error: str | None
) -> None:
    broker.on_get = on_get
    wl = real_workload(broker)
    session = wl.open_session(NODE, confirms=False, label="test")  # type: ignore[arg-type]
    try:
        wl.dequeue(session, history, 1, NODE)  # type: ignore[arg-type]
        assert [(op.type, op.value, op.error) for op in completions(history)] == [(type_, value, error)]
    finally:
        session.close()
    assert "Select" not in broker.received, "consumers do not put the channel in confirm mode"
    if on_get == "message":
        assert _wait_for(lambda: "Ack" in broker.received), "the delivery was acked"


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """The broker thread records the ack after the client sent it: poll with a deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.005)
    return True
