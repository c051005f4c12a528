"""How pymysql errors become ``ok`` / ``fail`` / ``info`` in the SQL workloads, through the real code paths.

The tables below document what the code does today, stage by stage: ``connect`` (``SqlWorkload.reconnect``),
an error before the COMMIT (``begin`` or a statement of the body) and an error from the COMMIT
(``transact``), the autocommit INSERT of sql-set (``SqlSet.execute``) and the reads (``read_only``).
Jepsen's rule: ``fail`` only when the op certainly did not happen; a timeout or a connection lost after
sending is ``info``. A COMMIT the server refused with a definite code (1213 deadlock / certification
failure, 1205, 1047, 1180, read-only) did not happen either: ``fail``, as Jepsen's Galera and MySQL
clients record it. Rows whose current rule we think contradicts it carry a ``# NOTE:``.

The errors are the exceptions pymysql itself raises: server errors are decoded from a real ERR packet by
``pymysql.err.raise_mysql_exception`` (so the exception class is pymysql's choice for that code), and the
client-side ones are built exactly as ``pymysql.connections`` builds them (read timeout, short read, failed
write, closed connection, failed connect).
"""

from __future__ import annotations

import random
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pymysql
import pytest
from pymysql.constants import CR, ER

from harness.model.clock import ManualClock
from harness.model.history import HistoryWriter, Op
from harness.model.scenario import WorkloadSpec
from harness.workloads.sql_bank import SqlBank
from harness.workloads.sql_common import (
    CLIENT_ERRORS_FROM,
    DEFINITE_FAILURES,
    ROLLBACK_FAILED,
    OpType,
    Outcome,
    Refused,
    error_code,
    is_server_error,
    read_only,
    transact,
)
from harness.workloads.sql_register import SqlRegister
from harness.workloads.sql_set import SqlSet


# ------------------------------------------------------------------------------------------ the errors
def server_error(code: int, message: str, sqlstate: str = "HY000") -> pymysql.err.MySQLError:
    """What pymysql raises when the server answers with an ERR packet carrying ``code``."""
    packet = b"\xff" + struct.pack("<h", code) + b"#" + sqlstate.encode() + message.encode()
    try:
        pymysql.err.raise_mysql_exception(packet)
    except pymysql.err.MySQLError as exc:
        return exc
    raise AssertionError("raise_mysql_exception did not raise")


def lost_during_query(cause: BaseException | None = None) -> pymysql.err.OperationalError:
    """``Connection._read_bytes``: the socket read failed (``cause``: a timeout, a reset) or came up short."""
    suffix = "" if cause is None else f" ({cause})"
    return pymysql.err.OperationalError(
        CR.CR_SERVER_LOST, f"Lost connection to MySQL server during query{suffix}"
    )


def gone_away(cause: BaseException) -> pymysql.err.OperationalError:
    """``Connection._write_bytes``: sending the statement failed."""
    return pymysql.err.OperationalError(CR.CR_SERVER_GONE_ERROR, f"MySQL server has gone away ({cause!r})")


def cannot_connect(cause: BaseException) -> pymysql.err.OperationalError:
    """``Connection.connect``: an OSError while opening the socket or during the handshake."""
    return pymysql.err.OperationalError(
        CR.CR_CONN_HOST_ERROR, f"Can't connect to MySQL server on '127.0.0.1' ({cause})"
    )


ERRORS: dict[str, Callable[[], BaseException]] = {
    # server errors (the session survives them)
    "1213 deadlock": lambda: server_error(
        ER.LOCK_DEADLOCK, "Deadlock found when trying to get lock; try restarting transaction", "40001"
    ),
    "1205 lock wait timeout": lambda: server_error(
        ER.LOCK_WAIT_TIMEOUT, "Lock wait timeout exceeded; try restarting transaction"
    ),
    "1047 WSREP not ready": lambda: server_error(
        ER.UNKNOWN_COM_ERROR, "WSREP has not yet prepared node for application use", "08S01"
    ),
    "1180 error during COMMIT": lambda: server_error(
        ER.ERROR_DURING_COMMIT, 'Got error 149 "Lock deadlock; Retry transaction" during COMMIT'
    ),
    "1290 read-only server": lambda: server_error(
        ER.OPTION_PREVENTS_STATEMENT,
        "The MariaDB server is running with the --read-only option so it cannot execute this statement",
    ),
    "1792 read-only transaction": lambda: server_error(
        1792, "Cannot execute statement in a READ ONLY transaction", "25006"
    ),
    "1062 duplicate key": lambda: server_error(
        ER.DUP_ENTRY, "Duplicate entry '7' for key 'PRIMARY'", "23000"
    ),
    "1146 no such table": lambda: server_error(
        ER.NO_SUCH_TABLE, "Table 'harness.hh_set' doesn't exist", "42S02"
    ),
    "1040 too many connections": lambda: server_error(ER.CON_COUNT_ERROR, "Too many connections", "08004"),
    "1045 access denied": lambda: server_error(
        ER.ACCESS_DENIED_ERROR, "Access denied for user 'harness'@'10.0.0.1' (using password: YES)", "28000"
    ),
    # client errors, as pymysql raises them
    "2013 lost (short read)": lambda: lost_during_query(),
    "2013 socket timeout": lambda: lost_during_query(TimeoutError("timed out")),
    "2013 reset by peer": lambda: lost_during_query(ConnectionResetError(104, "Connection reset by peer")),
    "2006 gone away": lambda: gone_away(BrokenPipeError(32, "Broken pipe")),
    "2003 cannot connect": lambda: cannot_connect(TimeoutError("timed out")),
    "0 interface error (closed)": lambda: pymysql.err.InterfaceError(0, ""),
    "already closed": lambda: pymysql.err.Error("Already closed"),
    # raw exceptions from outside pymysql's wrapping
    "client-side timeout": lambda: TimeoutError("timed out"),  # socket.timeout is TimeoutError
    "raw connection reset": lambda: ConnectionResetError(104, "Connection reset by peer"),
}


def make(name: str) -> BaseException:
    return ERRORS[name]()


def test_the_errors_are_the_ones_pymysql_raises() -> None:
    """The catalogue above: the class pymysql picks for each code, and the codes the harness reads."""
    assert type(make("1213 deadlock")) is pymysql.err.OperationalError
    assert type(make("1062 duplicate key")) is pymysql.err.IntegrityError
    assert type(make("1146 no such table")) is pymysql.err.ProgrammingError
    assert type(make("1047 WSREP not ready")) is pymysql.err.OperationalError
    assert make("1213 deadlock").args == (
        1213,
        "Deadlock found when trying to get lock; try restarting transaction",
    )
    assert make("1062 duplicate key").sqlstate == "23000"  # type: ignore[attr-defined]
    codes = {name: error_code(make(name)) for name in ERRORS}
    assert codes == {
        "1213 deadlock": 1213,
        "1205 lock wait timeout": 1205,
        "1047 WSREP not ready": 1047,
        "1180 error during COMMIT": 1180,
        "1290 read-only server": 1290,
        "1792 read-only transaction": 1792,
        "1062 duplicate key": 1062,
        "1146 no such table": 1146,
        "1040 too many connections": 1040,
        "1045 access denied": 1045,
        "2013 lost (short read)": 2013,
        "2013 socket timeout": 2013,
        "2013 reset by peer": 2013,
        "2006 gone away": 2006,
        "2003 cannot connect": 2003,
        "0 interface error (closed)": 0,
        "already closed": None,
        "client-side timeout": None,
        "raw connection reset": 104,
    }
    assert isinstance(make("client-side timeout"), TimeoutError)


# The server/client split (``is_server_error``) decides whether the session is kept after an error.
SERVER_SIDE = {
    "1213 deadlock",
    "1205 lock wait timeout",
    "1047 WSREP not ready",
    "1180 error during COMMIT",
    "1290 read-only server",
    "1792 read-only transaction",
    "1062 duplicate key",
    "1146 no such table",
    "1040 too many connections",
    "1045 access denied",
    # NOTE: not a server error: error_code() reads args[0] of any exception, so an OSError's errno (104)
    # passes for a MySQL server error below CLIENT_ERRORS_FROM and the broken connection is kept (and
    # ROLLBACK tried on it). pymysql wraps socket errors itself (2013/2006/2003), so this only bites an
    # exception raised outside pymysql; it changes `usable`, not ok/fail/info, except through that ROLLBACK.
    "raw connection reset",
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_server_or_client_side(name: str) -> None:
    assert is_server_error(make(name)) is (name in SERVER_SIDE)
    assert CLIENT_ERRORS_FROM == 2000


# ------------------------------------------------------------------------------------------ the fakes
@dataclass
class FakeConnection:
    """A pymysql connection's surface as the workloads use it. ``raises`` maps a stage to the error it
    raises: ``begin``, ``commit``, ``rollback``, or ``execute`` (every statement) / ``execute#N`` (the N-th
    statement, from 1). Records every call."""

    raises: dict[str, BaseException] = field(default_factory=dict)
    on_execute: Callable[[str], None] | None = None  # called with each statement; may raise
    rowcount: int = 1
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    statements: int = 0
    closed: bool = False

    def _stage(self, stage: str) -> None:
        self.calls.append(stage)
        if stage in self.raises:
            raise self.raises[stage]

    def begin(self) -> None:
        self._stage("begin")

    def commit(self) -> None:
        self._stage("commit")

    def rollback(self) -> None:
        self._stage("rollback")

    def close(self) -> None:
        self.calls.append("close")
        self.closed = True

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, args: Any = None) -> int:
        conn = self.conn
        conn.statements += 1
        conn.calls.append(f"execute#{conn.statements}")
        if conn.on_execute is not None:
            conn.on_execute(sql)
        for stage in ("execute", f"execute#{conn.statements}"):
            if stage in conn.raises:
                raise conn.raises[stage]
        return conn.rowcount

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self.conn.rows)


NODE = SimpleNamespace(name="n1")


def add_counter(cur: Any) -> str:
    """A transaction body: one UPDATE, like sql-register's add."""
    if cur.execute("UPDATE hh_register SET v = v + 1 WHERE k = %s", (0,)) != 1:
        raise Refused("no counter 0")
    return "added"


# ------------------------------------------------------------------------------------ transact's table
@dataclass(frozen=True)
class Row:
    stage: str
    error: str
    type: str
    usable: bool
    rolled_back: bool  # ROLLBACK was sent


CLIENT_SIDE = (
    "2013 lost (short read)",
    "2013 socket timeout",
    "2013 reset by peer",
    "2006 gone away",
    "0 interface error (closed)",
    "already closed",
    "client-side timeout",
)
BEGIN_SERVER = ("1047 WSREP not ready",)
EXECUTE_SERVER = (
    "1213 deadlock",
    "1205 lock wait timeout",
    "1047 WSREP not ready",
    "1062 duplicate key",
    "1146 no such table",
    "1290 read-only server",
    "1792 read-only transaction",
)
COMMIT_SERVER = (
    "1213 deadlock",
    "1047 WSREP not ready",
    "1180 error during COMMIT",
    "1205 lock wait timeout",
)

TRANSACT_TABLE = [
    # An error before the COMMIT is sent: the transaction never committed (we roll it back; a dropped
    # connection makes the server roll it back), so `fail`, whatever the error, timeouts included. A
    # server error keeps the session (after a ROLLBACK); a client error drops it (no ROLLBACK tried).
    *[Row("begin", e, "fail", True, True) for e in BEGIN_SERVER],
    *[Row("begin", e, "fail", False, False) for e in CLIENT_SIDE],
    *[Row("execute", e, "fail", True, True) for e in EXECUTE_SERVER],
    *[Row("execute", e, "fail", False, False) for e in CLIENT_SIDE],
    Row("execute", "raw connection reset", "fail", True, True),  # errno 104 passes for a server error
    # An error from the COMMIT itself: a definite abort (deadlock / certification failure, lock wait
    # timeout, non-Primary, error during COMMIT) is `fail`: certification is decided alike on every node,
    # so a writeset that failed it committed nowhere; the session is kept after the ROLLBACK.
    *[Row("commit", e, "fail", True, True) for e in COMMIT_SERVER],
    # Any other end of the COMMIT is `info`: the connection lost or timed out while the COMMIT was in
    # flight, a server code not known to mean "not applied", an exception from outside pymysql.
    *[Row("commit", e, "info", False, False) for e in CLIENT_SIDE],
    Row("commit", "1062 duplicate key", "info", True, True),
    Row("commit", "raw connection reset", "info", True, True),  # errno 104 passes for a server error
]


@pytest.mark.parametrize("row", TRANSACT_TABLE, ids=lambda r: f"{r.stage}: {r.error}")
def test_transact(row: Row) -> None:
    exc = make(row.error)
    conn = FakeConnection(raises={row.stage: exc})
    outcome = transact(conn, add_counter)
    assert (outcome.type, outcome.usable) == (row.type, row.usable)
    assert outcome.value is None
    assert outcome.error == f"{type(exc).__name__}: {exc}"[:200]
    assert ("rollback" in conn.calls) is row.rolled_back
    assert conn.calls[0] == "begin"
    assert ("commit" in conn.calls) is (row.stage == "commit"), "COMMIT is sent only after the body ran"
    assert not conn.closed, "transact never closes the connection; the client loop does when unusable"


def test_transact_ok_returns_the_bodys_value() -> None:
    conn = FakeConnection()
    assert transact(conn, add_counter) == Outcome("ok", "added")
    assert conn.calls == ["begin", "execute#1", "commit"]


def test_refused_rolls_back_and_fails() -> None:
    conn = FakeConnection(rowcount=0)  # the UPDATE matched no row
    outcome = transact(conn, add_counter)
    assert outcome == Outcome("fail", error="refused: no counter 0", usable=True)
    assert conn.calls == ["begin", "execute#1", "rollback"]


@pytest.mark.parametrize(
    ("stage", "first", "rollback_error", "type_", "usable"),
    [
        # A ROLLBACK the server refused may leave the transaction open (1205 rolls back only the timed-out
        # statement, not the earlier UPDATEs), and the next BEGIN would commit it implicitly after it was
        # recorded `fail`: the connection is dropped, so the server rolls the transaction back.
        ("execute", "1205 lock wait timeout", "1213 deadlock", "fail", False),
        ("execute", "1205 lock wait timeout", "1047 WSREP not ready", "fail", False),
        ("commit", "1180 error during COMMIT", "1213 deadlock", "fail", False),
        # ROLLBACK lost with the connection: dropped, the server rolls back on its own.
        ("execute", "1213 deadlock", "2013 lost (short read)", "fail", False),
        ("execute", "1047 WSREP not ready", "2006 gone away", "fail", False),
        ("commit", "1213 deadlock", "2013 socket timeout", "fail", False),
        ("commit", "1062 duplicate key", "2013 socket timeout", "info", False),
    ],
)
def test_a_failed_rollback_decides_whether_the_session_is_kept(
    stage: str, first: str, rollback_error: str, type_: str, usable: bool
) -> None:
    conn = FakeConnection(raises={stage: make(first), "rollback": make(rollback_error)})
    outcome = transact(conn, add_counter)
    assert (outcome.type, outcome.usable) == (type_, usable)
    assert outcome.error is not None and outcome.error.startswith(
        ("OperationalError: (", "IntegrityError: (")
    )
    assert str(error_code(make(first))) in outcome.error, "the error recorded is the op's, not the rollback's"
    assert outcome.code == error_code(make(first))
    # a dropped session is said on the op, after its own error: every reconnect has a recorded cause
    own, _, dropped = outcome.error.partition(ROLLBACK_FAILED)
    assert str(error_code(make(rollback_error))) in dropped and str(error_code(make(first))) in own


def test_a_refusal_whose_rollback_is_lost_drops_the_session() -> None:
    conn = FakeConnection(rowcount=0, raises={"rollback": make("2013 lost (short read)")})
    error = ("refused: no counter 0; ROLLBACK failed, session dropped: "
             "OperationalError: (2013, 'Lost connection to MySQL server during query')")  # fmt: skip
    assert transact(conn, add_counter) == Outcome("fail", error=error, usable=False)


def test_keyboard_interrupt_is_not_an_outcome() -> None:
    """Only ``Exception`` is classified; an interrupt propagates (the run is being torn down)."""
    conn = FakeConnection(raises={"commit": KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        transact(conn, add_counter)


# ------------------------------------------------------------- the workloads' bodies through transact
def workload(cls: type[Any], **spec: Any) -> Any:
    """A workload on a stand-in system; ``execute`` needs only the connection and the node."""
    system = SimpleNamespace(
        run=SimpleNamespace(nodes=[NODE], topology=SimpleNamespace(node_names=["n1"])),
        data_nodes=[NODE],
        endpoint=lambda node, service=None: ("127.0.0.1", 13306),
        client_credentials=lambda: ("harness", "per-run-password"),
    )
    return cls(system, WorkloadSpec(type=cls.name, **spec), random.Random(7))


@pytest.mark.parametrize(
    ("raises", "type_", "usable"),
    [
        ({}, "ok", True),
        ({"execute#1": make("1213 deadlock")}, "fail", True),  # SELECT … FOR UPDATE
        ({"execute#3": make("1205 lock wait timeout")}, "fail", True),  # the second UPDATE
        ({"execute#2": make("2013 socket timeout")}, "fail", False),  # the first UPDATE timed out
        ({"execute#3": make("2006 gone away")}, "fail", False),
        ({"commit": make("1213 deadlock")}, "fail", True),  # a certification failure reported at COMMIT
        ({"commit": make("1047 WSREP not ready")}, "fail", True),
        ({"commit": make("2013 socket timeout")}, "info", False),
        ({"commit": make("2013 reset by peer")}, "info", False),
    ],
)
def test_bank_transfer(raises: dict[str, BaseException], type_: str, usable: bool) -> None:
    bank = workload(SqlBank)
    conn = FakeConnection(raises=raises, rows=[(0, 100), (1, 100)])
    outcome = bank.execute(conn, "transfer", {"from": 0, "to": 1, "amount": 10}, NODE)
    assert (outcome.type, outcome.usable) == (type_, usable)
    assert ("commit" in conn.calls) is ("commit" in raises or not raises)


@pytest.mark.parametrize(
    ("rows", "allow_negative", "expected"),
    [
        ([(0, 5), (1, 100)], False, "refused: insufficient funds: account 0 has 5 < 10"),
        ([(1, 100)], False, "refused: account(s) missing: found [1] of [0, 1]"),
    ],
)
def test_bank_refusals_fail_and_keep_the_session(
    rows: list[tuple[int, int]], allow_negative: bool, expected: str
) -> None:
    bank = workload(SqlBank, allow_negative=allow_negative)
    conn = FakeConnection(rows=rows)
    outcome = bank.execute(conn, "transfer", {"from": 0, "to": 1, "amount": 10}, NODE)
    assert outcome == Outcome("fail", error=expected, usable=True)
    assert conn.calls == ["begin", "execute#1", "rollback"]


def test_bank_overdraft_allowed_commits() -> None:
    bank = workload(SqlBank, allow_negative=True)
    conn = FakeConnection(rows=[(0, 5), (1, 100)])
    assert bank.execute(conn, "transfer", {"from": 0, "to": 1, "amount": 10}, NODE).type == "ok"
    assert conn.calls[-1] == "commit"


@pytest.mark.parametrize(
    ("stage", "error", "type_", "usable"),
    [
        ("execute", "1213 deadlock", "fail", True),
        ("execute", "2013 socket timeout", "fail", False),
        ("commit", "1213 deadlock", "fail", True),
        ("commit", "2013 reset by peer", "info", False),
    ],
)
def test_register_add(stage: str, error: str, type_: str, usable: bool) -> None:
    register = workload(SqlRegister)
    conn = FakeConnection(raises={stage: make(error)})
    outcome = register.execute(conn, "add", {"key": 0, "delta": 1}, NODE)
    assert (outcome.type, outcome.usable) == (type_, usable)


# ----------------------------------------------------------------------------------------- the reads
@pytest.mark.parametrize(
    ("stage", "error", "usable"),
    [
        ("execute", "1047 WSREP not ready", True),
        ("execute", "1205 lock wait timeout", True),
        ("execute", "2013 socket timeout", False),
        ("execute", "2006 gone away", False),
        ("execute", "client-side timeout", False),
        ("execute", "raw connection reset", True),  # NOTE: see SERVER_SIDE: a dead connection is kept
    ],
)
def test_a_failed_read_is_fail(stage: str, error: str, usable: bool) -> None:
    """A read changes nothing, so every error is ``fail`` (Jepsen allows it: a read has no effect)."""
    register = workload(SqlRegister)
    conn = FakeConnection(raises={stage: make(error)})
    outcome = register.execute(conn, "read", None, NODE)
    assert (outcome.type, outcome.usable) == ("fail", usable)
    assert "begin" not in conn.calls, "sql-register reads in one statement, no transaction"


@pytest.mark.parametrize(
    ("stage", "error", "usable"),
    [
        ("begin", "1047 WSREP not ready", True),
        ("execute", "1213 deadlock", True),
        ("execute", "2013 socket timeout", False),
        ("commit", "1213 deadlock", True),  # `info` from transact, turned into `fail`: a read
        ("commit", "2013 lost (short read)", False),
    ],
)
def test_a_failed_transactional_read_is_fail(stage: str, error: str, usable: bool) -> None:
    bank = workload(SqlBank)
    conn = FakeConnection(raises={stage: make(error)}, rows=[(0, 100), (1, 100)])
    outcome = bank.execute(conn, "read", None, NODE)
    assert (outcome.type, outcome.usable) == ("fail", usable)
    assert outcome.error is not None and str(error_code(make(error))) in outcome.error


def test_reads_return_their_value() -> None:
    conn = FakeConnection(rows=[(0, 3), (1, 4)])
    assert workload(SqlRegister).execute(conn, "read", None, NODE) == Outcome("ok", {"0": 3, "1": 4})
    conn = FakeConnection(rows=[(0, 60), (1, 140)])
    assert workload(SqlBank).execute(conn, "read", None, NODE) == Outcome("ok", {"0": 60, "1": 140})
    assert conn.calls == ["begin", "execute#1", "commit"]
    assert read_only(FakeConnection(), lambda cur: 1, transaction=True) == Outcome("ok", 1)


# ------------------------------------------------------------------------- sql-set: autocommit INSERT
SQL_SET_TABLE: list[tuple[str, OpType, bool]] = [
    # DEFINITE_FAILURES: rejected, not applied; the session is kept. 1213, 1047 and 1180 can come from the
    # implicit COMMIT of the autocommit INSERT (Galera replicates and certifies it then): the same rule as
    # transact's COMMIT, a definite abort.
    ("1213 deadlock", "fail", True),
    ("1047 WSREP not ready", "fail", True),
    ("1180 error during COMMIT", "fail", True),
    ("1205 lock wait timeout", "fail", True),
    ("1290 read-only server", "fail", True),
    ("1792 read-only transaction", "fail", True),
    # any other pymysql error: indeterminate, and the connection is dropped
    ("1062 duplicate key", "info", False),
    ("1146 no such table", "info", False),
    ("1040 too many connections", "info", False),
    ("2013 lost (short read)", "info", False),
    ("2013 socket timeout", "info", False),
    ("2013 reset by peer", "info", False),
    ("2006 gone away", "info", False),
    ("0 interface error (closed)", "info", False),
    ("already closed", "info", False),
    # not a pymysql error at all
    ("client-side timeout", "info", False),
    ("raw connection reset", "info", False),
]


def test_the_definite_failures_are_the_documented_codes() -> None:
    assert {1047, 1213, 1205, 1290, 1792, 1180} == DEFINITE_FAILURES
    assert {error_code(make(e)) for e, type_, _ in SQL_SET_TABLE if type_ == "fail"} == DEFINITE_FAILURES


@pytest.mark.parametrize(("error", "type_", "usable"), SQL_SET_TABLE, ids=[r[0] for r in SQL_SET_TABLE])
def test_sql_set_insert(error: str, type_: OpType, usable: bool) -> None:
    exc = make(error)
    conn = FakeConnection(raises={"execute": exc})
    outcome = workload(SqlSet).execute(conn, "add", 7, NODE)
    assert outcome == Outcome(type_, error=f"{type(exc).__name__}: {exc}"[:200], usable=usable)
    assert conn.calls == ["execute#1"], "one autocommit statement: no BEGIN, COMMIT or ROLLBACK"


def test_sql_set_insert_ok() -> None:
    conn = FakeConnection()
    assert workload(SqlSet).execute(conn, "add", 7, NODE) == Outcome("ok")


# -------------------------------------------------------------------------------------------- connect
@pytest.fixture
def history(tmp_path: Path) -> Iterator[HistoryWriter]:
    with HistoryWriter(
        tmp_path / "history.jsonl", ManualClock(), concurrency=1, keep=True, background_flush=False
    ) as writer:
        yield writer


def completions(history: HistoryWriter) -> list[Op]:
    return [op for op in history.history() if op.type != "invoke"]


@pytest.mark.parametrize(
    "error",
    [
        "2003 cannot connect",
        "1045 access denied",
        "1040 too many connections",
        "1047 WSREP not ready",
        "2013 socket timeout",
        "client-side timeout",
    ],
)
def test_a_failed_connect_is_fail(
    monkeypatch: pytest.MonkeyPatch, history: HistoryWriter, error: str
) -> None:
    """Opening a session changes nothing, so a connect that errs is ``fail``, then a bounded back-off."""
    exc = make(error)

    def connect(**kwargs: Any) -> Any:
        raise exc

    monkeypatch.setattr(pymysql, "connect", connect)
    stop = threading.Event()
    stop.set()  # the back-off wait returns at once
    assert workload(SqlSet).reconnect(0, NODE, history, stop) is None
    [done] = completions(history)
    assert (done.f, done.type, done.node) == ("connect", "fail", "n1")
    assert done.error == f"{type(exc).__name__}: {exc}"[:200]
    assert not history.retired(0)


@pytest.mark.parametrize("error", ["1047 WSREP not ready", "2013 socket timeout"])
def test_a_session_statement_that_fails_closes_the_connection(
    monkeypatch: pytest.MonkeyPatch, history: HistoryWriter, error: str
) -> None:
    """sql-register's session SQL (isolation level, causal reads) runs as part of the connect op."""
    conn = FakeConnection(raises={"execute#2": make(error)})  # SET SESSION wsrep_sync_wait = 1
    seen: dict[str, Any] = {}

    def connect(**kwargs: Any) -> FakeConnection:
        seen.update(kwargs)
        return conn

    monkeypatch.setattr(pymysql, "connect", connect)
    stop = threading.Event()
    stop.set()
    assert workload(SqlRegister, timeout=1.5).reconnect(0, NODE, history, stop) is None
    assert [(op.f, op.type) for op in completions(history)] == [("connect", "fail")]
    assert conn.closed
    # every socket operation is bounded: this is what turns a hang into "2013 ... (timed out)"
    assert (seen["connect_timeout"], seen["read_timeout"], seen["write_timeout"]) == (1.5, 1.5, 1.5)
    assert (seen["host"], seen["port"], seen["autocommit"]) == ("127.0.0.1", 13306, True)


# ------------------------------------------------------------------------------------ the client loop
def test_client_loop_records_and_retires_processes(
    monkeypatch: pytest.MonkeyPatch, history: HistoryWriter
) -> None:
    """ok → fail (session kept, same process) → info (process retired, session dropped) → reconnect under
    a fresh process → ok; the loop stops when told to."""
    stop = threading.Event()
    script: list[BaseException | None] = [None, make("1213 deadlock"), make("2013 socket timeout"), None]
    conns: list[FakeConnection] = []

    def insert(sql: str) -> None:
        assert sql.startswith("INSERT INTO hh_set"), sql
        step = script.pop(0)
        if not script:
            stop.set()  # the last scripted op: the loop ends after recording it
        if step is not None:
            raise step

    def connect(**kwargs: Any) -> FakeConnection:
        conns.append(FakeConnection(on_execute=insert))
        return conns[-1]

    monkeypatch.setattr(pymysql, "connect", connect)
    sql_set = workload(SqlSet, clients=1, rate=10_000, read_share=0)
    worker = threading.Thread(target=sql_set.client, args=(0, history, stop), name="sql-set-0")
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the client loop did not stop"
    done = [(op.process, op.f, op.type) for op in completions(history)]
    assert len(done) == 6, done
    fresh = done[4][0]
    assert fresh != 0, "a fresh process after the info"
    assert done == [
        (0, "connect", "ok"),
        (0, "add", "ok"),
        (0, "add", "fail"),  # 1213 on the INSERT: a definite failure, the session is kept
        (0, "add", "info"),  # 2013 timed out: indeterminate; the process is retired
        (fresh, "connect", "ok"),
        (fresh, "add", "ok"),
    ]
    assert history.retired(0) and not history.retired(fresh)
    assert len(conns) == 2 and conns[0].closed and conns[1].closed, "dropped after info; closed at stop"
    assert [op.value for op in history.history() if op.f == "add" and op.type == "invoke"] == [1, 2, 3, 4]


# ------------------------------------------------------------------ sql-bank locking: none, compare-and-set
def test_locking_none_reads_plainly_and_writes_absolute_values() -> None:
    seen: list[str] = []
    conn = FakeConnection(rows=[(0, 100), (1, 100)], on_execute=seen.append)
    outcome = workload(SqlBank, locking="none").execute(
        conn, "transfer", {"from": 0, "to": 1, "amount": 10}, NODE
    )
    assert outcome.type == "ok" and outcome.value is None
    assert "FOR UPDATE" not in seen[0]
    assert seen[1:] == ["UPDATE hh_bank SET balance = %s WHERE id = %s"] * 2


def test_compare_and_set_retries_misses_and_certification_failures() -> None:
    script: list[BaseException | int] = [0, make("1213 deadlock"), 1]  # per attempt: rowcount, or an error
    conn = FakeConnection(rows=[(0, 100), (1, 100)])
    attempt: list[BaseException | int] = []

    def on_execute(sql: str) -> None:
        if sql.startswith("SELECT"):
            attempt[:] = [script.pop(0)]
        elif isinstance(attempt[0], BaseException):
            raise attempt[0]
        else:
            conn.rowcount = attempt[0]

    conn.on_execute = on_execute
    value = {"from": 0, "to": 1, "amount": 10}
    outcome = workload(SqlBank, locking="compare-and-set").execute(conn, "transfer", value, NODE)
    assert outcome.type == "ok"
    assert outcome.value == {**value, "retries": 2, "retried_on": {"cas": 1, "1213": 1}}
    assert conn.calls.count("rollback") == 2 and conn.calls[-1] == "commit"


def test_compare_and_set_gives_up_after_max_retries() -> None:
    from harness.workloads.sql_bank import MAX_RETRIES

    conn = FakeConnection(rows=[(0, 100), (1, 100)], rowcount=0)  # every UPDATE misses
    value = {"from": 0, "to": 1, "amount": 10}
    outcome = workload(SqlBank, locking="compare-and-set").execute(conn, "transfer", value, NODE)
    assert (outcome.type, outcome.usable) == ("fail", True)
    assert outcome.value == {**value, "retries": MAX_RETRIES, "retried_on": {"cas": MAX_RETRIES}}
    assert outcome.error is not None and outcome.error.startswith(
        f"gave up after {MAX_RETRIES} retries: refused"
    )
    assert conn.calls.count("begin") == MAX_RETRIES + 1


@pytest.mark.parametrize(
    ("raises", "type_", "retried"),
    [
        ({"commit": make("2013 socket timeout")}, "info", False),  # indeterminate: never retried
        ({"execute#1": make("1047 WSREP not ready")}, "fail", False),  # definite, but not a conflict
    ],
)
def test_compare_and_set_does_not_retry_other_ends(
    raises: dict[str, BaseException], type_: str, retried: bool
) -> None:
    conn = FakeConnection(rows=[(0, 100), (1, 100)], raises=raises)
    outcome = workload(SqlBank, locking="compare-and-set").execute(
        conn, "transfer", {"from": 0, "to": 1, "amount": 1}, NODE
    )
    assert outcome.type == type_ and outcome.value["retries"] == 0
    assert conn.calls.count("begin") == 1


def test_a_wrong_locking_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="locking"):
        WorkloadSpec(type="sql-bank", locking="optimistic")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="locking is only for sql-bank"):
        WorkloadSpec(type="sql-set", locking="none")
    with pytest.raises(ValidationError, match="read_share is only for sql-set"):
        WorkloadSpec(type="sql-bank", read_share=0.5)


# ------------------------------------------------------------------------------------ sql-set: scans
def test_a_scan_reads_the_node_itself_on_its_own_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conns: list[FakeConnection] = []

    def connect(**kwargs: Any) -> FakeConnection:
        conns.append(FakeConnection(rows=[(3,), (1,)]))
        return conns[-1]

    monkeypatch.setattr(pymysql, "connect", connect)
    sql_set = workload(SqlSet, read_share=1.0)
    direct: list[bool] = []
    sql_set.system.node_endpoints = lambda: _Flag(direct)
    insert_conn = FakeConnection()
    assert sql_set.next_op(random.Random(1)) == ("scan", None)
    assert sql_set.execute(insert_conn, "scan", None, NODE) == Outcome("ok", [1, 3])
    assert sql_set.execute(insert_conn, "scan", None, NODE) == Outcome("ok", [1, 3])
    assert len(conns) == 1 and direct == [True], "one scan connection, opened inside node_endpoints()"
    assert insert_conn.calls == [], "the insert connection is not used for scans"
    conns[0].raises["execute"] = make("2013 socket timeout")
    failed = sql_set.execute(insert_conn, "scan", None, NODE)
    assert (failed.type, failed.usable) == ("fail", True), "a failed scan never drops the insert connection"
    assert conns[0].closed
    assert sql_set.execute(insert_conn, "scan", None, NODE).type == "ok" and len(conns) == 2


class _Flag:
    def __init__(self, seen: list[bool]) -> None:
        self.seen = seen

    def __enter__(self) -> None:
        self.seen.append(True)

    def __exit__(self, *exc: object) -> None:
        return None


# ------------------------------------------------------------------ the classes counted in the figures
@pytest.mark.parametrize(
    ("stage", "error", "type_", "klass"),
    [
        ("commit", "1213 deadlock", "fail", "1213"),
        ("commit", "1205 lock wait timeout", "fail", "1205"),
        ("commit", "1047 WSREP not ready", "fail", "1047"),
        ("commit", "1180 error during COMMIT", "fail", "1180"),
        ("commit", "2013 lost (short read)", "info", "lost-connection"),
        ("commit", "2013 reset by peer", "info", "lost-connection"),
        ("commit", "2006 gone away", "info", "lost-connection"),
        ("commit", "2013 socket timeout", "info", "timeout"),
        ("commit", "client-side timeout", "info", "timeout"),
        ("commit", "1062 duplicate key", "info", "server:1062"),
        ("commit", "0 interface error (closed)", "info", "client:0"),
        ("commit", "already closed", "info", "Error"),
        ("execute", "2013 socket timeout", "fail", "2013"),
        ("execute", "client-side timeout", "fail", "no-code"),
    ],
)
def test_every_outcome_is_classified_from_its_recorded_error(
    stage: str, error: str, type_: str, klass: str
) -> None:
    from harness.checkers.errors import error_class, error_code_of

    exc = make(error)
    outcome = transact(FakeConnection(raises={stage: exc}), add_counter)
    assert outcome.type == type_
    assert error_class(outcome.type, outcome.error) == klass
    if klass.isdigit():
        assert error_code_of(outcome.error) == outcome.code == int(klass)


def test_refusals_and_give_ups_have_their_own_classes() -> None:
    from harness.checkers.errors import error_class

    assert error_class("fail", "refused: insufficient funds: account 0 has 5 < 10") == "refused"
    assert error_class("fail", "refused: compare-and-set miss: account 1 no longer holds 4") == "cas-miss"
    assert (
        error_class("fail", "gave up after 10 retries: refused: compare-and-set miss: x")
        == "gave-up:cas-miss"
    )
    assert (
        error_class("fail", "gave up after 10 retries: OperationalError: (1213, 'Deadlock')")
        == "gave-up:1213"
    )
    assert error_class("info", None) == "no-error"
