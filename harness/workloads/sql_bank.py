"""sql-bank: transfers between accounts and whole-bank reads, in transactions; the total must never move.

``spec.accounts`` accounts (ids 0..n-1) each open with ``spec.balance``, so the total is known. Every
session runs at ``spec.isolation``. A client, on its node, either

* transfers (``transfer``, value ``{"from": a, "to": b, "amount": n}``, a != b): BEGIN; ``SELECT … FOR
  UPDATE`` of both rows; two UPDATEs; COMMIT. A transfer that would overdraw ``from`` is refused (rolled
  back, ``fail`` with error ``refused: insufficient funds …``) unless ``spec.allow_negative``;
* or reads every balance in one transaction (``read``, ``ok`` value ``{"<account>": balance}``).

Outcomes follow ``harness.workloads.sql_common.transact``: an error before COMMIT is ``fail``, an error
from COMMIT (Galera deadlock / certification failure, non-Primary, lost connection, timeout) is ``info``.
A read that errs is ``fail`` (it changed nothing). After heal, ``final_read`` reads every node's balances
(causally) as one more ``read`` per node. Feeds the ``bank`` checker (the shapes in
``harness.checkers.bank``) and ``availability`` (transfers are its writes).
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

__all__ = ["TABLE", "SqlBank"]

TABLE = "hh_bank"
READ_SHARE = 0.2  # of the ops, whole-bank reads; the rest transfers


class SqlBank(SqlWorkload):
    name = "sql-bank"
    table: ClassVar[str] = TABLE

    @property
    def total(self) -> int:
        return self.spec.accounts * self.spec.balance

    def session_sql(self) -> tuple[str, ...]:
        isolation = f"SET SESSION TRANSACTION ISOLATION LEVEL {ISOLATION_SQL[self.spec.isolation]}"
        return (isolation, CAUSAL_READS) if self.spec.causal_reads else (isolation,)

    def setup(self) -> None:
        self.reset_table(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id INT PRIMARY KEY, balance BIGINT NOT NULL)",
            [(a, self.spec.balance) for a in range(self.spec.accounts)],
            f"INSERT INTO {TABLE} (id, balance) VALUES (%s, %s)",
        )

    def next_op(self, rng: random.Random) -> tuple[str, Any]:
        if rng.random() < READ_SHARE:
            return "read", None
        src, dst = rng.sample(range(self.spec.accounts), 2)
        amount = rng.randint(1, max(1, self.spec.balance // 4))
        return "transfer", {"from": src, "to": dst, "amount": amount}

    def execute(self, conn: Any, f: str, value: Any, node: Node) -> Outcome:
        if f == "read":
            return read_only(conn, _balances, transaction=True)
        return transact(conn, lambda cur: self._transfer(cur, value["from"], value["to"], value["amount"]))

    def _transfer(self, cur: Any, src: int, dst: int, amount: int) -> None:
        cur.execute(
            f"SELECT id, balance FROM {TABLE} WHERE id IN (%s, %s) ORDER BY id FOR UPDATE", (src, dst)
        )
        balances = {int(k): int(v) for k, v in cur.fetchall()}
        if len(balances) != 2:
            raise Refused(f"account(s) missing: found {sorted(balances)} of {sorted({src, dst})}")
        if balances[src] < amount and not self.spec.allow_negative:
            raise Refused(f"insufficient funds: account {src} has {balances[src]} < {amount}")
        cur.execute(f"UPDATE {TABLE} SET balance = balance - %s WHERE id = %s", (amount, src))
        cur.execute(f"UPDATE {TABLE} SET balance = balance + %s WHERE id = %s", (amount, dst))

    def final_read(self, history: HistoryWriter) -> None:
        self.read_every_node(history, "read", _balances)


def _balances(cur: Any) -> dict[str, int]:
    cur.execute(f"SELECT id, balance FROM {TABLE} ORDER BY id")
    return {str(k): int(v) for k, v in cur.fetchall()}
