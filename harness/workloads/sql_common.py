"""What the SQL workloads share: connections, error classification, the client loop, transactions.

* ``SqlWorkload``: one pymysql connection per client thread to the node ``node_for(worker)`` through the
  run's proxy (``system.endpoint``), opened (and re-opened after an error) as a ``connect`` op. Subclasses
  say which op to run next (``next_op``) and how (``execute``, returning an ``Outcome``); the loop records it
  and retires the process after ``info``.
* ``transact``: ``BEGIN`` … ``COMMIT`` with Jepsen's outcome rules, as Jepsen's Galera and MySQL clients
  apply them:

  - every error *before* the COMMIT is sent is ``fail``: the transaction is rolled back (by us, or by the
    server when it sees the connection drop), so it certainly did not happen. A lock wait timeout (1205)
    rolls back only the statement when ``innodb_rollback_on_timeout`` is off, so the explicit ROLLBACK is
    what makes it definite; when that ROLLBACK is not acknowledged the connection is dropped (the server
    then rolls back), never reused with a transaction possibly still open;
  - an error *from* the COMMIT is a **definite abort**, ``fail``, when the server answered with a code in
    ``DEFINITE_FAILURES``: 1213 (deadlock, and Galera's certification failure: the writeset lost
    certification, which every node decides alike, so it committed nowhere), 1205 (lock wait timeout,
    rolled back as above), 1047 / 1180 (the node is not in a Primary component, or the commit failed in the
    storage engine: refused before applying), 1290 / 1792 (read-only);
  - any other end of a COMMIT is **indeterminate**, ``info``: the connection lost during the COMMIT
    (2013, 2006, 2055), a client-side timeout, an unexpected server code, any exception not from the
    server. The transaction may have committed.

  The outcome keeps the exception (``Outcome.exc``, not recorded) and the op's error text starts with it,
  ``"OperationalError: (1213, 'Deadlock found …')"``, so the code is in the history
  (``harness.checkers.errors`` classifies and counts them).
* ``read_only``: a query that changes nothing; any error is ``fail``.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from harness.errors import InfraError
from harness.model.history import HistoryWriter, Op
from harness.model.scenario import WorkloadSpec
from harness.runtime.run import Node
from harness.systems.base import ClusterSystem
from harness.systems.mysql import DATABASE
from harness.workloads.base import Workload

# Server errors that mean "rejected, certainly not applied", for a statement and for a COMMIT alike (Galera
# non-Primary, deadlock / certification failure, lock wait timeout, error during COMMIT, read-only).
# Anything else from a COMMIT (or an autocommit statement) is indeterminate.
DEFINITE_FAILURES = {1047, 1213, 1205, 1290, 1792, 1180}
LOST_CONNECTION = {2013, 2006, 2055}  # lost during the query, gone away, lost at the handshake: indeterminate
NOT_CONNECTED = {2003, 2002, 1040, 1045, 1129}
CLIENT_ERRORS_FROM = 2000  # MySQL codes from 2000 up are the client library's (lost connection, timeout)
ISOLATION_SQL = {
    "read-uncommitted": "READ UNCOMMITTED",
    "read-committed": "READ COMMITTED",
    "repeatable-read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}
CAUSAL_READS = "SET SESSION wsrep_sync_wait = 1"  # a read first waits for every write committed before it

OpType = Literal["ok", "fail", "info"]


class Refused(Exception):
    """The transaction refused itself (a business rule, e.g. insufficient funds): rolled back, ``fail``."""


@dataclass(frozen=True)
class Outcome:
    """How an op ended: its completion ``type``, the ``value`` of an ``ok`` (None keeps the invoke's), the
    ``error`` text of a ``fail``/``info``, and whether the connection may be used again."""

    type: OpType
    value: Any = None
    error: str | None = None
    usable: bool = True
    exc: BaseException | None = field(default=None, compare=False, repr=False)  # what ended it, if any

    @property
    def code(self) -> int | None:
        """The MySQL error number of ``exc`` (None: no error, or not a MySQL one)."""
        return None if self.exc is None else error_code(self.exc)


def error_code(exc: BaseException) -> int | None:
    """The MySQL error number of a pymysql error, else None."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def close_quietly(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def is_server_error(exc: BaseException) -> bool:
    """The server answered with an error (the session is still there), as opposed to a client-side one."""
    code = error_code(exc)
    return code is not None and 0 < code < CLIENT_ERRORS_FROM


def is_definite(exc: BaseException) -> bool:
    """The server refused with a code that means "certainly not applied" (``DEFINITE_FAILURES``)."""
    return is_server_error(exc) and error_code(exc) in DEFINITE_FAILURES


ROLLBACK_FAILED = "; ROLLBACK failed, session dropped: "  # the tail of an op's error when it was


def _rollback(conn: Any, exc: BaseException) -> tuple[bool, str]:
    """Roll back after ``exc``: (is the connection still fit for use, what to add to the op's error). Fit
    only when the ROLLBACK was acknowledged: a refused ROLLBACK may leave the transaction open (1205 rolls
    back only the statement), and the next BEGIN would commit it implicitly; dropping the connection makes
    the server roll it back. The op's error then says so (``ROLLBACK_FAILED``), so that every reconnect
    has a recorded cause."""
    if not isinstance(exc, Refused) and not is_server_error(exc):
        return False, ""  # the connection is broken or timed out: dropping it rolls the transaction back
    try:
        conn.rollback()
    except Exception as rollback_error:
        return False, ROLLBACK_FAILED + describe(rollback_error)
    return True, ""


def transact(conn: Any, body: Callable[[Any], Any]) -> Outcome:
    """Run ``body(cursor)`` between BEGIN and COMMIT; ``ok`` with its result once committed (see the module
    docstring for ``fail`` and ``info``). ``body`` raises ``Refused`` to roll back on purpose."""
    committing = False
    try:
        conn.begin()
        with conn.cursor() as cur:
            value = body(cur)
        committing = True
        conn.commit()
    except Exception as exc:
        usable, dropped = _rollback(conn, exc)
        if committing and not is_definite(exc):  # it may have committed
            return Outcome("info", error=describe(exc) + dropped, usable=usable, exc=exc)
        reason = f"refused: {exc}" if isinstance(exc, Refused) else describe(exc)
        return Outcome("fail", error=reason + dropped, usable=usable, exc=exc)
    return Outcome("ok", value)


def read_only(conn: Any, body: Callable[[Any], Any], *, transaction: bool = False) -> Outcome:
    """Run ``body(cursor)`` (in a transaction when asked); a read changes nothing, so an error is ``fail``."""
    if transaction:
        outcome = transact(conn, body)
        if outcome.type == "info":
            return Outcome("fail", error=outcome.error, usable=outcome.usable, exc=outcome.exc)
        return outcome
    try:
        with conn.cursor() as cur:
            return Outcome("ok", body(cur))
    except Exception as exc:
        return Outcome("fail", error=describe(exc), usable=is_server_error(exc), exc=exc)


def record(history: HistoryWriter, op: Op, outcome: Outcome) -> None:
    if outcome.type != "ok":
        if outcome.value is None:
            history.complete(op, outcome.type, error=outcome.error)
        else:  # e.g. a transfer that gave up, with its retries
            history.complete(op, outcome.type, outcome.value, error=outcome.error)
    elif outcome.value is None:
        history.ok(op)
    else:
        history.ok(op, outcome.value)


class SqlWorkload(Workload):
    """A workload of SQL clients against Galera (see the module docstring)."""

    table: ClassVar[str]

    def __init__(self, system: ClusterSystem, spec: WorkloadSpec, rng: random.Random) -> None:
        super().__init__(system, spec, rng)
        self.seed = rng.getrandbits(64)  # each worker draws from its own Random(seed + worker)

    # -- what a subclass says
    @abstractmethod
    def next_op(self, rng: random.Random) -> tuple[str, Any]:
        """The next op's ``f`` and invoke value."""

    @abstractmethod
    def execute(self, conn: Any, f: str, value: Any, node: Node) -> Outcome:
        """Run one op on ``conn`` (a connection to ``node``); must not raise."""

    def session_sql(self) -> Sequence[str]:
        """Statements run on every new client connection (isolation level, causal reads)."""
        return ()

    # -- connections
    def connect(self, node: Node, *, session: Sequence[str] = ()) -> Any:
        import pymysql

        host, port = self.system.endpoint(node)
        t = self.spec.timeout
        user, password = self.system.client_credentials()
        conn = pymysql.connect(host=host, port=port, user=user, password=password, database=DATABASE,
                               autocommit=True, connect_timeout=t, read_timeout=t, write_timeout=t)  # fmt: skip
        try:
            with conn.cursor() as cur:
                for statement in session:
                    cur.execute(statement)
        except Exception:
            close_quietly(conn)
            raise
        return conn

    def reconnect(self, process: int, node: Node, history: HistoryWriter, stop: threading.Event) -> Any:
        """Open the client's connection as a ``connect`` op; None (after a short back-off) when it failed."""
        op = history.invoke(process, "connect", None, node.name)
        try:
            conn = self.connect(node, session=self.session_sql())
        except Exception as exc:
            history.fail(op, describe(exc))
            stop.wait(min(0.5, self.spec.timeout))
            return None
        history.ok(op)
        return conn

    # -- the client loop
    def client(self, worker: int, history: HistoryWriter, stop: threading.Event) -> None:
        node = self.system.data_nodes[self.node_for(worker)]
        rng = random.Random(self.seed + worker)
        process = worker
        conn = None
        next_at = time.monotonic()
        while not stop.is_set():
            next_at = self.pace(stop, next_at)
            if stop.is_set():
                break
            if conn is None:
                conn = self.reconnect(process, node, history, stop)
                if conn is None:
                    continue
            f, value = self.next_op(rng)
            op = history.invoke(process, f, value, node.name)
            outcome = self.execute(conn, f, value, node)
            record(history, op, outcome)
            if outcome.type == "info":
                process = history.next_process(process)
            if not outcome.usable:
                close_quietly(conn)
                conn = None
        close_quietly(conn)

    # -- after heal
    def read_every_node(
        self, history: HistoryWriter, f: str, body: Callable[[Any], Any], *, causal: bool = True
    ) -> None:
        """One ``f`` op per node, in node order: ``ok`` with ``body(cursor)``, ``fail`` when it could not
        read. ``causal``: the node first applies every write committed in the cluster before it reads."""
        process = history.new_process()
        for node in self.system.data_nodes:
            op = history.invoke(process, f, None, node.name)
            try:
                conn = self.connect(node, session=(CAUSAL_READS,) if causal else ())
                try:
                    with conn.cursor() as cur:
                        value = body(cur)
                finally:
                    close_quietly(conn)
                history.ok(op, value)
            except Exception as exc:
                history.fail(op, describe(exc))
                process = history.new_process()

    def reset_table(self, create: str, rows: Sequence[tuple[Any, ...]], insert: str) -> None:
        """Create the workload's table if needed, replace its rows, and wait (causally) until every node
        holds exactly them, so no client can see the table half-filled."""
        conn = self.connect(self.system.data_nodes[0])
        try:
            with conn.cursor() as cur:
                cur.execute(create)
                cur.execute(f"TRUNCATE TABLE {self.table}")
                cur.executemany(insert, list(rows))
        finally:
            close_quietly(conn)
        expected = sorted(tuple(r) for r in rows)
        for node in self.system.data_nodes:
            conn = self.connect(node, session=(CAUSAL_READS,))
            try:
                with conn.cursor() as cur:
                    cur.execute(f"SELECT * FROM {self.table}")
                    found = sorted(tuple(r) for r in cur.fetchall())
            finally:
                close_quietly(conn)
            if found != expected:
                raise InfraError(f"{node.name}: {self.table} holds {len(found)} row(s) after setup, "
                                 f"expected {len(expected)}")  # fmt: skip

    def checksums(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per node: row count and CHECKSUM TABLE of the workload's table (for the divergence checker)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for node in self.system.data_nodes:
            try:
                conn = self.connect(node)
                with conn.cursor() as cur:
                    cur.execute(f"SELECT COUNT(*) FROM {self.table}")
                    rows = int(cur.fetchone()[0])
                    cur.execute(f"CHECKSUM TABLE {self.table}")
                    checksum = str(cur.fetchone()[1])
                conn.close()
                out[node.name] = {self.table: {"rows": rows, "checksum": checksum}}
            except Exception:
                continue
        return out
