"""sql-set: unique-id inserts on any node (through its proxy), then a final read of every node.

Feeds the ``set`` checker (lost = acknowledged and missing on a node), ``availability`` and, with the
final per-node checksums, ``divergence``.

An insert is one autocommit statement: a server error in ``DEFINITE_FAILURES`` is ``fail`` (the connection
is kept), any other error ``info`` (the connection is dropped and the process retired).
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from harness.model.history import HistoryWriter
from harness.runtime.run import Node
from harness.workloads.sql_common import (
    DEFINITE_FAILURES,
    NOT_CONNECTED,
    Outcome,
    SqlWorkload,
    describe,
    error_code,
)

__all__ = ["DEFINITE_FAILURES", "NOT_CONNECTED", "TABLE", "SqlSet"]

TABLE = "hh_set"


class SqlSet(SqlWorkload):
    name = "sql-set"
    table: ClassVar[str] = TABLE

    def setup(self) -> None:
        conn = self.connect(self.system.run.nodes[0])
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, node VARCHAR(16))")
            cur.execute(f"TRUNCATE TABLE {TABLE}")
        conn.close()

    def next_op(self, rng: random.Random) -> tuple[str, Any]:
        return "add", self.next_id()

    def execute(self, conn: Any, f: str, value: Any, node: Node) -> Outcome:
        import pymysql

        try:
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO {TABLE} (id, node) VALUES (%s, %s)", (value, node.name))
        except pymysql.MySQLError as exc:
            if error_code(exc) in DEFINITE_FAILURES:
                return Outcome("fail", error=describe(exc))
            return Outcome("info", error=describe(exc), usable=False)
        except Exception as exc:
            return Outcome("info", error=describe(exc), usable=False)
        return Outcome("ok")

    def final_read(self, history: HistoryWriter) -> None:
        def ids(cur: Any) -> list[int]:
            cur.execute(f"SELECT id FROM {TABLE}")
            return sorted(int(row[0]) for row in cur.fetchall())

        with self.system.node_endpoints():  # each node itself, not a front such as MMM's writer frontend
            self.read_every_node(history, "read", ids, causal=False)

    def checksums(self) -> dict[str, dict[str, dict[str, Any]]]:
        with self.system.node_endpoints():
            return super().checksums()
