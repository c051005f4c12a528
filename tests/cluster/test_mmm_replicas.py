"""MMM with read-only slaves on a real mmm-4-replicas: the writer killed (both slaves repointed to the new
writer, nothing doubled or invented), then a slave killed (its reader role moved to the other readers, back
ONLINE and caught up), both scenarios on one reused cluster.

What each slave replicates from is the probe's ``replicates_from`` sample (its IO thread's
``Master_Server_Id``); the monitor's own steps are in its log (``change host=n3 action=set_active_master
n2``), which every run directory keeps.
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
SLAVES = ("n3", "n4")
NODES = ("n1", "n2", "n3", "n4")


def children(outcome: RunOutcome) -> dict[str, Any]:
    return json.loads((outcome.report_dir / "result.json").read_text())["children"]  # type: ignore[no-any-return]


def series(outcome: RunOutcome, metric: str) -> dict[str, list[str]]:
    """Every sample of ``metric`` per node, in time order."""
    out: dict[str, list[str]] = {}
    for line in (outcome.report_dir / "samples.jsonl").open():
        sample = json.loads(line)
        if sample["metric"] == metric:
            out.setdefault(sample["node"], []).append(str(sample["value"]))
    return out


def monitor_changes(outcome: RunOutcome) -> list[str]:
    return [line for line in (outcome.report_dir / "logs" / "monitor.log").open() if " change " in line]


def assert_readers_spread(outcome: RunOutcome, writer: str) -> None:
    """At the end every node is ONLINE with one reader role of the four, the writer on ``writer``."""
    roles = {node: values[-1] for node, values in series(outcome, "mmm_roles").items()}
    assert roles == {n: "writer,reader" if n == writer else "reader" for n in NODES}, roles
    states = {node: values[-1] for node, values in series(outcome, "mmm_state").items()}
    assert set(states.values()) == {"ONLINE"}, states


def test_slaves_follow_the_writer_and_a_dead_slave_comes_back(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outcomes = run_scenarios(
        load_topology(ROOT / "topologies" / "mmm-4-replicas.yaml"),
        [load_scenario(ROOT / "scenarios" / f"{n}.yaml") for n in ("kill-writer", "kill-replica")],
        runtime=runtime,
        reports=tmp_path,
    )
    assert [o.reused for o in outcomes] == [False, True]
    assert len({o.cluster_id for o in outcomes}) == 1 and all(o.replaced is None for o in outcomes)
    assert not runtime.containers(outcomes[0].cluster_id), "the cluster was removed"

    # 1. The writer killed: the monitor moves it to the other master, then repoints both slaves to it.
    kill_writer, kill_replica = outcomes
    result = children(kill_writer)
    assert result["guarantees"]["valid"] is True, result["guarantees"]
    figures = result["set"]["figures"]
    assert figures["duplicated"] == 0 and figures["unexpected"] == 0 and figures["acknowledged"] > 500
    assert result["divergence"]["valid"] is True  # every node, slaves included, ends with the same rows
    killed = next(e for e in read_events(kill_writer.report_dir / "events.jsonl") if e.name == "kill")
    (old,) = killed.target
    new = next(n for n in ("n1", "n2") if n != old)
    changes = monitor_changes(kill_writer)
    moved = next(i for i, c in enumerate(changes) if f"role=writer role_from=- role_to={new}" in c)
    for slave in SLAVES:
        repoint = next(
            i for i, c in enumerate(changes) if f"host={slave} action=set_active_master {new}" in c
        )
        assert repoint > moved, f"{slave} repointed before the writer moved"
    sources = series(kill_writer, "replicates_from")
    for slave in SLAVES:
        assert sources[slave][0] == old and sources[slave][-1] == new, (slave, sorted(set(sources[slave])))
    lag = result["lag"]["figures"]
    assert lag["nodes"] == list(NODES) and all(lag["per_node"][n]["count"] > 0 for n in SLAVES)
    assert_readers_spread(kill_writer, new)

    # 2. A slave killed: its reader role goes to the others, the writer does not move, and it comes back
    # AWAITING_RECOVERY, then ONLINE (auto_set_online), replicating from the writer with every row.
    result = children(kill_replica)
    assert result["guarantees"]["valid"] is True, result["guarantees"]
    assert result["set"]["figures"]["lost"] == 0 and result["divergence"]["valid"] is True
    states = changes_of(series(kill_replica, "mmm_state")["n3"])
    assert states == ["ONLINE", "HARD_OFFLINE", "AWAITING_RECOVERY", "ONLINE"], states
    roles = series(kill_replica, "mmm_roles")
    assert changes_of(roles["n3"]) == ["reader", "-", "reader"], roles["n3"]
    assert all(r.startswith("writer") for r in roles[new]), "the writer moved"
    doubled = [n for n in NODES if n != "n3" and any(r.endswith("reader,reader") for r in roles[n])]
    assert len(doubled) == 1, roles  # n3's reader role went to one other reader while it was down
    assert series(kill_replica, "replicates_from")["n3"][-1] == new
    assert_readers_spread(kill_replica, new)


def changes_of(values: list[str]) -> list[str]:
    """``values`` without repeats in a row."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
