"""sql-set: unique-id inserts on any node (through its proxy), then a final read of every node.

Feeds the ``set`` checker (lost = acknowledged and missing on a node), ``availability`` and, with the
final per-node checksums, ``divergence``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, ClassVar

from harness.model.history import HistoryWriter
from harness.runtime.cluster import Node
from harness.systems.galera import DATABASE, PASSWORD, USER
from harness.workloads.base import Workload

TABLE = "hh_set"
# Server errors that mean "rejected, certainly not applied" (Galera non-Primary, deadlock / certification
# failure, lock wait timeout, read-only). Anything else after the statement was sent is indeterminate.
DEFINITE_FAILURES = {1047, 1213, 1205, 1290, 1792, 1180}
NOT_CONNECTED = {2003, 2002, 1040, 1045, 1129}


class SqlSet(Workload):
    name = "sql-set"
    checkers: ClassVar[tuple[str, ...]] = ("set", "availability", "divergence")
    systems: ClassVar[tuple[str, ...]] = ("galera",)

    def connect(self, node: Node) -> Any:
        import pymysql

        host, port = self.system.endpoint(node)
        t = self.spec.timeout
        return pymysql.connect(host=host, port=port, user=USER, password=PASSWORD, database=DATABASE,
                               autocommit=True, connect_timeout=t, read_timeout=t, write_timeout=t)  # fmt: skip

    def setup(self) -> None:
        conn = self.connect(self.system.run.nodes[0])
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, node VARCHAR(16))")
            cur.execute(f"TRUNCATE TABLE {TABLE}")
        conn.close()

    def client(self, worker: int, history: HistoryWriter, stop: threading.Event) -> None:
        import pymysql

        node = self.system.run.nodes[self.node_for(worker)]
        process = worker
        conn = None
        next_at = time.monotonic()
        while not stop.is_set():
            next_at = self.pace(stop, next_at)
            if stop.is_set():
                break
            if conn is None:
                op = history.invoke(process, "connect", None, node.name)
                try:
                    conn = self.connect(node)
                    history.ok(op)
                except Exception as exc:
                    history.fail(op, _err(exc))
                    stop.wait(min(0.5, self.spec.timeout))
                    continue
            ident = self.next_id()
            op = history.invoke(process, "add", ident, node.name)
            try:
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {TABLE} (id, node) VALUES (%s, %s)", (ident, node.name))
                history.ok(op)
            except pymysql.MySQLError as exc:
                code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
                if code in DEFINITE_FAILURES:
                    history.fail(op, _err(exc))
                else:
                    history.info(op, _err(exc))
                    process = history.next_process(process)
                    conn = _close(conn)
            except Exception as exc:
                history.info(op, _err(exc))
                process = history.next_process(process)
                conn = _close(conn)
        _close(conn)

    def final_read(self, history: HistoryWriter) -> None:
        process = history.new_process()
        for node in self.system.run.nodes:
            op = history.invoke(process, "read", None, node.name)
            try:
                conn = self.connect(node)
                with conn.cursor() as cur:
                    cur.execute(f"SELECT id FROM {TABLE}")
                    ids = sorted(int(row[0]) for row in cur.fetchall())
                conn.close()
                history.ok(op, ids)
            except Exception as exc:
                history.fail(op, _err(exc))
                process = history.new_process()

    def checksums(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per node: row count and CHECKSUM TABLE of the workload's table (for the divergence checker)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for node in self.system.run.nodes:
            try:
                conn = self.connect(node)
                with conn.cursor() as cur:
                    cur.execute(f"SELECT COUNT(*) FROM {TABLE}")
                    rows = int(cur.fetchone()[0])
                    cur.execute(f"CHECKSUM TABLE {TABLE}")
                    checksum = str(cur.fetchone()[1])
                conn.close()
                out[node.name] = {TABLE: {"rows": rows, "checksum": checksum}}
            except Exception:
                continue
        return out


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def _close(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()
