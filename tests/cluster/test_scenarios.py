"""Real scenario runs (the main job), and `harness check` reproducing their figures exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.model.scenario import load_scenario
from harness.runner import check_report, run_scenario
from harness.specs import load_topology

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("topology", "scenario"),
    [
        ("galera-3", "partition-isolate-primary"),
        ("galera-3", "kill-primary"),
        ("rabbitmq-3", "partition-isolate-primary"),
        ("rabbitmq-3", "kill-primary"),
        ("mmm-2", "kill-writer"),
    ],
)
def test_scenario_run_and_recheck(runtime, tmp_path: Path, topology: str, scenario: str) -> None:  # type: ignore[no-untyped-def]
    outcome = run_scenario(
        load_topology(ROOT / "topologies" / f"{topology}.yaml"),
        load_scenario(ROOT / "scenarios" / f"{scenario}.yaml"),
        runtime=runtime,
        reports=tmp_path,
    )
    out = outcome.report_dir
    for name in ("history.jsonl", "events.jsonl", "result.json", "scenario.json", "topology.json"):
        assert (out / name).is_file(), name
    nodes = json.loads((out / "topology.json").read_text())["nodes"]
    logs = {p.name for p in (out / "logs").iterdir()}
    assert {f"n{k}.log" for k in range(1, nodes + 1)} | {"toxiproxy.log"} <= logs, logs
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
    _assert_probes(out, topology, scenario, children)
    _assert_edn_export(out)


def _assert_probes(out: Path, topology: str, scenario: str, children: dict) -> None:  # type: ignore[type-arg]
    from harness.model.history import read_events, read_samples

    samples = read_samples(out / "samples.jsonl")
    metrics = {s.metric for s in samples}
    if topology.startswith("mmm"):
        assert {"replication_lag_s", "slave_io_running"} <= metrics, metrics
        assert sorted(children["lag"]["figures"]["per_node"]) == ["n1", "n2"]
        # the writer's death is an outage the clients felt (reconnects count as demand), then failover
        availability = children["availability"]["figures"]
        assert availability["outage_count"] >= 1, availability
        assert any(o["recovered_by"] == "failover" for o in availability["outages"]), availability["outages"]
    elif topology.startswith("galera"):
        assert {"replication_lag_s", "wsrep_cluster_status", "wsrep_cluster_size"} <= metrics, metrics
        lag = children["lag"]["figures"]
        assert sorted(lag["per_node"]) == ["n1", "n2", "n3"]
        assert all(lag["per_node"][n]["count"] > 20 for n in lag["per_node"]), lag["per_node"]
        if scenario == "partition-isolate-primary":
            # The isolated node falls behind for as long as it is cut off; the majority does not.
            cut = next(e for e in read_events(out / "events.jsonl") if e.name == "partition")
            isolated = next(c[0] for c in cut.detail["components"] if len(c) == 1)
            window_s = (cut.end - cut.start) / 1e9
            assert lag["per_node"][isolated]["max"] > window_s / 2, (isolated, window_s, lag["per_node"])
            majority = [n for n in ("n1", "n2", "n3") if n != isolated]
            assert all(lag["per_node"][n]["p50"] < 0.5 for n in majority), lag["per_node"]
            heal = lag["heals"][0]["nodes"][isolated]
            assert heal["catch_up_s"] is not None and heal["catch_up_s"] < 30, heal
    else:
        assert {"running_nodes", "partitions"} <= metrics, metrics
        assert any(s.metric.startswith("queue_leader:") for s in samples), metrics


def _assert_edn_export(out: Path) -> None:
    from harness.cli import main
    from harness.model.history import read_history

    assert main(["export", str(out), "--edn"]) == 0
    lines = (out / "history.edn").read_text().splitlines()
    assert len(lines) == len(read_history(out / "history.jsonl"))
    assert lines[0].startswith("{:index 0, :type :invoke, :process ")
