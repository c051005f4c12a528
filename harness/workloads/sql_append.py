"""sql-append: list-append transactions (Jepsen's ``:txn`` ops) for the ``elle`` checker.

Each op is one transaction of 1..``spec.max_txn_len`` micro-ops over ``spec.keys`` active keys, each either
an append of a unique value (``["append", k, v]``) or a read (``["r", k, null]``, completed with the whole
list ``["r", k, [1, 2, 3]]``). A key is retired after ``spec.key_rotation`` appends and a fresh key takes its
place, so lists stay short and the checker sees many version orders. Storage: ``append_lists (k INT PRIMARY
KEY, vals TEXT NOT NULL)``, an append ``INSERT … ON DUPLICATE KEY UPDATE vals = CONCAT(vals, ',', …)``, a
read ``SELECT vals … WHERE k = …`` (the key's whole version order, comma-separated).

Every txn first runs ``SET TRANSACTION ISOLATION LEVEL`` (``spec.isolation``), then BEGIN … COMMIT with
the outcome rules of ``harness.workloads.sql_common.transact``: an error before COMMIT is ``fail``, one from
COMMIT ``info``. With ``spec.causal_reads`` sessions wait for every earlier commit before reading. After
heal, ``final_read`` reads every key on every node as one more ``txn`` per node. Feeds ``elle`` and
``availability`` (with ``write_fs: [txn]``).
"""

from __future__ import annotations

import random
import threading
from typing import Any, ClassVar

from harness.model.history import HistoryWriter
from harness.model.scenario import WorkloadSpec
from harness.runtime.run import Node
from harness.systems.base import ClusterSystem
from harness.workloads.sql_common import (
    CAUSAL_READS,
    ISOLATION_SQL,
    Outcome,
    SqlWorkload,
    describe,
    is_server_error,
    transact,
)

__all__ = ["APPEND_SQL", "READ_SQL", "TABLE", "SqlAppend", "parse_vals"]

TABLE = "append_lists"
APPEND_SQL = (f"INSERT INTO {TABLE} (k, vals) VALUES (%s, %s) "
              "ON DUPLICATE KEY UPDATE vals = CONCAT(vals, ',', VALUES(vals))")  # fmt: skip
READ_SQL = f"SELECT vals FROM {TABLE} WHERE k = %s"
READ_SHARE = 0.5  # of the micro-ops, reads; the rest appends


def parse_vals(text: Any) -> list[int]:
    """A stored list ("1,2,3", or bytes) as ints; [] for a missing row."""
    if text is None:
        return []
    if isinstance(text, bytes | bytearray):
        text = text.decode()
    return [int(v) for v in str(text).split(",") if v]


class SqlAppend(SqlWorkload):
    name = "sql-append"
    table: ClassVar[str] = TABLE

    def __init__(self, system: ClusterSystem, spec: WorkloadSpec, rng: random.Random) -> None:
        super().__init__(system, spec, rng)
        self._keys_lock = threading.Lock()
        self._active = list(range(spec.keys))  # the keys txns pick from
        self._appends = dict.fromkeys(self._active, 0)  # appends handed out per active key
        self._next_key = spec.keys

    def session_sql(self) -> tuple[str, ...]:
        return (CAUSAL_READS,) if self.spec.causal_reads else ()

    def setup(self) -> None:
        self.reset_table(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (k INT PRIMARY KEY, vals TEXT NOT NULL)",
            [],
            f"INSERT INTO {TABLE} (k, vals) VALUES (%s, %s)",
        )

    def _append_to(self, slot: int) -> tuple[int, int]:
        """(key, unique value) for an append to the key in ``slot``; retires the key after
        ``spec.key_rotation`` appends. Caller holds the lock."""
        k = self._active[slot]
        self._appends[k] += 1
        if self._appends[k] >= self.spec.key_rotation:
            del self._appends[k]
            self._active[slot] = self._next_key
            self._appends[self._next_key] = 0
            self._next_key += 1
        return k, self.next_id()

    def next_op(self, rng: random.Random) -> tuple[str, Any]:
        mops: list[list[Any]] = []
        with self._keys_lock:
            for _ in range(rng.randint(1, self.spec.max_txn_len)):
                slot = rng.randrange(len(self._active))
                if rng.random() < READ_SHARE:
                    mops.append(["r", self._active[slot], None])
                else:
                    k, v = self._append_to(slot)
                    mops.append(["append", k, v])
        return "txn", mops

    def execute(self, conn: Any, f: str, value: Any, node: Node) -> Outcome:
        try:
            with conn.cursor() as cur:
                cur.execute(f"SET TRANSACTION ISOLATION LEVEL {ISOLATION_SQL[self.spec.isolation]}")
        except Exception as exc:  # nothing was sent of the txn: it certainly did not happen
            return Outcome("fail", error=describe(exc), usable=is_server_error(exc))
        return transact(conn, lambda cur: run_mops(cur, value))

    def final_read(self, history: HistoryWriter) -> None:
        self.read_every_node(history, "txn", _read_all)


def run_mops(cur: Any, mops: list[list[Any]]) -> list[list[Any]]:
    """Run the micro-ops on ``cur`` (inside a transaction); the completed micro-ops."""
    done: list[list[Any]] = []
    for f, k, v in mops:
        if f == "append":
            cur.execute(APPEND_SQL, (k, str(v)))
            done.append(["append", k, v])
        else:
            cur.execute(READ_SQL, (k,))
            row = cur.fetchone()
            done.append(["r", k, parse_vals(None if row is None else row[0])])
    return done


def _read_all(cur: Any) -> list[list[Any]]:
    cur.execute(f"SELECT k, vals FROM {TABLE} ORDER BY k")
    return [["r", int(k), parse_vals(vals)] for k, vals in cur.fetchall()]
