"""``harness.explore`` with fake ``run`` callables (no cluster): it finds a schedule that breaks a safety
guarantee, shrinks it to the faults that matter, deterministically under a seed, and writes a scenario
file that ``harness validate`` accepts and that replays the same steps; it stops at its budget or example
count, writing nothing, when nothing breaks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import cli
from harness.checkers.base import Result
from harness.explore import MINIMAL_FILE, REPORT_FILE, ExploreResult, breaches, explore
from harness.model.faults import (
    CrashAllStep,
    HealStep,
    KillStep,
    LinkStep,
    PartitionStep,
    PauseStep,
    RestartStep,
    StartStep,
    StepBase,
    StopStep,
    WaitStep,
    step_to_yaml,
)
from harness.model.scenario import Scenario, load_scenario
from harness.runner import RunOutcome
from harness.specs import load_topology

ROOT = Path(__file__).resolve().parents[2]
GALERA_FILE = ROOT / "topologies" / "galera-3.yaml"
GALERA = load_topology(GALERA_FILE)
WORKLOAD = {"type": "sql-set", "clients": 4, "rate": 100}
FAULTS = (PartitionStep, LinkStep, KillStep, PauseStep, StopStep, RestartStep, CrashAllStep)


def kills_primary_under_partition(steps: list[StepBase]) -> bool:
    partitioned = False
    for step in steps:
        if isinstance(step, PartitionStep):
            partitioned = True
        elif isinstance(step, HealStep) and step.heal in ("partition", "all"):
            partitioned = False
        elif isinstance(step, KillStep) and step.kill == "primary" and partitioned:
            return True
    return False


def composed(valid: bool, **children: Result) -> Result:
    return Result(valid, children=children)


LOST = composed(False, set=Result(False, figures={"lost": 3, "unexpected": 0, "duplicated": 0}))
FINE = composed(True, set=Result(True, figures={"lost": 0}), availability=Result(True, figures={}))
SLOW = composed(
    False,
    set=Result(True, figures={"lost": 0}),
    availability=Result(False, figures={"availability": 0.5}),
    guarantees=Result(False, details={"bounds": [{"name": "availability", "check": "availability",
                                                  "figure": "availability", "op": ">=", "bound": 0.9,
                                                  "value": 0.5, "passed": False}]}),
)  # fmt: skip


class FakeCluster:
    """Runs nothing: a verdict per scenario, and a clock that advances by each scenario's length."""

    def __init__(self, verdict: Callable[[Scenario], Result], report_dirs: Path | None = None) -> None:
        self.verdict = verdict
        self.report_dirs = report_dirs
        self.now = 0.0
        self.ran: list[Scenario] = []

    def clock(self) -> float:
        return self.now

    def __call__(self, scenario: Scenario) -> Result | RunOutcome:
        self.ran.append(scenario)
        self.now += scenario.duration_s + 20.0  # + heal, checks, the next workload's reset
        result = self.verdict(scenario)
        if self.report_dirs is None:
            return result
        run_id = f"galera-3-abc-{len(self.ran)}"
        return RunOutcome(run_id, self.report_dirs / run_id, result)


def primary_killed_under_partition(scenario: Scenario) -> Result:
    return LOST if kills_primary_under_partition(scenario.steps) else FINE


def search(tmp_path: Path, cluster: FakeCluster, **kw: object) -> ExploreResult:
    options: dict[str, object] = {"budget_s": 1e9, "seed": 7, "shrink_examples": 500, "log": lambda _: None}
    options.update(kw)
    return explore(GALERA, WORKLOAD, run=cluster, out_dir=tmp_path / "out", clock=cluster.clock, **options)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ finding + shrinking
def test_finds_and_shrinks_to_the_two_faults_that_matter(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                         ) -> None:  # fmt: skip
    cluster = FakeCluster(primary_killed_under_partition, report_dirs=tmp_path / "reports")
    found = search(tmp_path, cluster)
    assert found.found and found.stopped == "shrunk"
    assert found.failures == ["set.lost = 3"]
    assert found.minimal is not None and found.original is not None
    faults = [s for s in found.minimal if isinstance(s, FAULTS)]
    assert [type(s) for s in faults] == [PartitionStep, KillStep]
    assert faults[1].kill == "primary"  # type: ignore[attr-defined]
    assert [step_to_yaml(s) for s in found.minimal] == [
        {"partition": {"shape": "halves"}},  # the simplest partition, the kill at once, the shortest hold
        {"kill": "primary"},
        {"wait": "1s"},
        {"heal": "partition"},
        {"start": "all"},
        {"wait": "2s"},
    ]
    assert all(isinstance(s, (*FAULTS, WaitStep, HealStep, StartStep)) for s in found.minimal)
    assert kills_primary_under_partition(found.minimal)
    assert len(found.minimal) <= len(found.original)
    assert found.examples + found.shrink_runs == len(cluster.ran)
    # the minimal run's report directory is the one its RunOutcome named
    assert found.run_dir is not None and found.run_dir.parent == tmp_path / "reports"

    # the scenario file: validates with the topology as `run` would, and replays the same steps
    path = tmp_path / "out" / MINIMAL_FILE
    assert found.scenario_path == path and path.exists()
    assert cli.main(["validate", str(GALERA_FILE), str(path)]) == 0
    assert "ok" in capsys.readouterr().out
    replay = load_scenario(path)
    assert replay.steps == found.minimal
    assert replay == found.scenario
    assert replay.workload["galera"].type == "sql-set" and replay.systems == ["galera"]

    report = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert report["seed"] == 7 and report["found"] is True and report["stopped"] == "shrunk"
    assert report["examples"] == found.examples and report["shrink_runs"] == found.shrink_runs
    assert report["failures"] == ["set.lost = 3"]
    assert report["minimal"]["faults"] == 2
    assert report["minimal"]["schedule"] == [step_to_yaml(s) for s in found.minimal]
    assert report["original"]["steps"] == len(found.original) >= report["minimal"]["steps"]
    assert report["elapsed_s"] == pytest.approx(found.elapsed_s, abs=1e-3) and found.elapsed_s > 0


def test_deterministic_under_a_seed(tmp_path: Path) -> None:
    a = search(tmp_path / "a", FakeCluster(primary_killed_under_partition))
    b = search(tmp_path / "b", FakeCluster(primary_killed_under_partition))
    assert (a.examples, a.shrink_runs, a.original, a.minimal) == (
        b.examples,
        b.shrink_runs,
        b.original,
        b.minimal,
    )
    assert (tmp_path / "a/out" / MINIMAL_FILE).read_text() == (tmp_path / "b/out" / MINIMAL_FILE).read_text()


def test_a_capped_shrink_keeps_the_smallest_failure_seen(tmp_path: Path) -> None:
    found = search(tmp_path, FakeCluster(primary_killed_under_partition), shrink_examples=3)
    assert found.stopped == "shrink-limit" and found.shrink_runs == 3
    assert found.minimal is not None and kills_primary_under_partition(found.minimal)
    assert (tmp_path / "out" / MINIMAL_FILE).exists()


# ------------------------------------------------------------------------------------------ nothing breaks
def test_stops_at_max_examples_writing_nothing(tmp_path: Path) -> None:
    cluster = FakeCluster(lambda _: FINE)
    result = search(tmp_path, cluster, max_examples=15)
    assert not result.found and result.stopped == "max-examples"
    assert result.examples == len(cluster.ran) == 15 and result.shrink_runs == 0
    assert not (tmp_path / "out").exists()


def test_stops_at_the_wall_clock_budget_writing_nothing(tmp_path: Path) -> None:
    cluster = FakeCluster(lambda _: FINE)
    result = search(tmp_path, cluster, budget_s=600)
    assert not result.found and result.stopped == "budget"
    assert 600 <= result.elapsed_s < 600 + 80 + 20  # the scenario under way when it ran out finishes
    assert len({json.dumps([step_to_yaml(s) for s in sc.steps]) for sc in cluster.ran}) == len(cluster.ran)
    assert not (tmp_path / "out").exists()


def test_only_safety_breaks_count_by_default(tmp_path: Path) -> None:
    result = search(tmp_path, FakeCluster(lambda _: SLOW), max_examples=5)
    assert not result.found
    strict = search(tmp_path, FakeCluster(lambda _: SLOW), max_examples=5, safety_only=False)
    assert strict.found and strict.minimal == [WaitStep(wait=2.0)]  # any schedule at all: the simplest
    assert strict.failures == ["availability >= 0.9 breached: availability.availability = 0.5",
                               "availability: invalid (no reason given)"]  # fmt: skip


def test_a_run_that_raises_is_not_a_failure(tmp_path: Path) -> None:
    def boom(_: Scenario) -> Result:
        raise RuntimeError("cluster gone")

    result = search(tmp_path, FakeCluster(boom), max_errors=2)
    assert not result.found and result.stopped == "errors"
    assert result.errors == ["explore-1: RuntimeError: cluster gone", "explore-2: RuntimeError: cluster gone"]


# ------------------------------------------------------------------------------------------ breaches
def test_breaches_names_safety_figures_only_by_default() -> None:
    lost_bound = composed(
        False,
        set=Result(False, figures={"lost": 2, "duplicated": 1, "recovered": 4}),
        lag=Result(False, figures={}),
        guarantees=Result(False, details={"bounds": [
            {"name": "lost", "check": "set", "figure": "lost", "op": "==", "bound": 0, "value": 2, "passed": False},
            {"name": "lag_p99_s", "check": "lag", "figure": "overall.p99", "op": "<", "bound": 2, "value": 5,
             "passed": False}]}),
    )  # fmt: skip
    assert breaches(lost_bound) == ["lost == 0 breached: set.lost = 2", "set.lost = 2", "set.duplicated = 1"]
    assert len(breaches(lost_bound, safety_only=False)) == 5
    assert breaches(FINE) == [] and breaches(SLOW) == []
    assert breaches(composed("unknown", set=Result("unknown"))) == []  # type: ignore[arg-type]
    diverged = composed(False, divergence=Result(False, figures={"differing": ["hh.set"]}))
    assert breaches(diverged) == ["divergence.differing = hh.set"]
