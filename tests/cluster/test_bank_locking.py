"""sql-bank's three ``locking`` modes against the shared real galera-3, no faults.

What the design implies, and so what is asserted:

* ``for-update`` (lock both rows, relative UPDATEs) and ``compare-and-set`` (UPDATE … WHERE balance =
  <read>, retried) never lose a committed transfer's effect: every read and the final balances keep the
  opening total, and the final balances are exactly the opening ones moved by the ok transfers (up to the
  indeterminate ones). compare-and-set pays in retries, which the checker shows.
* ``none`` (plain SELECT, absolute UPDATEs) on **one node** at REPEATABLE READ loses updates: two
  transfers read the same balance from their snapshots, the second UPDATE waits for the first's row lock
  and then writes its stale value, and InnoDB (MariaDB 10.11, no ``innodb_snapshot_isolation``) reports no
  error. With 12 clients on 2 accounts transfers overlap all the time, so lost updates are asserted.
* ``none`` **across the three nodes**: Galera certification refuses a writeset whose rows another
  writeset touched that this node had not applied when the transaction's writeset was replicated (first
  committer wins: 1213 at COMMIT, a definite abort, ``fail``); but a transaction that read before a remote
  commit, which was then applied before its own UPDATE, certifies fine and overwrites it: lost. Neither
  outcome is promised for a given run, so the test asserts what must hold either way: under this contention
  something gives (1213 aborts, or lost updates, or both), and the checker's accounting is self-consistent
  (valid exactly when no update was lost and no read was wrong).

Run: ``.venv/bin/python -m pytest -q tests/cluster/test_bank_locking.py``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from harness.checkers.bank import check_bank
from harness.checkers.base import CheckContext, Result
from harness.model.history import History, HistoryWriter, read_history
from harness.model.scenario import WorkloadSpec
from harness.workloads.sql_bank import SqlBank
from tests.cluster.test_workload_sql import assert_nodes_agree, ok_in_each_half, run_together

SECONDS = 8.0


def bank_run(galera: Any, tmp_path: Path, seed: int, **spec: Any) -> tuple[History, WorkloadSpec, Result]:
    _, system = galera
    ws = WorkloadSpec(type="sql-bank", clients=12, rate=600, timeout=2, **spec)
    wl = SqlBank(system, ws, random.Random(seed))
    wl.setup()
    path = tmp_path / f"bank-{ws.locking}.jsonl"
    history = HistoryWriter(path, concurrency=ws.clients)
    run_together([(wl, history)], SECONDS)
    wl.final_read(history)
    history.close()
    h = read_history(path)
    opts = {"expected_total": ws.accounts * ws.balance, "accounts": list(range(ws.accounts)),
            "opening_balance": ws.balance}  # fmt: skip
    return h, ws, check_bank(h, CheckContext(options={"bank": opts}))


def test_for_update_keeps_every_total(galera, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h, _ws, result = bank_run(galera, tmp_path, 11, locking="for-update")
    f = result.figures
    assert result.valid is True, (result.notes, f)
    assert f["min_total"] == f["max_total"] == f["final_total"] == 500
    assert (f["lost_updates"], f["lost_update_amount"], f["final_total_drift"]) == (0, 0, 0)
    ok_in_each_half(h, "transfer")
    assert_nodes_agree(h)
    # without faults a transfer fails only by a refusal or a definite abort; info only by a timeout
    assert set(f["failed_by_reason"]) <= {"refused", "1213", "1205", "2013", "no-code"}, f["failed_by_reason"]
    assert set(f["indeterminate_by_reason"]) <= {"timeout"}, f["indeterminate_by_reason"]


def test_compare_and_set_keeps_every_total_and_shows_its_retries(galera, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h, _ws, result = bank_run(galera, tmp_path, 12, locking="compare-and-set")
    f = result.figures
    assert result.valid is True, (result.notes, f)
    assert f["min_total"] == f["max_total"] == f["final_total"] == 500
    assert (f["lost_updates"], f["lost_update_amount"]) == (0, 0)
    ok_in_each_half(h, "transfer")
    assert_nodes_agree(h)
    retries = f["retries_per_committed_transfer"]
    assert retries is not None and retries["max"] >= 1, f  # 12 clients on 5 accounts: some attempt retried
    assert set(f["retried_on"]) <= {"cas", "1213"} and sum(f["retried_on"].values()) > 0, f["retried_on"]


def test_no_locking_on_one_node_loses_updates(galera, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h, _ws, result = bank_run(galera, tmp_path, 13, locking="none", nodes=["n1"], accounts=2)
    f = result.figures
    ok_in_each_half(h, "transfer")
    assert_nodes_agree(h)
    assert f["lost_updates"] > 0 and f["lost_update_amount"] > 0, f
    assert result.valid is False
    assert f["final_total_drift"] == f["final_total"] - 200
    # on one node the overwrite is silent: no certification, no 1213 needed for the loss
    assert any("lost updates" in note for note in result.notes), result.notes


def test_no_locking_across_nodes_aborts_or_loses(galera, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h, _ws, result = bank_run(galera, tmp_path, 14, locking="none")
    f = result.figures
    ok_in_each_half(h, "transfer")
    assert_nodes_agree(h)
    assert f["aborts_by_code"].get("1213", 0) > 0 or f["lost_update_amount"] > 0, f
    consistent = f["lost_update_amount"] == 0 and f["wrong_total_reads"] == 0 and f["negative_reads"] == 0
    assert result.valid is consistent, (result.notes, f)
    assert f["final_total_drift"] == f["final_total"] - 500
    # a COMMIT-time certification failure is a definite abort now: never indeterminate
    assert not any(k.startswith("server:1213") for k in f["indeterminate_by_reason"]), f
