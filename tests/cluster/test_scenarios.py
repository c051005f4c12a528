"""Real scenario runs (the main job), and `harness check` reproducing their figures exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.model.scenario import load_scenario
from harness.model.topology import load_topology
from harness.runner import check_report, run_scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("topology", "scenario"),
    [
        ("galera-3", "partition-isolate-primary"),
        ("galera-3", "kill-primary"),
        ("rabbitmq-3", "partition-isolate-primary"),
        ("rabbitmq-3", "kill-primary"),
    ],
)
def test_scenario_run_and_recheck(runtime, tmp_path: Path, topology: str, scenario: str) -> None:  # type: ignore[no-untyped-def]
    outcome = run_scenario(
        load_topology(ROOT / "topologies" / f"{topology}.yaml"),
        load_scenario(ROOT / "scenarios" / f"{scenario}.yaml"),
        runtime=runtime,
        reports=tmp_path,
        say=print,
    )
    out = outcome.report_dir
    for name in ("history.jsonl", "events.jsonl", "result.json", "scenario.json", "topology.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["n1.log", "n2.log", "n3.log"]
    stored = json.loads((out / "result.json").read_text())
    children = stored["children"]
    loss = children["set"] if "set" in children else children["queue"]
    assert loss["valid"] in (True, False), loss  # a final read happened: never "unknown"
    assert loss["figures"]["acknowledged"] > 0
    for figure in ("lost", "unexpected", "recovered"):
        assert figure in loss["figures"]
    availability = children["availability"]["figures"]
    assert 0 <= availability["availability"] <= 1
    assert "outages" in children["availability"]["details"] or "outages" in availability
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events and all(e["end"] is None or e["end"] >= e["start"] for e in events)
    assert events[-1]["end"] is not None, "every fault was healed"
    # The stored run, re-checked without any cluster, gives exactly the same figures.
    assert check_report(out, write=False).to_dict() == stored
    assert runtime.containers(outcome.run_id) == []
