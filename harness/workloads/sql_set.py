"""sql-set: unique-id inserts on any node (through its proxy), reads of the whole set during the run, then
a final read of every node.

Feeds the ``set`` checker (lost = acknowledged and missing on a node), ``set-full`` (when each id became
visible on each node, stale reads, ids seen and then gone), ``availability`` and, with the final per-node
checksums, ``divergence``.

A client, on its node, either

* adds (``add``, value: a fresh id): one autocommit INSERT through the system's client endpoint (MMM: the
  writer frontend). A server error in ``DEFINITE_FAILURES`` is ``fail`` (the connection is kept), any
  other error ``info`` (the connection is dropped and the process retired);
* or, with probability ``spec.read_share``, scans (``scan``, ``ok`` value: the sorted ids) the whole set on
  the node itself (its own proxied link even where writes enter through a front, so a lagging replica
  shows as one), on a second connection opened inside the op; the op's ``node`` says which node was read.
  A scan changes nothing: any error is ``fail``. Its session does not wait for causality (no
  ``wsrep_sync_wait``): a replica serves what it has applied.

Scans put the whole set in the history each time: ``read_share`` × rate × duration × set size ids.
"""

from __future__ import annotations

import random
import threading
from typing import Any, ClassVar

from harness.model.history import HistoryWriter
from harness.runtime.run import Node
from harness.workloads.sql_common import (
    DEFINITE_FAILURES,
    NOT_CONNECTED,
    Outcome,
    SqlWorkload,
    close_quietly,
    describe,
    error_code,
    is_server_error,
)

__all__ = ["DEFINITE_FAILURES", "NOT_CONNECTED", "SCAN", "TABLE", "SqlSet"]

TABLE = "hh_set"
SCAN = "scan"  # the f of a read during the run (the final reads are ``read``)


class SqlSet(SqlWorkload):
    name = "sql-set"
    table: ClassVar[str] = TABLE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scan_conns = threading.local()  # each client thread's connection to its node itself

    def setup(self) -> None:
        conn = self.connect(self.system.data_nodes[0])
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, node VARCHAR(16))")
            cur.execute(f"TRUNCATE TABLE {TABLE}")
        conn.close()

    def next_op(self, rng: random.Random) -> tuple[str, Any]:
        if self.spec.read_share and rng.random() < self.spec.read_share:
            return SCAN, None
        return "add", self.next_id()

    def execute(self, conn: Any, f: str, value: Any, node: Node) -> Outcome:
        if f == SCAN:
            return self.scan(node)
        import pymysql

        try:
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO {TABLE} (id, node) VALUES (%s, %s)", (value, node.name))
        except pymysql.MySQLError as exc:
            if error_code(exc) in DEFINITE_FAILURES:
                return Outcome("fail", error=describe(exc), exc=exc)
            return Outcome("info", error=describe(exc), usable=False, exc=exc)
        except Exception as exc:
            return Outcome("info", error=describe(exc), usable=False, exc=exc)
        return Outcome("ok")

    def scan(self, node: Node) -> Outcome:
        """Read every id on ``node`` itself; the scan connection is kept for the thread's next scan, and
        dropped after any error but a server's answer. Never affects the insert connection."""
        conn = getattr(self._scan_conns, "conn", None)
        try:
            if conn is None:
                with self.system.node_endpoints():
                    conn = self.connect(node)
                self._scan_conns.conn = conn
            with conn.cursor() as cur:
                cur.execute(f"SELECT id FROM {TABLE}")
                ids = sorted(int(row[0]) for row in cur.fetchall())
        except Exception as exc:
            if conn is not None and not is_server_error(exc):
                close_quietly(conn)
                self._scan_conns.conn = None
            return Outcome("fail", error=describe(exc), exc=exc)
        return Outcome("ok", ids)

    def client(self, worker: int, history: HistoryWriter, stop: threading.Event) -> None:
        try:
            super().client(worker, history, stop)
        finally:
            close_quietly(getattr(self._scan_conns, "conn", None))
            self._scan_conns.conn = None

    def final_read(self, history: HistoryWriter) -> None:
        def ids(cur: Any) -> list[int]:
            cur.execute(f"SELECT id FROM {TABLE}")
            return sorted(int(row[0]) for row in cur.fetchall())

        with self.system.node_endpoints():  # each node itself, not a front such as MMM's writer frontend
            self.read_every_node(history, "read", ids, causal=False)

    def checksums(self) -> dict[str, dict[str, dict[str, Any]]]:
        with self.system.node_endpoints():
            return super().checksums()
