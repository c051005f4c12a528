"""Real scenario runs (the main job), and `harness check` reproducing their figures exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.model.history import read_events
from harness.model.scenario import load_scenario
from harness.paths import harness_home
from harness.runner import check_report, run_scenario
from harness.specs import load_topology

ROOT = Path(__file__).resolve().parents[2]
pytest_plugins = ["pytester"]
HARNESS_HOME = harness_home()  # read before pytester points HOME elsewhere

# What each scenario implies for its loss checker (set / queue): True = no acknowledged write or confirmed
# message may be lost, and the run's verdict must say so. Galera replicates synchronously (a commit is
# certified by the Primary component before it is acknowledged) and quorum queues confirm only what a Raft
# majority holds; None = either verdict is a finding, not a test failure: MMM's replication is
# asynchronous, so the old writer's last acknowledged writes may be lost when the writer moves.
IMPLIED_LOSS_VERDICT = {
    ("galera-3", "partition-isolate-primary"): True,
    ("galera-3", "kill-primary"): True,
    ("galera-3", "pause-node"): True,
    ("galera-3", "wipe-node"): True,  # back empty, re-seeded by SST: the others had every commit
    ("rabbitmq-3", "partition-isolate-primary"): True,
    ("rabbitmq-3", "kill-primary"): True,
    ("rabbitmq-3", "kill-primary-oslo"): True,  # clients fail over to the next node; confirms still hold
    ("mmm-2", "kill-writer"): None,
}


def test_scenario_run_and_recheck(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``harness run``'s path: one scenario on a cluster of its own, removed at the end."""
    outcome = run_scenario(
        load_topology(ROOT / "topologies" / "mmm-2.yaml"),
        load_scenario(ROOT / "scenarios" / "kill-writer.yaml"),
        runtime=runtime,
        reports=tmp_path,
    )
    assert not outcome.reused and outcome.cluster_id == outcome.run_id
    assert_scenario_run(runtime, outcome.report_dir, "mmm-2", "kill-writer")


# The pytest plugin on real clusters: scenario files collected per topology, one cluster per topology for
# the whole session (healed, checked healthy and reset between scenarios), every cluster removed after.
SESSION = {
    "galera-3": ["partition-isolate-primary", "kill-primary", "pause-node", "wipe-node"],
    "rabbitmq-3": ["partition-isolate-primary", "kill-primary", "kill-primary-oslo"],
}


def test_a_pytest_session_runs_scenarios_on_one_reused_cluster_per_topology(  # type: ignore[no-untyped-def]
    runtime, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_HOME", str(HARNESS_HOME))  # pytester moves HOME; the tools stay put
    (pytester.path / "scenarios").mkdir()
    for name in {s for names in SESSION.values() for s in names}:
        shutil.copy(ROOT / "scenarios" / f"{name}.yaml", pytester.path / "scenarios")
    ids = [f"scenarios/{s}.yaml::{t}::{s}" for t, names in SESSION.items() for s in names]
    topologies = [a for t in SESSION for a in ("--harness-topology", str(ROOT / "topologies" / f"{t}.yaml"))]
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q", *topologies, "--harness-reports",
                                          str(pytester.path / "reports"), *ids)  # fmt: skip
    result.assert_outcomes(passed=len(ids))
    runs: dict[str, list[tuple[dict, Path]]] = {}  # type: ignore[type-arg]
    for out in sorted((pytester.path / "reports").iterdir()):
        meta = json.loads((out / "meta.json").read_text())
        topology = json.loads((out / "topology.json").read_text())["name"]
        runs.setdefault(topology, []).append((meta, out))
    for topology, names in SESSION.items():
        metas = sorted(runs[topology], key=lambda m: m[0]["scenario_on_cluster"])
        assert len({m["cluster_id"] for m, _ in metas}) == 1, metas  # one cluster for all its scenarios
        assert [m["reused"] for m, _ in metas] == [False] + [True] * (len(names) - 1)
        assert all(m["replaced"] is None for m, _ in metas)
        for meta, out in metas:
            scenario = json.loads((out / "scenario.json").read_text())["name"]
            assert_scenario_run(runtime, out, topology, scenario, cluster_id=meta["cluster_id"])
        if topology == "rabbitmq-3":  # oslo-style clients move off the killed node; plain ones wait for it
            done = {}
            for _, out in metas:
                figures = json.loads((out / "result.json").read_text())["children"]["availability"]["figures"]
                done[json.loads((out / "scenario.json").read_text())["name"]] = figures["writes_ok"]
            assert done["kill-primary-oslo"] > 1.1 * done["kill-primary"], done
        # a reused cluster's scenario starts from a reset workload: its history is its own
        later = metas[-1][1]
        first_ops = [json.loads(line) for line in (later / "history.jsonl").open()][:50]
        assert min(op["time"] for op in first_ops) < 10e9


def assert_scenario_run(runtime, out: Path, topology: str, scenario: str, *,  # type: ignore[no-untyped-def]
                        cluster_id: str | None = None) -> None:  # fmt: skip
    """What a finished run directory must hold and say, per what the scenario implies for the design."""
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
    implied = IMPLIED_LOSS_VERDICT[(topology, scenario)]
    if implied is True:
        assert loss["figures"]["lost"] == 0 and loss["figures"]["unexpected"] == 0, loss["figures"]
        assert loss["valid"] is True, (loss.get("notes"), loss["figures"])
        if "divergence" in children:  # and every node ends with the same rows (after heal and quiesce)
            assert children["divergence"]["valid"] is True, children["divergence"]
    availability = children["availability"]["figures"]
    assert 0 <= availability["availability"] <= 1
    assert "outages" in children["availability"]["details"] or "outages" in availability
    events = read_events(out / "events.jsonl")  # the last line per event id: its final state
    assert events, "the scenario's faults were recorded"
    unhealed = [(e.name, e.target) for e in events if e.end is None]
    assert not unhealed, f"events never healed / ended: {unhealed}"
    assert all(e.end >= e.start for e in events if e.end is not None), events
    faults = [e.name for e in events if e.detail.get("by") != "harness"]
    assert faults == [next(iter(step)) for step in _fault_steps(scenario)], faults
    # None of these scenarios needs the harness to step in (an operator's recovery, a full bootstrap).
    assert "harness_actions" not in stored.get("details", {}), stored["details"]["harness_actions"]
    # The stored run, re-checked without any cluster, gives exactly the same figures.
    assert check_report(out, write=False).to_dict() == stored
    assert runtime.containers(cluster_id or out.name) == []  # removed (the session's: at its end)
    _assert_probes(out, topology, scenario, children)
    _assert_edn_export(out)


def _fault_steps(scenario: str) -> list[dict]:  # type: ignore[type-arg]
    """The scenario file's fault steps (not wait, heal, start or resume), in order: each opens one event."""
    doc = load_scenario(ROOT / "scenarios" / f"{scenario}.yaml").model_dump(mode="json", exclude_none=True)
    return [step for step in doc["steps"] if next(iter(step)) not in ("wait", "heal", "start", "resume")]


def _assert_probes(out: Path, topology: str, scenario: str, children: dict) -> None:  # type: ignore[type-arg]
    from harness.model.history import read_samples

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
            # after the heal every node caught up (the isolated one by IST), within the heal's deadline
            (heal,) = [h for h in lag["heals"] if h["event"] == cut.id]
            for node, caught in heal["nodes"].items():
                assert caught["catch_up_s"] is not None and caught["catch_up_s"] < 30, (node, heal)
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
