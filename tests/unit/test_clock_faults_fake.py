"""Clock faults' control flow on the fake runtime: the nodes' containers get libfaketime and their control
file, a bump / drift / strobe rewrites that file (no restart), a heal sets it true, and the models refuse
what cannot run. What a clock fault does to a database is claimed only by tests/cluster/test_clock_faults.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.faults.nemesis import FaultConflict, Nemesis
from harness.lifecycle import down, system_for, up
from harness.model.faults import ClockStep, parse_step, step_to_yaml
from harness.model.scenario import Scenario
from harness.plan import Source, check_pair
from harness.runtime.fake import FakeRuntime
from harness.runtime.node_clock import IN_CONTAINER, LIBFAKETIME, NodeClock
from harness.runtime.wait import wait_until
from tests.support.fake_system import fake_topology

pytestmark = pytest.mark.usefixtures("fake_system")


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
def nemesis(runtime: FakeRuntime, tmp_path: Path) -> Iterator[Nemesis]:
    run = up(fake_topology(clock="faketime"), runtime)
    try:
        yield Nemesis(system_for(run, runtime), events=tmp_path / "events.jsonl")
    finally:
        down(run.id, runtime)


def clock(nemesis: Nemesis, node: str) -> NodeClock:
    return NodeClock(nemesis.run.id, node)


def test_every_node_runs_under_libfaketime_with_a_true_clock_file(
    nemesis: Nemesis, runtime: FakeRuntime
) -> None:
    for node in nemesis.run.nodes:
        spec = runtime.containers_by_name[node.container].spec
        assert spec.env["LD_PRELOAD"] == LIBFAKETIME and spec.env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1"
        (mount,) = [m for m in spec.mounts if m.target == IN_CONTAINER]
        assert mount.read_only and Path(mount.source) == clock(nemesis, node.name).directory
        assert clock(nemesis, node.name).path.read_text() == "+0.000000\n"


def test_bump_rewrites_only_its_nodes_file_and_heal_sets_it_true(
    nemesis: Nemesis, runtime: FakeRuntime
) -> None:
    calls = len(runtime.calls)
    event = nemesis.clock("n1", bump_s=-30.0)
    assert clock(nemesis, "n1").offset() == -30.0 and clock(nemesis, "n2").offset() == 0.0
    assert not [c for c in runtime.calls[calls:] if c[0] in ("stop", "start", "kill", "run")], "no restart"
    assert (event.name, event.mechanism, event.detail) == (
        "clock",
        "faketime",
        {"bump_s": -30.0, "mode": "bump"},
    )
    with pytest.raises(FaultConflict, match="n1 is already under clock"):
        nemesis.clock("n1", bump_s=5.0)
    (ended,) = nemesis.heal_clock()
    assert ended.id == event.id and clock(nemesis, "n1").offset() == 0.0


def test_drift_and_strobe_move_the_file_until_healed(nemesis: Nemesis) -> None:
    nemesis.clock("n2", drift=10.0)
    wait_until(lambda: clock(nemesis, "n2").offset() >= 1.0, timeout=5, interval=0.02, what="n2 drifting")
    nemesis.heal_clock()
    assert clock(nemesis, "n2").offset() == 0.0
    nemesis.clock("n3", strobe=(5.0, 0.05))
    seen: set[float] = set()
    wait_until(lambda: seen.add(clock(nemesis, "n3").offset()) or {0.0, 5.0} <= seen, timeout=5, interval=0.01,
               what="n3 strobing")  # fmt: skip
    nemesis.heal()  # heal: all stops the strobe too
    assert clock(nemesis, "n3").offset() == 0.0
    assert all(clock(nemesis, n.name).offset() == 0.0 for n in nemesis.run.nodes)


def test_a_topology_with_a_real_clock_refuses_clock_faults(runtime: FakeRuntime, tmp_path: Path) -> None:
    topology = fake_topology()
    scenario = Scenario.model_validate({
        "name": "c", "systems": ["fake"], "workload": {"fake": {"type": "sql-set"}},
        "steps": [{"clock": {"target": "n1", "bump": "-30s"}}, {"clock": {"target": "n9", "drift": 1}},
                  {"clock": {"target": "all", "bump": "1s"}}],
    })  # fmt: skip
    problems = check_pair(scenario, topology, Source("c.yaml"))
    assert any("steps[0].clock: clock needs the nodes under libfaketime: add `clock: faketime` to topology "
               "fake-3" in p for p in problems), problems  # fmt: skip
    fake = check_pair(scenario, fake_topology(clock="faketime"), Source("c.yaml"))
    assert any("steps[1].clock.target: unknown node or role 'n9'" in p for p in fake), fake
    assert any("steps[2].clock: n1 is already under clock since steps[0]" in p for p in fake), fake
    run = up(topology, runtime)
    try:
        with pytest.raises(InputError, match="clock: faketime"):
            Nemesis(system_for(run, runtime), events=tmp_path / "e.jsonl").clock("n1", bump_s=1.0)
    finally:
        down(run.id, runtime)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"target": "n1"}, "give exactly one of bump, drift, strobe (got none)"),
        (
            {"target": "n1", "bump": "1s", "drift": 0.1},
            "give exactly one of bump, drift, strobe (got bump, drift)",
        ),
        ({"target": "n1", "bump": "soon"}, "expected a duration"),
        ({"target": "n1", "drift": -1.5}, "greater than or equal to -0.99"),
        ({"target": "n1", "strobe": {"delta": "5s", "period": "1ms"}}, "must be at least 10ms"),
    ],
)
def test_bad_clock_faults_are_refused(doc: dict[str, object], message: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_step({"clock": doc})
    assert str(refused.value).startswith("step.clock") and message in str(refused.value)


@pytest.mark.parametrize(
    "doc",
    [
        {"target": "n1", "bump": "-30s"},
        {"target": "primary", "bump": "+1.5s"},
        {"target": "n2", "drift": 0.5},
        {"target": "all", "strobe": {"delta": "-5s", "period": "200ms"}},
    ],
)
def test_clock_steps_round_trip(doc: dict[str, object]) -> None:
    step = parse_step({"clock": doc})
    assert isinstance(step, ClockStep) and step.claims() == {("clock", doc["target"])}
    assert step_to_yaml(step) == {"clock": doc} and parse_step(step_to_yaml(step)) == step
