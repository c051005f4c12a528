"""Async replication with failover on real mysql-async-3 clusters: what async failover loses and where,
that semi-sync does not lose it, and that the manager's steps and the harness's rebuild are on the record.

Three scenarios on one reused mysql-async-3 (the unshipped-writes kill first, while n1 is the source),
then the same kill on mysql-async-3-semisync.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.model.history import read_events
from harness.model.scenario import load_scenario
from harness.runner import RunOutcome, run_scenarios
from harness.specs import load_topology

ROOT = Path(__file__).resolve().parents[2]


def stored(outcome: RunOutcome) -> tuple[dict[str, Any], list[Any]]:
    result = json.loads((outcome.report_dir / "result.json").read_text())
    return result["children"], read_events(outcome.report_dir / "events.jsonl")


def acknowledged_not_on(outcome: RunOutcome, node: str) -> tuple[set[int], set[int]]:
    """(acknowledged adds, ids in ``node``'s final read) from the stored history."""
    ops = [json.loads(line) for line in (outcome.report_dir / "history.jsonl").open()]
    acked = {op["value"] for op in ops if op["f"] == "add" and op["type"] == "ok"}
    final = next(
        op for op in reversed(ops) if op["f"] == "read" and op["type"] == "ok" and op["node"] == node
    )
    return acked, set(final["value"])


def test_async_failover_loses_unshipped_writes_and_heals(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    names = ["kill-source-unshipped", "kill-primary", "isolate-source"]
    outcomes = run_scenarios(
        load_topology(ROOT / "topologies" / "mysql-async-3.yaml"),
        [load_scenario(ROOT / "scenarios" / f"{n}.yaml") for n in names],
        runtime=runtime,
        reports=tmp_path,
    )
    assert [o.reused for o in outcomes] == [False, True, True]
    assert len({o.cluster_id for o in outcomes}) == 1 and all(o.replaced is None for o in outcomes)
    assert not runtime.containers(outcomes[0].cluster_id), "the cluster was removed"

    # 1. Both replicas cut off for 4 s, then the source killed: what it acknowledged meanwhile is lost.
    children, events = stored(outcomes[0])
    lost = children["set"]["figures"]["lost"]
    assert children["set"]["valid"] is False and lost >= 50, children["set"]["figures"]
    acked, final = acknowledged_not_on(outcomes[0], "n2")
    assert len(acked - final) == lost  # the final read on the new source: exactly those rows are missing
    assert children["set"]["figures"]["duplicated"] == 0 and children["set"]["figures"]["unexpected"] == 0
    by_name = {e.name: e for e in events}
    failover = by_name["failover"]
    assert failover.target == "n1" and failover.detail["by"] == "manager" and failover.end is not None
    kill = by_name["kill"]
    assert kill.start < failover.start < kill.start + 5e9  # failover_after 2 s + a check or two
    promote = by_name["manager-promote"]
    assert promote.target in ("n2", "n3") and failover.start <= promote.start <= failover.end
    rebuild = by_name["operator-rebuild"]  # the killed source came back with writes nobody else had
    assert rebuild.detail["by"] == "harness" and list(rebuild.target) == ["n1"]
    assert children["divergence"]["valid"] is True  # after the rebuild every node has the same rows

    # 2. A kill without a replication cut: the replicas had everything, nothing is lost.
    children, events = stored(outcomes[1])
    assert children["set"]["figures"]["lost"] == 0, children["set"]["figures"]
    assert children["guarantees"]["valid"] is True, children["guarantees"]
    assert any(e.name == "failover" for e in events)

    # 3. The source's client link cut: the manager loses it too and fails over; its replicas still had
    # their own links, so the promoted one has every acknowledged row, and the old source rejoins.
    children, events = stored(outcomes[2])
    assert children["set"]["figures"]["lost"] == 0 and children["set"]["valid"] is True
    assert children["guarantees"]["valid"] is True, children["guarantees"]
    assert not any(e.name == "operator-rebuild" for e in events)
    repointed = {e.target for e in events if e.name == "manager-repoint"}
    failed = next(e for e in events if e.name == "failover").target
    assert failed in repointed  # the isolated source came back as a replica of the new one


def test_semi_sync_loses_no_acknowledged_write_on_the_same_kill(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (outcome,) = run_scenarios(
        load_topology(ROOT / "topologies" / "mysql-async-3-semisync.yaml"),
        [load_scenario(ROOT / "scenarios" / "kill-source-unshipped.yaml")],
        runtime=runtime,
        reports=tmp_path,
    )
    children, events = stored(outcome)
    figures = children["set"]["figures"]
    assert figures["lost"] == 0 and figures["acknowledged"] > 0, figures
    assert children["guarantees"]["valid"] is True, children["guarantees"]
    # the commits the cut held back waited for a replica's acknowledgement: indeterminate, not ok
    assert figures["indeterminate"] >= 4, figures
    assert any(e.name == "failover" for e in events)
