"""Generated fault schedules: hypothesis strategies for timelines a topology's system can take, that shrink.

``schedules(topology)`` draws a list of typed steps (``harness.model.faults``) from every fault the
topology's system allows (its capabilities: a peer mesh → partitions, node processes → kill / pause /
stop / restart / crash-all, its storage layer → power loss / disk faults, its links → every link fault kind, a primary → role targets), and
``scenarios(topology, workload=...)`` wraps one in a ``Scenario``. Use them in your own tests::

    from hypothesis import given
    from harness.schedules import schedules

    @given(schedules(load_topology("topologies/galera-3.yaml"), budget_s=60))
    def test_my_property(steps): ...

A schedule is drawn as a list of *episodes*, each a fault, how long it is held and how long after its
start the next episode starts (``after_s`` below ``hold_s``: the two overlap), plus a final wait. It is
laid out on a time line (``timeline``): every fault is followed, ``hold_s`` later, by the step that undoes
it (``heal: partition``, ``heal: links``, ``start``, ``resume``); waits fill the gaps; an episode that
would act on something a fault still in effect holds (or that would not fit the budget or ``max_steps``)
is left out, and the next one starts where it would have. So a schedule always ends healed, never puts a
second fault on a claimed (mechanism, target) before healing it, and hypothesis shrinks it by deleting
episodes, shortening waits and holds, and moving each choice towards the simplest alternative (faults
are ordered simplest first: kill, pause, stop, restart, partition, link faults, crash-all, and on a
topology with ``storage: lazyfs`` power loss and disk faults, with ``clock: faketime`` clock faults).

The rules are stricter than validation (``harness.plan``) so that a schedule also runs meaningfully:
at most one process fault per node at a time and at least one node never under one (``crash_all`` is
the fault that takes every node down), a role target (``primary``) only while no process fault is in
effect (which node it names is known only on a running cluster), ``restart`` (which waits until the
cluster is healthy) only while nothing else is in effect. Group targets (``random``, ``minority``) are
not drawn: a replay must hit the same nodes.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from harness.model.faults import (
    LINK_FAULTS,
    ClockStep,
    CrashAllStep,
    DiskStep,
    HealStep,
    Isolate,
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
from harness.model.scenario import Scenario, WorkloadSpec
from harness.model.topology import TopologyBase
from harness.systems.capabilities import Capability
from harness.systems.info import SystemInfo
from harness.systems.registry import link_names, mesh_parts, system_info

__all__ = [
    "FAULTS",
    "LINK_KINDS",
    "Episode",
    "episodes",
    "fault_kinds",
    "faults",
    "scenario_doc",
    "scenario_for",
    "scenarios",
    "schedule_duration_s",
    "schedules",
    "timeline",
]

# simplest first: hypothesis shrinks a one_of towards its first alternatives
FAULTS = (
    "kill",
    "pause",
    "stop",
    "restart",
    "partition",
    "link",
    "crash_all",
    "power_loss",
    "disk",
    "clock",
    "wipe",
)
LINK_KINDS = ("down", "latency", "stall", "timeout", "reset_peer", "bandwidth", "slow_close", "limit_data",
              "slicer")  # fmt: skip
assert set(LINK_KINDS) == set(LINK_FAULTS)
TICK_S = 0.5  # waits and holds are multiples of this: they read (and round-trip) as 1.5s, 500ms…


@dataclass(frozen=True)
class Episode:
    """One fault of a schedule: applied, held ``hold_s``, healed; the next episode starts ``after_s`` after
    this one started (so episodes overlap when ``after_s < hold_s``)."""

    fault: StepBase
    hold_s: float
    after_s: float


# ------------------------------------------------------------------------------------------ capabilities
def fault_kinds(topology: TopologyBase, kinds: Collection[str] | None = None) -> list[str]:
    """The fault kinds (``FAULTS``; ``kinds`` may also name link fault kinds such as ``latency``) the
    topology's system allows, simplest first. ValueError for a kind that does not exist or that the
    system cannot do."""
    info = system_info(topology.system)
    possible = [k for k in FAULTS if _allows(info, topology, k)]
    if kinds is None:
        return possible
    wanted = set(kinds)
    unknown = sorted(wanted - set(FAULTS) - set(LINK_KINDS))
    if unknown:
        raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}, expected: "
                         f"{', '.join([*FAULTS, *LINK_KINDS])}")  # fmt: skip
    links = wanted & set(LINK_KINDS)
    if links:
        wanted = (wanted - links) | {"link"}
    impossible = sorted(wanted - set(possible))
    if impossible:
        raise ValueError(f"{topology.name} ({topology.system}) cannot do: {', '.join(impossible)}")
    return [k for k in possible if k in wanted]


def _allows(info: SystemInfo, topology: TopologyBase, kind: str) -> bool:
    n = len(topology.node_names)
    if kind == "partition":
        return info.has(Capability.PEER_MESH) and any(len(p) >= 2 for p in mesh_parts(topology))
    if kind == "link":
        return bool(link_names(topology))
    if kind in ("kill", "pause", "stop"):
        return info.has(Capability.PROCESSES) and (n >= 2 or info.has(Capability.PRIMARY))
    if kind in ("power_loss", "disk"):  # the harness's storage layer under each node (storage: lazyfs)
        return info.has(Capability.PROCESSES) and topology.storage == "lazyfs"
    if kind == "clock":  # the nodes under libfaketime (clock: faketime)
        return topology.clock == "faketime"
    if kind == "wipe":  # a node back empty needs another to be seeded from
        return info.has(Capability.PROCESSES) and info.has(Capability.RESEED) and n >= 2
    return info.has(Capability.PROCESSES)  # restart, crash_all


def _link_kinds(kinds: Collection[str] | None) -> list[str]:
    if kinds is None or not set(kinds) & set(LINK_KINDS):
        return list(LINK_KINDS)
    return [k for k in LINK_KINDS if k in kinds]


# ------------------------------------------------------------------------------------------ faults
def _ticks(low_s: float, high_s: float) -> st.SearchStrategy[float]:
    low, high = round(low_s / TICK_S), round(high_s / TICK_S)
    if high < low:
        raise InvalidArgument(f"empty range of seconds [{low_s}, {high_s}]")
    return st.integers(low, high).map(lambda t: t * TICK_S)


def _step(doc: dict[str, Any]) -> StepBase:
    return parse_step(doc, where="generated")


def _process_targets(info: SystemInfo, nodes: list[str]) -> list[str]:
    roles = [info.roles[0]] if info.has(Capability.PRIMARY) and info.roles else []
    return [*nodes, *roles] if len(nodes) >= 2 else roles  # one node down of one: use the role only


def _partitions_of(info: SystemInfo, topology: TopologyBase) -> st.SearchStrategy[StepBase]:
    """Partitions of the topology's nodes; of a composite (a database and a broker), partitions within one
    of its meshed clusters at a time (groups of its nodes: the other cluster stays whole)."""
    if topology.parts() == [topology]:
        return _partitions(info, list(topology.node_names))
    meshed = [nodes for nodes in mesh_parts(topology) if len(nodes) >= 2]
    return st.one_of([_partitions(info, nodes, groups_only=True) for nodes in meshed])


def _partitions(
    info: SystemInfo, nodes: list[str], *, groups_only: bool = False
) -> st.SearchStrategy[StepBase]:
    n = len(nodes)
    choices: list[st.SearchStrategy[dict[str, Any]]] = [
        st.just({"shape": "halves"}),
        st.sampled_from(nodes).map(lambda node: {"isolate": node}),
    ]
    if info.has(Capability.PRIMARY) and info.roles:
        choices.append(st.just({"isolate": info.roles[0]}))
    if n >= 3:
        choices.append(st.just({"shape": "bridge"}))
    if n >= 4:
        choices.append(st.just({"shape": "majorities_ring"}))

    @st.composite
    def groups(draw: st.DrawFn) -> dict[str, Any]:
        order = draw(st.permutations(nodes))
        cuts = draw(st.integers(1, 2 ** (n - 1) - 1))  # a bit per gap between neighbours: cut there
        parts: list[list[str]] = [[order[0]]]
        for i, node in enumerate(order[1:]):
            if cuts >> i & 1:
                parts.append([])
            parts[-1].append(node)
        return {"groups": parts}

    @st.composite
    def one_way(draw: st.DrawFn) -> dict[str, Any]:
        src = draw(st.sampled_from(nodes))
        others = [x for x in nodes if x != src]
        dst = draw(st.lists(st.sampled_from(others), min_size=1, max_size=len(others), unique=True))
        return {"one_way": {"from": src, "to": dst[0] if len(dst) == 1 else sorted(dst)}}

    if groups_only:  # shapes over every node of the run would cut the other clusters too
        return st.one_of(groups(), one_way()).map(lambda shape: _step({"partition": shape}))
    choices += [groups(), one_way(), st.just({"shape": "random_halves"})]
    return st.one_of(choices).map(lambda shape: _step({"partition": shape}))


def _direction(default: str) -> st.SearchStrategy[str]:
    return st.sampled_from([default, *(d for d in ("downstream", "upstream", "both") if d != default)])


def _links(targets: list[str], kinds: list[str]) -> st.SearchStrategy[StepBase]:
    toxicity = st.sampled_from([1.0, 0.5])
    params: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "down": st.just({}),
        "latency": st.fixed_dictionaries({"latency_ms": st.integers(50, 2000), "jitter_ms": st.integers(0, 500),
                                          "direction": _direction("downstream"), "toxicity": toxicity}),
        "stall": st.fixed_dictionaries({"direction": _direction("both"), "toxicity": toxicity}),
        "timeout": st.fixed_dictionaries({"timeout_ms": st.integers(0, 5000), "direction": _direction("downstream"),
                                          "toxicity": toxicity}),
        "reset_peer": st.fixed_dictionaries({"timeout_ms": st.integers(0, 5000),
                                             "direction": _direction("downstream"), "toxicity": toxicity}),
        "bandwidth": st.fixed_dictionaries({"rate_kbps": st.integers(1, 1000), "direction": _direction("downstream"),
                                            "toxicity": toxicity}),
        "slow_close": st.fixed_dictionaries({"delay_ms": st.integers(0, 5000), "direction": _direction("downstream"),
                                             "toxicity": toxicity}),
        "limit_data": st.fixed_dictionaries({"bytes": st.integers(0, 100_000),
                                             "direction": _direction("downstream"), "toxicity": toxicity}),
        "slicer": st.integers(1, 1024).flatmap(lambda size: st.fixed_dictionaries({
            "average_size": st.just(size), "size_variation": st.integers(0, size - 1),
            "delay_us": st.integers(0, 10_000), "direction": _direction("downstream"), "toxicity": toxicity})),
    }  # fmt: skip

    def one(kind: str) -> st.SearchStrategy[StepBase]:
        return st.tuples(st.sampled_from(targets), params[kind]).map(
            lambda t: _step({"link": {"target": t[0], "kind": kind, **t[1]}})
        )

    return st.one_of([one(k) for k in kinds]).map(lambda step: step)  # mapped: not flattened into faults()


def _disks(nodes: list[str]) -> st.SearchStrategy[StepBase]:
    ops = st.lists(st.sampled_from(["fsync", "write", "create", "read"]), min_size=1, max_size=4, unique=True)
    failing = st.fixed_dictionaries({"kind": st.sampled_from(["eio", "enospc"]), "ops": ops})
    slow = st.fixed_dictionaries({"kind": st.just("slow"), "ops": ops, "latency_ms": st.integers(1, 2000)})
    return st.tuples(st.sampled_from(nodes), st.one_of(failing, slow)).map(
        lambda t: _step({"disk": {"target": t[0], **t[1]}})
    )


def _clocks(nodes: list[str]) -> st.SearchStrategy[StepBase]:
    seconds = st.integers(1, 120).flatmap(lambda s: st.sampled_from([s, -s]))
    modes = st.one_of(
        seconds.map(lambda s: {"bump": f"{s:+d}s"}),
        st.sampled_from([0.5, 2.0, -0.5]).map(lambda r: {"drift": r}),
        st.tuples(seconds, st.sampled_from(["100ms", "500ms", "1s"])).map(
            lambda t: {"strobe": {"delta": f"{t[0]:+d}s", "period": t[1]}}
        ),
    )
    return st.tuples(st.sampled_from(nodes), modes).map(lambda t: _step({"clock": {"target": t[0], **t[1]}}))


def faults(topology: TopologyBase, *, kinds: Collection[str] | None = None) -> st.SearchStrategy[StepBase]:
    """One fault step the topology's system allows (of ``kinds``: see ``fault_kinds``), simplest first."""
    info = system_info(topology.system)
    nodes = list(topology.node_names)
    chosen = fault_kinds(topology, kinds)
    if not chosen:
        raise InvalidArgument(f"{topology.name}: no fault kind to draw from")
    targets = _process_targets(info, nodes)
    by_kind: dict[str, st.SearchStrategy[StepBase]] = {
        "kill": st.sampled_from(targets).map(lambda t: _step({"kill": t})),
        "pause": st.sampled_from(targets).map(lambda t: _step({"pause": t})),
        "stop": st.sampled_from(targets).map(lambda t: _step({"stop": t})),
        "restart": st.sampled_from(targets or nodes).map(lambda t: _step({"restart": t})),
        "partition": _partitions_of(info, topology) if "partition" in chosen else st.nothing(),
        "link": _links(link_names(topology), _link_kinds(kinds)) if "link" in chosen else st.nothing(),
        "crash_all": _ticks(0.0, 2.0).map(lambda w: _step({"crash_all": {"window": w}})),
        "power_loss": st.one_of(
            st.sampled_from(nodes).map(lambda t: _step({"power_loss": t})),
            _ticks(0.0, 2.0).map(lambda w: _step({"power_loss": {"target": "all", "window": w}})),
        ),
        "disk": _disks(nodes),
        "clock": _clocks(nodes),
        "wipe": st.sampled_from(targets or nodes).map(lambda t: _step({"wipe": t})),
    }
    return st.one_of([by_kind[k] for k in chosen])


def episodes(
    topology: TopologyBase,
    *,
    kinds: Collection[str] | None = None,
    hold_s: tuple[float, float] = (1.0, 15.0),
    after_s: tuple[float, float] = (0.0, 15.0),
) -> st.SearchStrategy[Episode]:
    """One episode: a fault, how long it is held, when the next episode starts (from this one's start)."""
    return st.builds(Episode, faults(topology, kinds=kinds), _ticks(*hold_s), _ticks(*after_s))


# ------------------------------------------------------------------------------------------ the time line
@dataclass
class _Active:
    kind: str  # partition / link / process / freezer
    target: str  # a node, "*" (a role or every node: which ones is known on the cluster), a link claim
    token: int


@dataclass
class _State:
    nodes: list[str]
    max_down: int
    active: dict[int, _Active] = field(default_factory=dict)

    def of(self, kind: str) -> list[_Active]:
        return [a for a in self.active.values() if a.kind == kind]

    def processes(self) -> list[_Active]:
        # a failing disk can take its node down (InnoDB aborts on a failed fsync): counted as one
        return [a for a in self.active.values() if a.kind in ("process", "freezer", "disk")]

    def allows(self, step: StepBase) -> bool:
        procs = self.processes()
        if isinstance(step, PartitionStep):
            role = isinstance(step.partition, Isolate) and step.partition.isolate not in self.nodes
            return not self.of("partition") and not (role and procs)
        if isinstance(step, LinkStep):
            return _link_claim(step) not in {a.target for a in self.of("link")}
        if isinstance(step, RestartStep | WipeStep):
            return not self.active
        if isinstance(step, ClockStep):
            return step.target not in {a.target for a in self.of("clock")}
        if isinstance(step, CrashAllStep) or (isinstance(step, PowerLossStep) and step.target == "all"):
            return not procs
        assert isinstance(step, ProcessStep | PowerLossStep | DiskStep)
        if step.target not in self.nodes:
            return not procs
        busy = {a.target for a in procs}
        return "*" not in busy and step.target not in busy and len(busy) < self.max_down

    def apply(self, step: StepBase, token: int) -> StepBase | None:
        """Put ``step`` in effect; the step that will undo it (None: nothing to undo)."""
        if isinstance(step, PartitionStep):
            self.active[token] = _Active("partition", "", token)
            return HealStep(heal="partition")
        if isinstance(step, LinkStep):
            self.active[token] = _Active("link", _link_claim(step), token)
            return HealStep(heal="links")
        if isinstance(step, ClockStep):
            self.active[token] = _Active("clock", step.target, token)
            return HealStep(heal="clock")
        if isinstance(step, DiskStep):
            self.active[token] = _Active("disk", step.target, token)
            return HealStep(heal="disk")
        if isinstance(step, CrashAllStep) or (isinstance(step, PowerLossStep) and step.target == "all"):
            self.active[token] = _Active("process", "*", token)
            return StartStep(start="all")
        if isinstance(step, RestartStep | WipeStep):
            return None  # back by itself (a wipe here always returns: `return: true`)
        assert isinstance(step, KillStep | StopStep | PauseStep | PowerLossStep)
        target = step.target if step.target in self.nodes else "*"
        freezer = isinstance(step, PauseStep)
        self.active[token] = _Active("freezer" if freezer else "process", target, token)
        heal_target = step.target if target != "*" else "all"
        return ResumeStep(resume=heal_target) if freezer else StartStep(start=heal_target)

    def undo(self, heal: StepBase) -> None:
        """What ``heal`` ends: every fault of its mechanism (on its target)."""
        if isinstance(heal, HealStep):
            kinds = {"all": None, "partition": {"partition"}, "links": {"link"}, "disk": {"disk"},
                     "clock": {"clock"}}[heal.heal]  # fmt: skip
            gone = [t for t, a in self.active.items() if kinds is None or a.kind in kinds]
        else:
            assert isinstance(heal, StartStep | ResumeStep)
            kind = "freezer" if isinstance(heal, ResumeStep) else "process"
            gone = [t for t, a in self.active.items() if a.kind == kind
                    and (heal.target == "all" or a.target == heal.target)]  # fmt: skip
        for token in gone:
            del self.active[token]


def _link_claim(step: LinkStep) -> str:
    return f"{step.link.kind}@{step.link.target}"


def timeline(
    topology: TopologyBase,
    drawn: Sequence[Episode],
    *,
    tail_s: float = 0.0,
    budget_s: float = float("inf"),
    max_steps: int = 10_000,
    max_down: int | None = None,
) -> list[StepBase]:
    """The steps of ``drawn`` laid out in time: each fault, its heal ``hold_s`` later, waits between, a
    final wait of ``tail_s``. An episode that would conflict with a fault in effect, or not fit
    ``budget_s`` (waits plus crash-all windows) or ``max_steps``, is left out. Ends healed."""
    nodes = list(topology.node_names)
    state = _State(nodes, max(1, len(nodes) - 1) if max_down is None else max_down)
    steps: list[StepBase] = []
    pending: list[tuple[float, int, StepBase]] = []  # (when, token, heal)
    now = start = windows = 0.0

    def advance(to: float) -> None:
        nonlocal now
        if to > now:
            steps.append(WaitStep(wait=round(to - now, 6)))
            now = to

    def flush(until: float) -> None:
        while pending and pending[0][0] <= until:
            when, token, heal = heapq.heappop(pending)
            if token not in state.active:
                continue  # a broader heal (heal: links, start: all) has undone it already
            advance(when)
            steps.append(heal)
            state.undo(heal)

    for token, ep in enumerate(drawn):
        flush(start)
        if not state.allows(ep.fault):
            continue
        window = ep.fault.crash_all.window if isinstance(ep.fault, CrashAllStep) else 0.0
        hold = 0.0 if isinstance(ep.fault, RestartStep) else ep.hold_s
        end = max([start, start + hold, *(p[0] for p in pending)])
        if end + tail_s + windows + window > budget_s + 1e-9:
            continue
        upper = len(steps) + (start > now) + 1 + 2 * (len(pending) + 1) + (tail_s > 0)
        if upper > max_steps:
            continue
        advance(start)
        steps.append(ep.fault)
        windows += window
        heal = state.apply(ep.fault, token)
        if heal is not None:
            heapq.heappush(pending, (start + hold, token, heal))
        start += ep.after_s
    flush(float("inf"))
    assert not state.active
    if tail_s > 0 or not steps:
        steps.append(WaitStep(wait=tail_s))
    return steps


def schedule_duration_s(steps: Sequence[StepBase]) -> float:
    """How long a schedule takes: its waits plus the crash-all windows (restarts wait for health: not
    counted)."""
    return sum(s.wait for s in steps if isinstance(s, WaitStep)) + sum(
        s.crash_all.window for s in steps if isinstance(s, CrashAllStep)
    )


# ------------------------------------------------------------------------------------------ strategies
def schedules(
    topology: TopologyBase,
    *,
    budget_s: float = 60.0,
    max_steps: int = 30,
    kinds: Collection[str] | None = None,
    max_episodes: int = 8,
    hold_s: tuple[float, float] = (1.0, 15.0),
    after_s: tuple[float, float] = (0.0, 15.0),
    tail_s: tuple[float, float] = (2.0, 5.0),
    max_down: int | None = None,
) -> st.SearchStrategy[list[StepBase]]:
    """Fault timelines for ``topology``: at most ``max_steps`` steps lasting at most ``budget_s`` seconds
    (waits and crash-all windows), every fault healed by the end. ``kinds``: restrict to these fault kinds
    (``FAULTS`` and ``LINK_KINDS``), default every one the topology's system allows. ``max_down``: node
    process faults in effect at once (default: all nodes but one)."""
    if budget_s < tail_s[0]:
        raise InvalidArgument(f"budget_s={budget_s} is shorter than the final wait ({tail_s[0]}s)")
    if max_steps < 1:
        raise InvalidArgument("max_steps must be at least 1")
    tail = _ticks(tail_s[0], min(tail_s[1], budget_s))
    episode_lists = st.lists(
        episodes(topology, kinds=kinds, hold_s=hold_s, after_s=after_s), max_size=max_episodes
    )

    def lay_out(drawn_and_tail: tuple[list[Episode], float]) -> list[StepBase]:
        drawn, tail_wait = drawn_and_tail
        return timeline(topology, drawn, tail_s=tail_wait, budget_s=budget_s, max_steps=max_steps,
                        max_down=max_down)  # fmt: skip

    return st.tuples(episode_lists, tail).map(lay_out)


def _workload(topology: TopologyBase, workload: Mapping[str, Any]) -> dict[str, WorkloadSpec]:
    """``{type: ...}`` (for the topology's system) or ``{system: {type: ...}}``."""
    if "type" in workload:
        return {topology.system: WorkloadSpec.model_validate(dict(workload))}
    return {system: WorkloadSpec.model_validate(spec) for system, spec in workload.items()}


def scenario_for(
    topology: TopologyBase,
    steps: Sequence[StepBase],
    workload: Mapping[str, Any],
    *,
    name: str = "generated",
    description: str = "",
    settle_s: float = 3.0,
    expect: Mapping[str, Any] | None = None,
    checks: Mapping[str, Mapping[str, Any]] | None = None,
) -> Scenario:
    """A scenario for ``topology`` running ``steps``; ``workload``: a workload spec (``{type: sql-set, ...}``)
    or one per system."""
    return Scenario(
        name=name,
        description=description,
        systems=[topology.system],
        workload=_workload(topology, workload),
        steps=list(steps),
        settle=settle_s,
        expect=dict(expect or {}),
        checks={k: dict(v) for k, v in (checks or {}).items()},
    )


def scenarios(
    topology: TopologyBase,
    workload: Mapping[str, Any],
    *,
    budget_s: float = 60.0,
    settle_s: float = 3.0,
    name: str = "generated",
    expect: Mapping[str, Any] | None = None,
    checks: Mapping[str, Mapping[str, Any]] | None = None,
    **schedule_options: Any,
) -> st.SearchStrategy[Scenario]:
    """Scenarios for ``topology``: ``workload`` and a generated schedule, lasting at most ``budget_s``
    (``Scenario.duration_s``: settle + waits; crash-all windows counted too). ``schedule_options`` go to
    ``schedules``."""
    _workload(topology, workload)  # bad input now, not at the first draw
    steps = schedules(topology, budget_s=budget_s - settle_s, **schedule_options)
    return steps.map(lambda s: scenario_for(topology, s, workload, name=name, settle_s=settle_s, expect=expect,
                                            checks=checks))  # fmt: skip


def scenario_doc(scenario: Scenario) -> dict[str, Any]:
    """The plain mapping of a scenario file for ``scenario`` (loads back as an equal ``Scenario``)."""
    doc: dict[str, Any] = {"name": scenario.name}
    if scenario.description:
        doc["description"] = scenario.description
    doc["systems"] = list(scenario.systems)
    doc["workload"] = {system: spec.model_dump(mode="json", exclude_defaults=True) | {"type": spec.type}
                       for system, spec in scenario.workload.items()}  # fmt: skip
    doc["settle"] = scenario.model_dump(mode="json", include={"settle"})["settle"]
    doc["steps"] = [step_to_yaml(step) for step in scenario.steps]
    if scenario.checks:
        doc["checks"] = scenario.checks
    if scenario.expect:
        doc["expect"] = scenario.expect
    return doc
