"""sql-bank: transfers between accounts and whole-bank reads, in transactions; the total must never move.

``spec.accounts`` accounts (ids 0..n-1) each open with ``spec.balance``, so the total is known. Every
session runs at ``spec.isolation``. A client, on its node, either

* transfers (``transfer``, value ``{"from": a, "to": b, "amount": n}``, a != b) in one transaction, the
  way ``spec.locking`` says:

  - ``for-update`` (the default): ``SELECT … FOR UPDATE`` of both rows, then two relative UPDATEs
    (``balance = balance ∓ n``); the row locks serialise transfers on a node, Galera certification across
    nodes;
  - ``none``: a plain ``SELECT`` of both rows, then two absolute UPDATEs (``balance = <read ∓ n>``): the
    read-modify-write many services do. Under REPEATABLE READ two such transactions on one node may read
    the same balance and the later write overwrites the earlier one (a lost update: InnoDB does not
    refuse it, the UPDATE just waits for the row lock); across Galera nodes certification refuses the
    loser only when both writesets are in flight at once (1213);
  - ``compare-and-set``: a plain ``SELECT``, then ``UPDATE … SET balance = <new> WHERE id = ? AND balance =
    <read>`` for each row; an UPDATE that matches no row (someone else moved the balance) rolls back and
    the transfer retries, as does a deadlock / certification failure (1213). After ``MAX_RETRIES``
    retries it is ``fail`` (``gave up after …``). Its completion value adds ``retries`` (how many
    attempts were retried) and ``retried_on`` (``{"cas": n, "1213": m}``);

  a transfer that would overdraw ``from`` is refused (rolled back, ``fail`` with error ``refused:
  insufficient funds …``) unless ``spec.allow_negative``;
* or reads every balance in one transaction (``read``, ``ok`` value ``{"<account>": balance}``).

Outcomes follow ``harness.workloads.sql_common.transact``: an error before COMMIT is ``fail``; a definite
abort from COMMIT (deadlock / certification failure 1213, lock wait timeout, non-Primary) is ``fail``; an
ambiguous end of the COMMIT (lost connection, timeout) is ``info``. A read that errs is ``fail`` (it
changed nothing). After heal, ``final_read`` reads every node's balances (causally) as one more ``read``
per node. Feeds the ``bank`` checker (the shapes in ``harness.checkers.bank``) and ``availability``
(transfers are its writes).
"""

from __future__ import annotations

import dataclasses
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

__all__ = ["MAX_RETRIES", "TABLE", "CasMiss", "SqlBank"]

TABLE = "hh_bank"
READ_SHARE = 0.2  # of the ops, whole-bank reads; the rest transfers
MAX_RETRIES = 10  # compare-and-set: retries of one transfer before it gives up
RETRY_CODES = {1213}  # deadlock / certification failure: the attempt certainly did not commit


class CasMiss(Refused):
    """A compare-and-set UPDATE matched no row: the balance moved since it was read (rolled back, retried)."""


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
        src, dst, amount = value["from"], value["to"], value["amount"]
        if self.spec.locking == "compare-and-set":
            return self._cas_transfer(conn, value)
        if self.spec.locking == "none":
            return transact(conn, lambda cur: self._blind_transfer(cur, src, dst, amount))
        return transact(conn, lambda cur: self._transfer(cur, src, dst, amount))

    def _check(self, balances: dict[int, int], src: int, dst: int, amount: int) -> None:
        if len(balances) != 2:
            raise Refused(f"account(s) missing: found {sorted(balances)} of {sorted({src, dst})}")
        if balances[src] < amount and not self.spec.allow_negative:
            raise Refused(f"insufficient funds: account {src} has {balances[src]} < {amount}")

    def _transfer(self, cur: Any, src: int, dst: int, amount: int) -> None:
        """``for-update``: lock both rows, then relative UPDATEs."""
        cur.execute(
            f"SELECT id, balance FROM {TABLE} WHERE id IN (%s, %s) ORDER BY id FOR UPDATE", (src, dst)
        )
        balances = {int(k): int(v) for k, v in cur.fetchall()}
        self._check(balances, src, dst, amount)
        cur.execute(f"UPDATE {TABLE} SET balance = balance - %s WHERE id = %s", (amount, src))
        cur.execute(f"UPDATE {TABLE} SET balance = balance + %s WHERE id = %s", (amount, dst))

    def _read(self, cur: Any, src: int, dst: int, amount: int) -> dict[int, int]:
        """A plain (snapshot) read of both rows, checked."""
        cur.execute(f"SELECT id, balance FROM {TABLE} WHERE id IN (%s, %s) ORDER BY id", (src, dst))
        balances = {int(k): int(v) for k, v in cur.fetchall()}
        self._check(balances, src, dst, amount)
        return balances

    def _blind_transfer(self, cur: Any, src: int, dst: int, amount: int) -> None:
        """``none``: read, then write absolute values computed from the read."""
        balances = self._read(cur, src, dst, amount)
        cur.execute(f"UPDATE {TABLE} SET balance = %s WHERE id = %s", (balances[src] - amount, src))
        cur.execute(f"UPDATE {TABLE} SET balance = %s WHERE id = %s", (balances[dst] + amount, dst))

    def _cas_body(self, cur: Any, src: int, dst: int, amount: int) -> None:
        """``compare-and-set``: read, then write each row only if it still holds what was read. (amount >= 1,
        so the new balance always differs from the old: a matched row is always an affected row.)"""
        balances = self._read(cur, src, dst, amount)
        for account, new in ((src, balances[src] - amount), (dst, balances[dst] + amount)):
            old = balances[account]
            sql = f"UPDATE {TABLE} SET balance = %s WHERE id = %s AND balance = %s"
            if cur.execute(sql, (new, account, old)) != 1:
                raise CasMiss(f"compare-and-set miss: account {account} no longer holds {old}")

    def _cas_transfer(self, conn: Any, value: dict[str, Any]) -> Outcome:
        """Up to ``MAX_RETRIES`` retries after a compare-and-set miss or a definite 1213 abort; any other
        outcome ends the transfer (a refusal, a dropped connection, an indeterminate COMMIT)."""
        src, dst, amount = value["from"], value["to"], value["amount"]
        retried_on: dict[str, int] = {}
        retries = 0
        while True:
            outcome = transact(conn, lambda cur: self._cas_body(cur, src, dst, amount))
            done = {**value, "retries": retries, "retried_on": dict(retried_on)}
            if outcome.type == "ok":
                return dataclasses.replace(outcome, value=done)
            if isinstance(outcome.exc, CasMiss):
                reason = "cas"
            elif outcome.type == "fail" and outcome.code in RETRY_CODES:
                reason = str(outcome.code)
            else:
                return dataclasses.replace(outcome, value=done)
            if not outcome.usable:
                return dataclasses.replace(outcome, value=done)
            if retries >= MAX_RETRIES:
                error = f"gave up after {retries} retries: {outcome.error}"
                return dataclasses.replace(outcome, value=done, error=error[:200])
            retries += 1
            retried_on[reason] = retried_on.get(reason, 0) + 1

    def final_read(self, history: HistoryWriter) -> None:
        self.read_every_node(history, "read", _balances)


def _balances(cur: Any) -> dict[str, int]:
    cur.execute(f"SELECT id, balance FROM {TABLE} ORDER BY id")
    return {str(k): int(v) for k, v in cur.fetchall()}
