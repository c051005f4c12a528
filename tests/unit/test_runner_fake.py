"""The runner's control flow on the fake runtime: step order, events, heal and cleanup on failure and
interrupt, what a run directory holds. No engine; no claim about any real system."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.errors import InfraError, InputError
from harness.model.history import read_events
from harness.model.scenario import Scenario
from harness.runner import check_report, run_scenario, run_scenarios
from harness.runtime import labels as L
from harness.runtime.fake import FakeRuntime
from tests.support import fake_system
from tests.support.fake_system import fake_topology

pytestmark = pytest.mark.usefixtures("fake_system")


def scenario(*steps: dict[str, Any], **kw: Any) -> Scenario:
    doc = {"name": "t", "systems": ["fake"], "settle": "0.05s", "steps": list(steps),
           "workload": {"fake": {"type": "sql-set", "clients": 2, "rate": 200, "quiesce": "0s"}}, **kw}  # fmt: skip
    return Scenario.model_validate(doc)


def test_steps_run_in_order_and_every_fault_is_an_event_that_ends(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    sc = scenario({"partition": {"isolate": "n1"}}, {"wait": "0.05s"}, {"kill": "n2"}, {"wait": "0.05s"},
                  {"start": "all"}, {"pause": "n3"}, {"heal": "all"})  # fmt: skip
    outcome = run_scenario(fake_topology(), sc, runtime=runtime, reports=tmp_path)
    events = read_events(outcome.report_dir / "events.jsonl")
    faults = [e for e in events if e.detail.get("by") != "harness"]
    assert [e.name for e in faults] == ["partition", "kill", "pause"]
    assert all(e.end is not None and e.end >= e.start for e in events)
    verbs = [c[0] for c in runtime.calls]
    kill = verbs.index("kill")
    assert runtime.calls[kill][1].endswith("-n2")
    assert "start" in verbs[kill:] and verbs.index("pause") > verbs.index("start", kill)
    assert verbs.index("unpause") > verbs.index("pause")
    # partitions were applied as iptables rules in each node, then an empty table (the heal)
    restores = [c for c in runtime.verbs("exec") if "iptables-restore" in " ".join(c[1])]
    assert len(restores) >= 6
    assert outcome.result.valid is True
    assert runtime.containers() == [] and runtime.networks() == []  # nothing left


def test_a_partition_is_healed_before_the_next_one_per_the_timeline(tmp_path: Path) -> None:
    sc = scenario({"partition": {"isolate": "n1"}}, {"heal": "partition"}, {"partition": {"shape": "halves"}})
    outcome = run_scenario(fake_topology(), sc, runtime=FakeRuntime(), reports=tmp_path)
    parts = [e for e in read_events(outcome.report_dir / "events.jsonl") if e.name == "partition"]
    assert [p.detail["shape"] for p in parts] == ["isolate", "halves"]
    assert parts[0].end <= parts[1].start


def test_run_directory_holds_every_file_and_the_bring_up_in_its_log(tmp_path: Path) -> None:
    outcome = run_scenario(fake_topology(), scenario({"wait": "0.05s"}), runtime=FakeRuntime(),
                           reports=tmp_path, seed=7)  # fmt: skip
    out = outcome.report_dir
    for name in ("topology.json", "scenario.json", "meta.json", "history.jsonl", "events.jsonl",
                 "samples.jsonl", "result.json", "harness.log"):  # fmt: skip
        assert (out / name).is_file(), name
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 7 and meta["image"].startswith("ha-harness/node:")
    phases = meta["phases_s"]  # where the wall time went, in order
    assert list(phases) == ["acquire", "setup", "timeline", "recovery", "quiesce", "stop", "final_read", "logs",
                            "check", "report"]  # fmt: skip
    assert phases["timeline"] >= 0.05 and all(v >= 0 for v in phases.values())
    log = (out / "harness.log").read_text()
    assert "network hh-" in log and "(internal)" in log  # logged before the run directory existed
    assert "final reads" in log
    assert json.loads((out / "result.json").read_text()) == check_report(out, write=False).to_dict()


def test_the_harness_stepping_in_is_an_event_and_a_note(tmp_path: Path) -> None:
    outcome = run_scenario(fake_topology(), scenario({"kill": "n1"}, {"start": "all"}), runtime=FakeRuntime(),
                           reports=tmp_path)  # fmt: skip
    actions = [e for e in read_events(outcome.report_dir / "events.jsonl") if e.detail.get("by") == "harness"]
    assert [(a.name, a.mechanism, a.target) for a in actions] == [("operator-recovery", "fake", ("n3",))]
    assert any("the harness stepped in: operator-recovery on n3" in n for n in outcome.result.notes)
    assert outcome.result.details["harness_actions"][0]["name"] == "operator-recovery"


def test_lost_data_is_an_invalid_verdict(tmp_path: Path) -> None:
    fake_system.LOST.update({1, 2})
    outcome = run_scenario(
        fake_topology(), scenario({"wait": "0.1s"}), runtime=FakeRuntime(), reports=tmp_path
    )
    assert outcome.result.valid is False
    assert outcome.result.children["set"].figures["lost"] == 2


@pytest.mark.parametrize("error", [InfraError("engine gone"), KeyboardInterrupt()])
def test_failure_or_interrupt_mid_timeline_heals_nothing_half_and_leaves_nothing(
    tmp_path: Path, error: BaseException
) -> None:
    runtime = FakeRuntime()

    def boom(*_: object) -> None:
        raise error

    runtime.fail_on["pause"] = boom
    with pytest.raises(type(error)):
        run_scenario(
            fake_topology(), scenario({"kill": "n1"}, {"pause": "n2"}), runtime=runtime, reports=tmp_path
        )
    assert runtime.containers() == [] and runtime.networks() == [] and runtime.volumes() == []
    assert runtime.verbs("remove_run")


def test_failure_during_up_removes_what_started(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    started: list[str] = []

    def second_node_fails(name: str) -> None:
        started.append(name)
        if name.endswith("-n2"):
            raise InfraError("cannot start n2")

    runtime.fail_on["run"] = second_node_fails
    with pytest.raises(InfraError, match="cannot start n2"):
        run_scenario(fake_topology(), scenario({"wait": "0.05s"}), runtime=runtime, reports=tmp_path)
    assert started and runtime.containers() == [] and runtime.networks() == []


def test_keep_hands_the_run_over(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    outcome = run_scenario(fake_topology(), scenario({"wait": "0.05s"}), runtime=runtime, reports=tmp_path,
                           keep=True)  # fmt: skip
    (marker,) = runtime.volumes(outcome.run_id)
    assert marker.labels[L.STATE] == "up"
    assert len(runtime.containers(outcome.run_id)) == 3


def test_a_pair_that_does_not_fit_starts_nothing(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    sc = scenario({"partition": {"shape": "majorities_ring"}}, {"kill": "n9"})
    with pytest.raises(InputError) as exc:
        run_scenario(fake_topology(), sc, runtime=runtime, reports=tmp_path)
    lines = str(exc.value).splitlines()
    assert len(lines) == 2
    assert "majorities_ring needs at least 4 nodes" in lines[0]
    assert "unknown node or role 'n9'" in lines[1]
    assert runtime.calls == []


def test_no_report_file_holds_the_runs_secret_or_passwords(tmp_path: Path) -> None:
    from harness.lifecycle import load_run

    runtime = FakeRuntime()
    outcome = run_scenario(fake_topology(), scenario({"kill": "n1"}, {"start": "all"}), runtime=runtime,
                           reports=tmp_path, keep=True)  # fmt: skip
    run = load_run(outcome.run_id, runtime)
    secrets = [run.secret, *(run.credential(p) for p in ("client", "repl", "admin"))]
    assert run.secret
    for path in outcome.report_dir.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not [s for s in secrets if s in text], path


# -- several scenarios on one reused cluster ---------------------------------------------------------------
def test_scenarios_share_one_cluster_each_with_its_own_run_directory_and_clock(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    first = scenario({"kill": "n1"}, {"wait": "0.05s"}, name="first")
    second = scenario({"pause": "n2"}, {"wait": "0.05s"}, name="second")
    seen: list[str] = []
    outcomes = run_scenarios(fake_topology(), [first, second, first], runtime=runtime, reports=tmp_path,
                             on_outcome=lambda o: seen.append(o.run_id))  # fmt: skip
    assert len(runtime.verbs("create_network")) == 1  # one cluster brought up for three scenarios
    cluster = outcomes[0].cluster_id
    assert [o.run_id for o in outcomes] == [cluster, f"{cluster}-2", f"{cluster}-3"] == seen
    assert [o.reused for o in outcomes] == [False, True, True]
    assert all(o.cluster_id == cluster and o.replaced is None and o.result.valid is True for o in outcomes)
    for o in outcomes:
        meta = json.loads((o.report_dir / "meta.json").read_text())
        assert meta["cluster_id"] == cluster and meta["run_id"] == o.run_id
        events = read_events(o.report_dir / "events.jsonl")
        assert [e.name for e in events if e.detail.get("by") != "harness"] == [
            "kill" if o.run_id != f"{cluster}-2" else "pause"
        ]
    # a reused cluster's scenario has its own clock: its history starts near 0, not after the first one
    second_ops = [json.loads(line) for line in (outcomes[1].report_dir / "history.jsonl").open()]
    assert min(op["time"] for op in second_ops) < 2e9
    # between scenarios the paused node was resumed (healed) before the next scenario began
    verbs = [c[0] for c in runtime.calls]
    assert verbs.index("unpause") > verbs.index("pause")
    assert runtime.containers() == [] and runtime.networks() == []  # nothing left


def test_a_cluster_that_does_not_come_back_healthy_is_replaced_and_the_result_says_so(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    sc = scenario({"wait": "0.05s"})
    outcomes = run_scenarios(fake_topology(timeouts={"heal": 1}), [sc, sc], runtime=runtime, reports=tmp_path,
                             on_outcome=lambda o: fake_system.SICK.add(o.cluster_id))  # fmt: skip
    assert len(runtime.verbs("create_network")) == 2
    first, second = outcomes
    assert second.cluster_id != first.cluster_id and second.run_id == second.cluster_id
    assert second.replaced is not None and "not healthy within 1s" in second.replaced
    assert not second.reused
    assert any("replaced the cluster before this scenario" in n for n in second.result.notes)
    assert json.loads((second.report_dir / "meta.json").read_text())["replaced"] == second.replaced
    assert runtime.containers() == [] and runtime.networks() == []


def test_validation_of_every_pair_comes_before_any_cluster(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    bad = scenario({"kill": "n9"})
    with pytest.raises(InputError):
        run_scenarios(fake_topology(), [scenario({"wait": "0.05s"}), bad], runtime=runtime, reports=tmp_path)
    assert runtime.calls == []
