"""Storage faults on real clusters whose data directories sit on the harness's LazyFS-semantics mounts
(topology ``storage: lazyfs``): what a power loss of every node keeps, per fsync policy, and what a disk
that fails fsync does to the node on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.model.history import read_events
from harness.model.scenario import load_scenario
from harness.runner import RunOutcome, run_scenarios
from harness.runtime import storage
from harness.specs import load_topology

ROOT = Path(__file__).resolve().parents[2]


def _run(runtime: Any, topology: str, scenarios: list[str], reports: Path) -> list[RunOutcome]:
    outcomes = run_scenarios(load_topology(ROOT / "topologies" / f"{topology}.yaml"),
                             [load_scenario(ROOT / "scenarios" / f"{s}.yaml") for s in scenarios],
                             runtime=runtime, reports=reports)  # fmt: skip
    cluster = outcomes[0].cluster_id
    assert runtime.containers(cluster) == []
    assert cluster not in storage.mounted_run_ids(), "the run's storage mounts are gone with it"
    return outcomes


def _loss(outcome: RunOutcome) -> dict[str, Any]:
    children = json.loads((outcome.report_dir / "result.json").read_text())["children"]
    return children["set"] if "set" in children else children["queue"]


def _power_losses(outcome: RunOutcome) -> list[Any]:
    events = read_events(outcome.report_dir / "events.jsonl")
    losses = [e for e in events if e.name == "power-loss"]
    assert losses and all(e.end is not None for e in losses), events  # ended when the nodes started
    return losses


def test_galera_flush1_keeps_every_commit_through_power_loss_and_a_failing_fsync_stops_only_its_node(
    runtime: Any, tmp_path: Path
) -> None:
    power, disk = _run(runtime, "galera-3-lazyfs", ["power-loss-all", "disk-fsync-eio"], tmp_path)

    # Power loss of every node: un-fsynced data was really dropped, and still no acknowledged row is gone.
    (loss_event,) = _power_losses(power)
    assert sorted(loss_event.target) == ["n1", "n2", "n3"]
    assert sum(d["bytes"] for d in loss_event.detail["dropped"].values()) > 0, loss_event.detail
    loss = _loss(power)
    assert loss["figures"]["acknowledged"] > 100
    assert loss["figures"]["lost"] == 0 and loss["valid"] is True, loss["figures"]
    result = json.loads((power.report_dir / "result.json").read_text())
    actions = result["details"]["harness_actions"]  # every node down: the operator's bootstrap, said so
    assert any(a["name"] == "full-cluster-recovery" for a in actions), actions

    # fsync fails on n2: InnoDB refuses to go on (it aborts), the others keep committing, n2 rejoins.
    assert disk.reused
    n2_log = (disk.report_dir / "logs" / "n2.log").read_text()
    assert "returned 5" in n2_log and "InnoDB" in n2_log, n2_log[-2000:]  # fsync()/fdatasync() = EIO
    (fault,) = [e for e in read_events(disk.report_dir / "events.jsonl") if e.name == "disk"]
    assert fault.target == ("n2",) and fault.detail == {"kind": "eio", "ops": ["fsync"]} and fault.end
    loss = _loss(disk)
    assert loss["figures"]["lost"] == 0 and loss["valid"] is True, loss["figures"]
    availability = json.loads((disk.report_dir / "result.json").read_text())["children"]["availability"]
    assert availability["figures"]["availability"] > 0.5, availability["figures"]  # n1 and n3 kept serving


def test_galera_flush2_loses_acknowledged_commits_when_every_node_loses_power(
    runtime: Any, tmp_path: Path
) -> None:
    (outcome,) = _run(runtime, "galera-3-lazyfs-flush2", ["power-loss-at-once"], tmp_path)
    assert len(_power_losses(outcome)) == 2
    loss = _loss(outcome)
    # About a second of commits per loss is on no disk (the redo log is fsynced once a second).
    assert loss["figures"]["lost"] > 0 and loss["valid"] is False, loss["figures"]
    assert loss["figures"]["unexpected"] == 0 and loss["figures"]["duplicated"] == 0, loss["figures"]


def test_rabbitmq_quorum_queues_keep_every_confirmed_message_through_power_loss(
    runtime: Any, tmp_path: Path
) -> None:
    (outcome,) = _run(runtime, "rabbitmq-3-lazyfs", ["power-loss-all"], tmp_path)
    _power_losses(outcome)
    loss = _loss(outcome)
    assert loss["figures"]["acknowledged"] > 100
    assert loss["figures"]["lost"] == 0 and loss["valid"] is True, loss["figures"]
