"""sql-register: counters (``spec.keys`` rows, starting at 0) incremented and read on any node.

A client, on its node, either

* adds (``add``, value ``{"key": k, "delta": 1}``): BEGIN; ``UPDATE … SET v = v + 1 WHERE k = …``; COMMIT;
* or reads every counter in one statement (``read``, ``ok`` value ``{"<key>": v}``).

With ``spec.causal_reads`` (the default) a read first waits until its node has applied every write
committed in the cluster before it (``wsrep_sync_wait``), so each read must see at least every add
acknowledged before it began: a lower value is a stale read. Without it Galera may serve stale reads by
design. Outcomes follow ``harness.workloads.sql_common.transact`` (error before COMMIT ``fail``, from COMMIT
``info``); a read that errs is ``fail``. After heal, ``final_read`` reads every node's counters (causally).
Feeds the ``counter`` checker (lost updates, stale reads) and ``availability`` (adds are its writes).
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from harness.model.history import HistoryWriter
from harness.runtime.run import Node
from harness.workloads.sql_common import (
    CAUSAL_READS,
    ISOLATION_SQL,
    Outcome,
    Refused,
    SqlWorkload,
    read_only,
    transact,
)

__all__ = ["TABLE", "SqlRegister"]

TABLE = "hh_register"
READ_SHARE = 0.5  # of the ops, reads; the rest adds


class SqlRegister(SqlWorkload):
    name = "sql-register"
    table: ClassVar[str] = TABLE

    def session_sql(self) -> tuple[str, ...]:
        isolation = f"SET SESSION TRANSACTION ISOLATION LEVEL {ISOLATION_SQL[self.spec.isolation]}"
        return (isolation, CAUSAL_READS) if self.spec.causal_reads else (isolation,)

    def setup(self) -> None:
        self.reset_table(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (k INT PRIMARY KEY, v BIGINT NOT NULL)",
            [(k, 0) for k in range(self.spec.keys)],
            f"INSERT INTO {TABLE} (k, v) VALUES (%s, %s)",
        )

    def next_op(self, rng: random.Random) -> tuple[str, Any]:
        if rng.random() < READ_SHARE:
            return "read", None
        return "add", {"key": rng.randrange(self.spec.keys), "delta": 1}

    def execute(self, conn: Any, f: str, value: Any, node: Node) -> Outcome:
        if f == "read":
            return read_only(conn, _values)
        return transact(conn, lambda cur: _add(cur, value["key"], value["delta"]))

    def final_read(self, history: HistoryWriter) -> None:
        self.read_every_node(history, "read", _values)


def _add(cur: Any, key: int, delta: int) -> None:
    if cur.execute(f"UPDATE {TABLE} SET v = v + %s WHERE k = %s", (delta, key)) != 1:
        raise Refused(f"no counter {key}")


def _values(cur: Any) -> dict[str, int]:
    cur.execute(f"SELECT k, v FROM {TABLE} ORDER BY k")
    return {str(k): int(v) for k, v in cur.fetchall()}
