"""sql-append without a database: its txns, key rotation, the SQL it sends and its outcomes."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest

from harness.model.scenario import WorkloadSpec
from harness.workloads import WORKLOADS, workload_class
from harness.workloads.sql_append import APPEND_SQL, READ_SQL, SqlAppend, parse_vals, run_mops

NODE = SimpleNamespace(name="n1")


class Store:
    """A connection whose cursor runs sql-append's two statements on a dict, with transactions."""

    def __init__(self, fail_commit: BaseException | None = None) -> None:
        self.rows: dict[int, str] = {}
        self.pending: dict[int, str] | None = None
        self.sql: list[str] = []
        self.fail_commit = fail_commit
        self.row: tuple[Any, ...] | None = None

    def begin(self) -> None:
        self.pending = dict(self.rows)

    def commit(self) -> None:
        if self.fail_commit is not None:
            raise self.fail_commit
        assert self.pending is not None
        self.rows, self.pending = self.pending, None

    def rollback(self) -> None:
        self.pending = None

    def cursor(self) -> Store:
        return self

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, args: Any = None) -> int:
        self.sql.append(sql)
        data = self.pending if self.pending is not None else self.rows
        if sql == APPEND_SQL:
            k, v = args
            data[k] = f"{data[k]},{v}" if k in data else v
        elif sql == READ_SQL:
            (k,) = args
            self.row = (data[k],) if k in data else None
        return 1

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.row


def workload(**spec: Any) -> SqlAppend:
    system = SimpleNamespace(run=SimpleNamespace(nodes=[NODE], topology=SimpleNamespace(node_names=["n1"])))
    return SqlAppend(system, WorkloadSpec(type="sql-append", **spec), random.Random(3))  # type: ignore[arg-type]


def test_registered() -> None:
    info = WORKLOADS["sql-append"]
    assert info.checkers == ("elle", "availability") and workload_class("sql-append") is SqlAppend


def test_spec_defaults_and_limits() -> None:
    spec = WorkloadSpec(type="sql-append")
    assert (spec.keys, spec.max_txn_len, spec.key_rotation) == (8, 4, 32)
    assert WorkloadSpec(type="sql-register").keys == 3
    with pytest.raises(ValueError, match="read-committed"):
        WorkloadSpec(type="sql-append", isolation="read-uncommitted")
    with pytest.raises(ValueError, match="only for sql-append"):
        WorkloadSpec(type="sql-bank", key_rotation=5)


def test_txns_mix_appends_and_reads_over_rotating_keys() -> None:
    wl = workload(keys=2, key_rotation=3, max_txn_len=3)
    rng = random.Random(1)
    txns = [wl.next_op(rng) for _ in range(200)]
    assert {f for f, _ in txns} == {"txn"}
    mops = [m for _, value in txns for m in value]
    assert all(1 <= len(value) <= 3 for _, value in txns)
    appends = [(k, v) for f, k, v in mops if f == "append"]
    assert len({v for _, v in appends}) == len(appends), "append values are unique"
    per_key: dict[int, int] = {}
    for k, _ in appends:
        per_key[k] = per_key.get(k, 0) + 1
    assert max(per_key.values()) <= 3 and len(per_key) > 10, "keys retire after key_rotation appends"
    assert all(v is None for f, _, v in mops if f == "r")


def test_execute_runs_the_txn_at_the_isolation_level() -> None:
    wl = workload(isolation="serializable")
    conn = Store()
    first = wl.execute(conn, "txn", [["append", 1, 10], ["r", 1, None]], NODE)  # type: ignore[arg-type]
    second = wl.execute(conn, "txn", [["r", 1, None], ["append", 1, 11], ["r", 2, None]], NODE)  # type: ignore[arg-type]
    assert first.type == "ok" and first.value == [["append", 1, 10], ["r", 1, [10]]]
    assert second.value == [["r", 1, [10]], ["append", 1, 11], ["r", 2, []]]
    assert conn.sql[0] == "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE" and conn.rows == {1: "10,11"}


def test_an_error_from_commit_is_info() -> None:
    import pymysql

    conn = Store(fail_commit=pymysql.err.OperationalError(2013, "Lost connection to server during query"))
    outcome = workload().execute(conn, "txn", [["append", 1, 10]], NODE)  # type: ignore[arg-type]
    assert outcome.type == "info" and not outcome.usable


def test_run_mops_and_parse_vals() -> None:
    assert parse_vals(None) == [] and parse_vals(b"1,2,3") == [1, 2, 3] and parse_vals("7") == [7]
    conn = Store()
    assert run_mops(conn, [["r", 5, None]]) == [["r", 5, []]]
