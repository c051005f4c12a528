"""sql-append against the shared real galera-3, no faults: Elle's analysis of what one node serves.

InnoDB at SERIALIZABLE takes shared locks on reads, so one node's list-append history must be serializable;
at REPEATABLE READ InnoDB reads a snapshot but writes the latest row (lost updates, G-single under
contention, and reads after an own append that hold later commits), so there only what read committed
forbids, but for that last one, is asserted.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal, TypeAlias

from harness.checkers.base import CheckContext, Result
from harness.checkers.elle import check_elle
from harness.model.history import History, HistoryWriter, Op, read_history
from harness.model.scenario import WorkloadSpec
from harness.workloads.sql_append import SqlAppend
from tests.cluster.test_workload_sql import run_together

Isolation: TypeAlias = Literal["read-committed", "repeatable-read", "serializable"]


def finals(h: History) -> list[Op]:
    """The final reads' completions: one ``txn`` per node after the clients stopped."""
    tail = list(h)[-6:]
    assert [(op.f, op.type) for op in tail[::2]] == [("txn", "invoke")] * 3, tail
    return tail[1::2]


def elle(h: History, model: str) -> Result:
    return check_elle(h, CheckContext(options={"elle": {"model": model}}))


def append_run(galera, tmp_path: Path, isolation: Isolation, seconds: float) -> History:  # type: ignore[no-untyped-def]
    _, system = galera
    spec = WorkloadSpec(type="sql-append", clients=4, rate=200, timeout=2, nodes=["n1"], isolation=isolation)
    wl = SqlAppend(system, spec, random.Random(11))
    wl.setup()
    path = tmp_path / "append.jsonl"
    history = HistoryWriter(path, concurrency=spec.clients)
    run_together([(wl, history)], seconds)
    wl.final_read(history)
    history.close()
    return read_history(path)


def test_append_serializable_on_one_node_is_serializable(galera, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h = append_run(galera, tmp_path, "serializable", 10.0)
    result = elle(h, "serializable")
    fig = result.figures
    assert result.valid is True, (fig, result.notes)
    assert fig["txns_ok"] > 50 and fig["keys"] > 8, fig  # txns committed, and keys rotated
    done = finals(h)
    assert [op.type for op in done] == ["ok"] * 3 and done[0].value == done[1].value == done[2].value
    assert any(v for _, _, v in done[0].value), "the final reads show appended lists"


def test_append_repeatable_read_on_one_node_shows_only_what_innodb_allows(galera, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """InnoDB's REPEATABLE READ reads a snapshot, but an UPDATE works on the latest committed row, and the
    transaction then sees the row it wrote (the MySQL manual, "Consistent Nonlocking Reads", describes
    this). So under contention it shows lost updates, G-single and G2-item (read committed allows them),
    and a read after the transaction's own append can hold another transaction's element committed after
    the snapshot: Elle's ``internal``. Nothing else read committed forbids (G0, G1a, G1b, G1c) appears."""
    h = append_run(galera, tmp_path, "repeatable-read", 10.0)
    result = elle(h, "read-committed")
    forbidden = set(result.figures["invalid_because"]) - {"internal"}
    assert not forbidden, (result.figures, result.notes)
    assert result.figures["txns_ok"] > 50
