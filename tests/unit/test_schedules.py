"""Generated fault schedules (``harness.schedules``): every drawn schedule validates for its topology, fits
its budget, never claims a (mechanism, target) twice, ends healed and round-trips through YAML; the
strategies shrink towards fewer, shorter, simpler faults and work in anyone's own ``@given`` test."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from harness.model.faults import (
    ClockStep,
    CrashAllStep,
    DiskStep,
    HealStep,
    KillStep,
    LinkStep,
    PartitionStep,
    PauseStep,
    PowerLossStep,
    ProcessStep,
    RestartStep,
    ResumeStep,
    StartStep,
    StepBase,
    StopStep,
    WaitStep,
    WipeStep,
    parse_step,
    step_to_yaml,
)
from harness.model.scenario import Scenario
from harness.model.topology import TopologyBase
from harness.plan import Source, check_pair, validate_pair
from harness.schedules import (
    Episode,
    fault_kinds,
    faults,
    scenario_doc,
    scenario_for,
    scenarios,
    schedule_duration_s,
    schedules,
    timeline,
)
from harness.specs import load_topology
from harness.systems.capabilities import Capability
from harness.systems.registry import SYSTEMS

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY_FILES = sorted((ROOT / "topologies").glob("*.yaml"))
TOPOLOGIES = {path.stem: load_topology(path) for path in TOPOLOGY_FILES}
GALERA = TOPOLOGIES["galera-3"]
WORKLOADS = {
    "galera": {"type": "sql-set"},
    "rabbitmq": {"type": "amqp-queue"},
    "mmm": {"type": "sql-set"},
    "mysql-async": {"type": "sql-set"},
    "openstack": {"type": "openstack-boot"},
    "ndb": {"type": "sql-set"},
}
FAULT_STEPS = (PartitionStep, LinkStep, KillStep, PauseStep, StopStep, RestartStep, CrashAllStep)


def simulate(steps: list[StepBase], nodes: list[str]) -> set[tuple[str, str]]:
    """Apply ``steps`` to a claim set (a role or group target taken as any node: every node); assert no
    claim is taken twice and no node is under two process faults at once. Returns what is left held."""
    held: set[tuple[str, str]] = set()

    def on(target: str) -> list[str]:
        return [target] if target in nodes else list(nodes)

    for i, step in enumerate(steps):
        claims: set[tuple[str, str]] = set()
        if isinstance(step, PartitionStep | LinkStep):
            claims = step.claims()
        elif isinstance(step, CrashAllStep):
            claims = {("process", n) for n in nodes}
        elif isinstance(step, ClockStep):
            claims = {("clock", n) for n in on(step.target)}
        elif isinstance(step, KillStep | StopStep | PauseStep | PowerLossStep | DiskStep):
            claims = {(step.mechanism, n) for n in on(step.target)}
        elif isinstance(step, RestartStep | WipeStep):
            busy = {n for (m, n) in held if m in ("process", "freezer")}
            assert not busy & set(on(step.target)), f"steps[{i}]: {step.kind} of a node under a fault"
        elif isinstance(step, StartStep | ResumeStep):
            gone = {(step.mechanism, n) for n in on(step.target)}
            held -= gone
        elif isinstance(step, HealStep):
            prefix = {
                "all": "",
                "partition": "iptables",
                "links": "toxiproxy:",
                "disk": "disk",
                "clock": "clock",
            }[step.heal]
            held = {c for c in held if not c[0].startswith(prefix)}
        else:
            assert isinstance(step, WaitStep)
        assert not claims & held, f"steps[{i}] {step_to_yaml(step)}: claims {sorted(claims & held)} again"
        if isinstance(step, ProcessStep | CrashAllStep | PowerLossStep | DiskStep):
            nodes_under = [n for (m, n) in held | claims if m in ("process", "freezer", "disk")]
            assert len(nodes_under) == len(set(nodes_under)), f"steps[{i}]: a node under two process faults"
        held |= claims
    return held


def check_schedule(topology: TopologyBase, steps: list[StepBase], budget_s: float, max_steps: int) -> None:
    scenario = scenario_for(topology, steps, WORKLOADS[topology.system], settle_s=3.0)
    assert check_pair(scenario, topology, Source.of(scenario)) == []
    validate_pair(scenario, topology)
    assert schedule_duration_s(steps) <= budget_s + 1e-9
    assert scenario.duration_s <= budget_s + 3.0 + 1e-9
    assert 1 <= len(steps) <= max_steps
    assert simulate(steps, topology.node_names) == set(), "the schedule must end healed"
    assert all(not (isinstance(s, WaitStep) and s.wait == 0) for s in steps[:-1])
    # replays: the file form parses back to equal steps
    assert [parse_step(step_to_yaml(s)) for s in steps] == steps
    assert Scenario.model_validate(scenario_doc(scenario)) == scenario


# ------------------------------------------------------------------------------------------ every topology
@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_drawn_schedule_validates_fits_and_ends_healed(name: str, data: st.DataObject) -> None:
    topology = TOPOLOGIES[name]
    budget = data.draw(st.sampled_from([10.0, 30.0, 90.0]), label="budget")
    max_steps = data.draw(st.sampled_from([4, 12, 40]), label="max_steps")
    steps = data.draw(schedules(topology, budget_s=budget, max_steps=max_steps), label="steps")
    check_schedule(topology, steps, budget, max_steps)


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_every_fault_the_system_allows_is_drawn(name: str) -> None:
    topology = TOPOLOGIES[name]
    for kind in fault_kinds(topology):
        found = find(faults(topology), lambda s, kind=kind: s.kind == kind,
                     settings=settings(database=None, max_examples=2000))  # fmt: skip
        assert found.kind == kind
    has_mesh = SYSTEMS[topology.system].has(Capability.PEER_MESH)
    assert ("partition" in fault_kinds(topology)) is has_mesh
    lazy = topology.storage == "lazyfs"  # power loss and disk faults need the storage layer
    assert ("power_loss" in fault_kinds(topology)) is lazy and ("disk" in fault_kinds(topology)) is lazy
    assert ("clock" in fault_kinds(topology)) is (topology.clock == "faketime")


def test_kinds_restrict_what_is_drawn() -> None:
    only_partitions = schedules(GALERA, kinds=["partition"])
    steps = find(only_partitions, lambda s: len(s) > 2, settings=settings(database=None))
    assert {type(s) for s in steps} <= {PartitionStep, WaitStep, HealStep}
    latency = find(schedules(GALERA, kinds=["latency"]), lambda s: any(isinstance(x, LinkStep) for x in s),
                   settings=settings(database=None))  # fmt: skip
    assert {s.link.kind for s in latency if isinstance(s, LinkStep)} == {"latency"}
    with pytest.raises(ValueError, match="cannot do: partition"):
        fault_kinds(TOPOLOGIES["mmm-2"], ["partition"])
    with pytest.raises(ValueError, match="unknown fault kind"):
        fault_kinds(GALERA, ["nap"])


# ------------------------------------------------------------------------------------------ the time line
def ep(doc: dict[str, object], hold: float, after: float) -> Episode:
    return Episode(parse_step(doc), hold, after)


def yaml(steps: list[StepBase]) -> list[dict[str, object]]:
    return [step_to_yaml(s) for s in steps]


def test_overlapping_faults_with_different_claims_interleave_and_heal() -> None:
    steps = timeline(GALERA, [ep({"partition": {"shape": "halves"}}, 4, 1), ep({"kill": "n1"}, 5, 1)],
                     tail_s=2)  # fmt: skip
    assert yaml(steps) == [
        {"partition": {"shape": "halves"}},
        {"wait": "1s"},
        {"kill": "n1"},
        {"wait": "3s"},
        {"heal": "partition"},
        {"wait": "2s"},
        {"start": "n1"},
        {"wait": "2s"},
    ]


def test_an_episode_on_a_claimed_target_is_left_out() -> None:
    drawn = [ep({"partition": {"shape": "halves"}}, 4, 1), ep({"partition": {"isolate": "n2"}}, 1, 1),
             ep({"pause": "n2"}, 1, 0), ep({"kill": "n2"}, 1, 0), ep({"kill": "primary"}, 1, 0)]  # fmt: skip
    steps = timeline(GALERA, drawn, tail_s=1)
    assert yaml(steps) == [
        {"partition": {"shape": "halves"}},
        {"wait": "1s"},
        {"pause": "n2"},
        {"wait": "1s"},
        {"resume": "n2"},
        {"wait": "2s"},
        {"heal": "partition"},
        {"wait": "1s"},
    ]


def test_a_role_target_is_healed_on_every_node_and_broad_heals_are_not_repeated() -> None:
    drawn = [ep({"kill": "primary"}, 3, 0), ep({"link": {"target": "n1", "kind": "down"}}, 1, 0),
             ep({"link": {"target": "n2", "kind": "stall"}}, 2, 0)]  # fmt: skip
    steps = timeline(GALERA, drawn, tail_s=0)
    assert yaml(steps) == [
        {"kill": "primary"},
        {"link": {"kind": "down", "target": "n1"}},
        {"link": {"kind": "stall", "target": "n2", "direction": "both", "toxicity": 1.0}},
        {"wait": "1s"},
        {"heal": "links"},  # heals both links: the second `heal: links` is not written
        {"wait": "2s"},
        {"start": "all"},
    ]


def test_the_budget_and_max_steps_leave_episodes_out() -> None:
    drawn = [ep({"kill": "n1"}, 10, 12), ep({"kill": "n2"}, 10, 0)]
    assert schedule_duration_s(timeline(GALERA, drawn, tail_s=5, budget_s=25)) == 15
    assert len(timeline(GALERA, drawn, tail_s=5, budget_s=40)) == 8
    assert len(timeline(GALERA, drawn, tail_s=5, max_steps=6)) == 4
    assert yaml(timeline(GALERA, drawn, tail_s=5, budget_s=4)) == [{"wait": "5s"}]  # nothing fits


def test_restart_only_when_nothing_else_is_in_effect_and_at_least_one_node_stays_up() -> None:
    drawn = [ep({"link": {"target": "n1", "kind": "down"}}, 2, 3), ep({"restart": "n1"}, 1, 0),
             ep({"kill": "n1"}, 5, 0), ep({"restart": "n3"}, 1, 0), ep({"stop": "n2"}, 5, 0),
             ep({"pause": "n3"}, 5, 0)]  # fmt: skip
    assert yaml(timeline(GALERA, drawn, tail_s=1)) == [
        {"link": {"kind": "down", "target": "n1"}},
        {"wait": "2s"},
        {"heal": "links"},
        {"wait": "1s"},
        {"restart": "n1"},  # nothing in effect: restarted (it holds nothing once back)
        {"kill": "n1"},
        # restart n3: n1 is down; pause n3: n1 and n2 are down, n3 must stay up
        {"stop": "n2"},
        {"wait": "5s"},
        {"start": "n1"},
        {"start": "n2"},
        {"wait": "1s"},
    ]


# ------------------------------------------------------------------------------------------ shrinking
def test_shrinks_to_the_simplest_schedule_that_still_shows_it() -> None:
    quiet = settings(database=None, max_examples=500)
    killing = find(schedules(GALERA), lambda s: any(isinstance(x, KillStep) for x in s), settings=quiet)
    assert yaml(killing) == [{"kill": "n1"}, {"wait": "1s"}, {"start": "n1"}, {"wait": "2s"}]
    two = find(schedules(GALERA), lambda s: sum(isinstance(x, FAULT_STEPS) for x in s) >= 2, settings=quiet)
    assert sum(isinstance(x, FAULT_STEPS) for x in two) == 2 and len(two) == 6
    assert [s for s in yaml(two) if "wait" in s] == [{"wait": "1s"}, {"wait": "2s"}]


# ------------------------------------------------------------------------------------------ in your own tests
@settings(max_examples=50, deadline=None)
@given(schedules(GALERA, budget_s=30, max_steps=10))
def test_a_users_own_given_test(steps: list[StepBase]) -> None:
    assert schedule_duration_s(steps) <= 30
    assert len(steps) <= 10
    assert simulate(steps, GALERA.node_names) == set()


@settings(max_examples=50, deadline=None)
@given(
    scenarios(TOPOLOGIES["rabbitmq-3"], {"type": "amqp-queue", "clients": 2}, budget_s=40, expect={"lost": 0})
)
def test_generated_scenarios_validate_and_fit(scenario: Scenario) -> None:
    topology = TOPOLOGIES["rabbitmq-3"]
    validate_pair(scenario, topology)
    assert scenario.duration_s <= 40
    assert scenario.workload["rabbitmq"].clients == 2
    assert scenario.expect == {"lost": 0}
    assert Scenario.model_validate(scenario_doc(scenario)) == scenario


def test_workload_per_system_or_for_the_topologys_system() -> None:
    steps: list[StepBase] = [WaitStep(wait=1.0)]
    a = scenario_for(GALERA, steps, {"type": "sql-bank", "accounts": 3})
    b = scenario_for(GALERA, steps, {"galera": {"type": "sql-bank", "accounts": 3}})
    assert a == b and a.workload["galera"].accounts == 3
