"""Everything ``run`` would refuse, found before anything starts: a scenario alone, and a scenario with a
topology (the pair ``run`` gets).

Each problem is one line, ``FILE:LINE: field: message`` when the scenario came from a file (the line of
the field in question), ``scenario NAME: field: message`` otherwise. All of them are reported at once.

A scenario alone: the systems and workloads it names exist, its checks name known checkers with valid
options. With a topology: a workload for the topology's system that the system can drive; node, role and
link names; what each step needs of the system (a peer mesh for a partition, a primary for a role
target…); partitions the node count allows; and, walking the timeline, no two faults in effect at once
that claim the same target through the same mechanism.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.checkers import CHECKERS, validate_check_options
from harness.errors import InputError
from harness.faults import partition as shapes
from harness.model.faults import (
    GROUP_TARGETS,
    ROLE_TARGETS,
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
    WipeStep,
)
from harness.model.loading import SpecError, line_of, read_yaml
from harness.model.scenario import Scenario, WorkloadSpec
from harness.model.topology import TopologyBase
from harness.systems.balancer_pair import BALANCER_HOSTS
from harness.systems.balancer_pair import ROLE as BALANCER_ROLE
from harness.systems.capabilities import DESCRIPTIONS, Capability
from harness.systems.info import SystemInfo
from harness.systems.registry import SYSTEMS, link_names, mesh_parts
from harness.workloads import WORKLOADS

Loc = tuple[str | int, ...]

__all__ = ["Source", "check_pair", "check_scenario", "checker_names", "validate_pair", "workload_spec"]


@dataclass(frozen=True)
class Source:
    """Where a scenario came from, to name lines in problems (``doc``: its parsed YAML)."""

    label: str
    doc: Any = None

    @classmethod
    def of(cls, scenario: Scenario, path: Path | None = None) -> Source:
        if path is None:
            return cls(f"scenario {scenario.name}")
        try:
            return cls(str(path), read_yaml(path))
        except SpecError:
            return cls(str(path))

    def where(self, loc: Loc) -> str:
        line = line_of(self.doc, list(loc)) if self.doc is not None else None
        return f"{self.label}:{line}" if line else self.label


def _field(loc: Loc) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).removeprefix(".") or "top level"


class _Problems:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.lines: list[tuple[int, str]] = []

    def add(self, loc: Loc, message: str) -> None:
        where = self.source.where(loc)
        line = int(where.rsplit(":", 1)[1]) if where != self.source.label else 0
        self.lines.append((line, f"{where}: {_field(loc)}: {message}"))

    def raise_if_any(self) -> None:
        if self.lines:
            raise SpecError([text for _, text in sorted(self.lines, key=lambda p: p[0])])


# ------------------------------------------------------------------------------------------ alone
def check_scenario(scenario: Scenario, source: Source, problems: _Problems | None = None) -> list[str]:
    """Problems of a scenario by itself (no topology)."""
    own = problems or _Problems(source)
    for i, system in enumerate(scenario.systems):
        if system not in SYSTEMS:
            own.add(("systems", i), f"unknown system {system!r}, expected one of: {', '.join(SYSTEMS)}")
    for system, spec in scenario.workload.items():
        if system not in SYSTEMS:
            own.add(("workload", system), f"unknown system {system!r}, expected one of: {', '.join(SYSTEMS)}")
            continue
        _check_drives(own, system, spec)
    for loc, message in validate_check_options(scenario.checks):
        own.add(tuple(loc), message)
    return [text for _, text in own.lines]


def _check_drives(problems: _Problems, system: str, spec: WorkloadSpec) -> None:
    missing = WORKLOADS[spec.type].requires - SYSTEMS[system].capabilities
    if missing:
        needs = ", ".join(DESCRIPTIONS[c] for c in sorted(missing))
        problems.add(("workload", system, "type"), f"{spec.type} cannot drive {system}: it needs {needs}")


# ------------------------------------------------------------------------------------------ the pair
def check_pair(scenario: Scenario, topology: TopologyBase, source: Source) -> list[str]:
    """Every problem of running ``scenario`` on ``topology`` (the scenario's own ones included)."""
    problems = _Problems(source)
    check_scenario(scenario, source, problems)
    info = SYSTEMS.get(topology.system)
    if info is None:  # a topology model always names a registered system; defensive
        problems.add(("systems",), f"unknown system {topology.system!r}")
        return [text for _, text in problems.lines]
    nodes = topology.node_names
    if topology.system not in scenario.systems:
        problems.add(("systems",), f"this scenario is for {', '.join(scenario.systems)}, not "
                                   f"{topology.system} (topology {topology.name})")  # fmt: skip
    spec = scenario.workload.get(topology.system)
    if spec is None:
        problems.add(("workload",), f"no workload for system {topology.system!r} "
                                    f"(has: {', '.join(scenario.workload) or 'none'})")  # fmt: skip
    else:
        data = topology.data_node_names
        for i, name in enumerate(spec.nodes or []):
            if name in nodes and name not in data:
                problems.add(("workload", topology.system, "nodes", i),
                             f"{name} {_non_data_role(topology)}: it serves no clients; expected one of: "
                             f"{', '.join(data)}")  # fmt: skip
            elif name not in nodes:
                problems.add(("workload", topology.system, "nodes", i),
                             f"unknown node {name!r}, expected one of: {', '.join(data)}")  # fmt: skip
        queue_type = getattr(getattr(topology, "settings", None), "queue_type", None)
        if spec.type == "amqp-queue" and not spec.durable and queue_type == "quorum":
            problems.add(("workload", topology.system, "durable"),
                         f"a quorum queue is always durable: durable: false needs a classic-mirrored topology, "
                         f"not {topology.name}")  # fmt: skip
    _check_steps(problems, scenario.steps, info, nodes, topology)
    return [text for _, text in problems.lines]


def _pair_hint(target: str, topology: TopologyBase) -> str:
    """For a balancer pair's target named on a topology without one: how to get one; else ""."""
    if target not in (*BALANCER_HOSTS, BALANCER_ROLE) or target in topology.helper_target_names:
        return ""
    return (f" ({target} is a balancer pair's, which topology {topology.name} does not have: "
            "settings.balancer: {pair: true} on an MMM, async or Galera topology)")  # fmt: skip


def _non_data_role(topology: TopologyBase) -> str:
    """What a node that serves no clients is on ``topology``: Galera's arbitrator, NDB's management or data
    node (only its SQL nodes take clients)."""
    if topology.system == "galera":
        return "is the arbitrator (garbd)"
    if topology.system == "ndb":
        return "is a management or data node (clients use the SQL nodes)"
    return "holds no data"


def validate_pair(scenario: Scenario, topology: TopologyBase, path: Path | None = None) -> None:
    """``check_pair``, raising SpecError (exit 2) with every problem."""
    problems = check_pair(scenario, topology, Source.of(scenario, path))
    if problems:
        raise SpecError(problems)


def _check_steps(problems: _Problems, steps: Sequence[StepBase], info: SystemInfo, nodes: list[str],
                 topology: TopologyBase) -> None:  # fmt: skip
    helpers = topology.helper_target_names
    targets = [*nodes, *GROUP_TARGETS, *(ROLE_TARGETS if info.has(Capability.PRIMARY) else ()), *helpers]
    links = link_names(topology)
    held: dict[tuple[str, str], int] = {}  # claim → index of the step holding it

    def needs(loc: Loc, step: StepBase, capability: Capability) -> bool:
        if info.has(capability):
            return True
        hint = " (its links all go through Toxiproxy); cut a link instead, e.g. link: {target: n2-repl, kind: down}"
        extra = hint if capability is Capability.PEER_MESH else ""
        problems.add(
            loc, f"{step.kind} needs {DESCRIPTIONS[capability]}, which {info.name} does not have{extra}"
        )
        return False

    for i, step in enumerate(steps):
        loc: Loc = ("steps", i, step.kind)
        claims: set[tuple[str, str]] = set()
        if isinstance(step, PartitionStep):
            hint = _pair_hint(step.isolated, topology) if step.isolated else ""
            if step.isolated in helpers:  # a balancer cut off: no mesh needed
                claims = step.claims()
            elif hint:
                problems.add(
                    loc, f"isolate: {step.isolated!r} is not a target of topology {topology.name}{hint}"
                )
                continue
            elif needs(loc, step, Capability.PEER_MESH):
                shape, params = step.shape_and_params()
                if params.get("node") in ROLE_TARGETS:
                    if not needs(loc, step, Capability.PRIMARY):
                        continue
                    params["node"] = nodes[0]  # which node a role names is known on the running cluster
                try:
                    planned = shapes.plan(shape, nodes, clusters=[p.node_names for p in topology.parts()],
                                          **params)  # fmt: skip
                except InputError as exc:
                    problems.add(loc, str(exc).removeprefix("partition: "))
                    continue
                meshless = _meshless_cut(topology, planned)
                if meshless:
                    problems.add(loc, f"partition cuts {meshless}, whose nodes do not talk to each other "
                                      "directly (every link goes through Toxiproxy); cut a link instead")  # fmt: skip
                    continue
                claims = step.claims()
        elif isinstance(step, LinkStep):
            target = step.link.target
            if target not in links:
                problems.add(
                    (*loc, "target"), f"unknown link {target!r}, expected one of: {', '.join(links)}"
                )
                continue
            claims = step.claims()
        elif isinstance(step, ProcessStep | CrashAllStep):
            if not needs(loc, step, Capability.PROCESSES):
                continue
            if isinstance(step, ProcessStep):
                if step.target not in targets:
                    problems.add(loc, f"unknown node or role {step.target!r}, expected one of: "
                                      f"{', '.join(targets)}{_pair_hint(step.target, topology)}")  # fmt: skip
                    continue
                concrete = nodes if step.target == "all" else [step.target] if step.target in nodes else []
                if isinstance(step, KillStep | StopStep | PauseStep):
                    claims = {(step.mechanism, n) for n in concrete}
                elif isinstance(step, ResumeStep | StartStep):
                    mechanism = step.mechanism
                    for n in concrete:
                        held.pop((mechanism, n), None)
                    if step.target not in nodes and step.target != "all":
                        held = {c: j for c, j in held.items() if c[0] != mechanism}  # a group or role: any
                elif isinstance(step, RestartStep):
                    claims = {(step.mechanism, n) for n in concrete}  # must not be down already…
                    _conflicts(problems, loc, claims, held)
                    continue  # …and holds nothing once it returns
            else:
                claims = {("process", n) for n in nodes}
        elif isinstance(step, ClockStep | PowerLossStep | DiskStep | WipeStep):
            # faults that need a layer the topology opts into (libfaketime, the harness's storage) or a way
            # of the system's to re-seed a node
            if isinstance(step, WipeStep):
                if not (needs(loc, step, Capability.PROCESSES) and needs(loc, step, Capability.RESEED)):
                    continue
            elif isinstance(step, ClockStep):
                if topology.clock != "faketime":
                    problems.add(loc, f"clock needs the nodes under libfaketime: add `clock: faketime` to "
                                      f"topology {topology.name} (it has clock: real)")  # fmt: skip
                    continue
            elif not needs(loc, step, Capability.PROCESSES):
                continue
            elif topology.storage != "lazyfs":
                problems.add(loc, f"{step.kind} needs the nodes' data on the harness's storage: add "
                                  f"`storage: lazyfs` to topology {topology.name} (it has storage: plain)")  # fmt: skip
                continue
            if step.target not in targets:
                problems.add((*loc, "target"),
                             f"unknown node or role {step.target!r}, expected one of: {', '.join(targets)}")  # fmt: skip
                continue
            concrete = nodes if step.target == "all" else [step.target] if step.target in nodes else []
            claims = {(step.mechanism, n) for n in concrete}
            if isinstance(step, WipeStep) and step.wipe.return_:
                _conflicts(problems, loc, claims, held)  # must not be down already; back when it ends
                continue
        elif isinstance(step, HealStep):
            if step.heal == "all":
                held.clear()
            else:
                prefix = {"partition": "iptables", "links": "toxiproxy:", "disk": "disk", "clock": "clock"}[
                    step.heal
                ]
                held = {c: j for c, j in held.items() if not c[0].startswith(prefix)}
            continue
        if _conflicts(problems, loc, claims, held):
            continue
        held.update(dict.fromkeys(claims, i))


def _meshless_cut(topology: TopologyBase, planned: shapes.Partition) -> str | None:
    """The name of a part of a composite topology the partition cuts although its nodes have no peer
    mesh (MMM, async: replication goes through Toxiproxy), else None."""
    meshed = mesh_parts(topology)
    for part in topology.parts():
        if part is topology or part.node_names in meshed:
            continue
        members = set(part.node_names)
        if any(src in members and dst in members for src, dst in planned.cuts):
            return f"{part.name} ({part.system})"
    return None


def _conflicts(problems: _Problems, loc: Loc, claims: set[tuple[str, str]], held: dict[tuple[str, str], int]
               ) -> bool:  # fmt: skip
    clashes = sorted(c for c in claims if c in held)
    if clashes:
        (mechanism, target) = clashes[0]
        problems.add(loc, f"{target} is already under {mechanism} since steps[{held[clashes[0]]}]; heal it "
                          "(or start/resume it) first")  # fmt: skip
    return bool(clashes)


# ------------------------------------------------------------------------------------------ for the runner
def workload_spec(scenario: Scenario, topology: TopologyBase) -> WorkloadSpec:
    spec = scenario.workload.get(topology.system)
    if spec is None:
        raise InputError(f"scenario {scenario.name}: workload: no workload for system {topology.system!r} "
                         f"(has: {', '.join(scenario.workload) or 'none'})")  # fmt: skip
    return spec


def checker_names(scenario: Scenario, system: str) -> list[str]:
    """The workload's checkers, those of the system's probes, and any more the scenario's ``checks`` name
    (``checks`` maps a checker to its options)."""
    spec = scenario.workload[system]
    defaults = [*WORKLOADS[spec.type].checkers, *SYSTEMS[system].probe_checkers]
    names = defaults + [n for n in scenario.checks if n not in defaults]
    unknown = [n for n in names if n not in CHECKERS]
    if unknown:
        raise InputError(f"scenario {scenario.name}: checks: unknown checker(s) {', '.join(unknown)}, "
                         f"expected: {', '.join(CHECKERS)}")  # fmt: skip
    return names
