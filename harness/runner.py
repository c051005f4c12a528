"""Run a scenario on a topology: cluster up, workload, fault timeline, heal, final reads, checks, report.

Both front doors (``harness run`` and the pytest plugin) call :func:`run_scenario`.
Layout of ``reports/<run-id>/``: ``topology.json``, ``scenario.json``, ``history.jsonl``,
``events.jsonl``, ``samples.jsonl`` (probes), ``checksums.json``, ``logs/<node>.log``, ``result.json``.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.checkers import CHECKERS
from harness.checkers.base import CheckContext, Result, compose
from harness.errors import InputError
from harness.faults import partition as shapes
from harness.faults.link import link_fault_from_dict
from harness.faults.nemesis import GROUP_TARGETS, ROLE_TARGETS, Nemesis
from harness.model.durations import parse_duration
from harness.model.history import (
    EventWriter,
    HistoryWriter,
    SampleWriter,
    read_events,
    read_history,
    read_samples,
)
from harness.model.scenario import Scenario, Step, WorkloadSpec
from harness.model.topology import TopologyBase
from harness.probes import probe_checkers, probes_for
from harness.runtime.cluster import down, run_clock, system_for, up
from harness.runtime.docker import DockerRuntime
from harness.systems import SYSTEMS
from harness.workloads import workload_class

Say = Callable[[str], None]


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    report_dir: Path
    result: Result


def workload_spec(scenario: Scenario, topology: TopologyBase) -> WorkloadSpec:
    system = topology.system  # type: ignore[attr-defined]
    spec = scenario.workload.get(system)
    if spec is None or system not in scenario.systems:
        raise InputError(f"scenario {scenario.name}: workload: no workload for system {system!r} "
                         f"(has: {', '.join(scenario.workload) or 'none'})")  # fmt: skip
    if system not in workload_class(spec.type).systems:
        raise InputError(
            f"scenario {scenario.name}: workload.{system}.type: {spec.type} cannot drive {system}"
        )
    return spec


def checker_names(scenario: Scenario, spec: WorkloadSpec, system: str) -> list[str]:
    """The workload's checkers, those of the system's probes, and any more the scenario's ``checks`` name
    (``checks`` maps a checker to its options)."""
    defaults = [*workload_class(spec.type).checkers, *probe_checkers(system)]
    names = defaults + [n for n in scenario.checks if n not in defaults]
    unknown = [n for n in names if n not in CHECKERS]
    if unknown:
        raise InputError(f"scenario {scenario.name}: checks: unknown checker(s) {', '.join(unknown)}, "
                         f"expected: {', '.join(CHECKERS)}")  # fmt: skip
    return names


def validate_plan(scenario: Scenario, topology: TopologyBase) -> None:
    """Every step must be possible on this topology: checked before any container starts."""
    spec = workload_spec(scenario, topology)
    checker_names(scenario, spec, topology.system)  # type: ignore[attr-defined]
    nodes = topology.node_names
    targets = {*nodes, *ROLE_TARGETS, *GROUP_TARGETS}
    for i, step in enumerate(scenario.steps):
        where = f"scenario {scenario.name}: steps[{i}].{step.kind}"
        try:
            if step.kind == "partition":
                SYSTEMS[topology.system].check_partitionable()  # type: ignore[attr-defined]
                _plan(step, nodes)
            elif step.kind == "link":
                arg = dict(step.argument)
                target = arg.pop("target", None)
                if target not in nodes and not str(target).startswith(tuple(n + "-" for n in nodes)):
                    raise InputError(f"target: unknown link {target!r}, expected a node name")
                link_fault_from_dict(arg)
            elif (
                step.kind in ("kill", "pause", "resume", "stop", "start", "restart")
                and step.argument not in targets
            ):
                raise InputError(
                    f"unknown node or role {step.argument!r}, expected one of: {', '.join(sorted(targets))}"
                )
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None


def partition_args(step: Step) -> tuple[str, dict[str, Any]]:
    """A scenario's ``partition:`` step as a shape name and its keyword parameters."""
    ((key, value),) = step.argument.items()
    if key == "isolate":
        return "isolate", {"node": value}
    if key == "shape":
        if value not in shapes.PARAMETERLESS:
            raise InputError(f"shape: unknown shape {value!r}, expected {', '.join(shapes.PARAMETERLESS)}")
        return value, {}
    if key == "groups":
        return "groups", {"groups": value}
    return "one_way", {"src": value["from"], "dst": value["to"]}


def _plan(step: Step, nodes: list[str]) -> shapes.Partition:
    shape, params = partition_args(step)
    if params.get("node") in ROLE_TARGETS:
        params["node"] = nodes[0]  # which node a role names is only known on the running cluster
    return shapes.plan(shape, nodes, **params)


def apply_step(nemesis: Nemesis, step: Step, stop: threading.Event) -> None:
    kind, arg = step.kind, step.argument
    if kind == "wait":
        stop.wait(parse_duration(arg))  # the scenario's timeline
    elif kind == "partition":
        shape, params = partition_args(step)
        nemesis.partition(shape, **params)
    elif kind == "heal":
        if arg == "partition":
            nemesis.heal_partition()
        elif arg == "links":
            nemesis.heal_links()
        else:
            nemesis.heal(wait=False)
    elif kind == "link":
        params = dict(arg)
        target = params.pop("target")
        nemesis.link(target, link_fault_from_dict(params))
    elif kind == "crash_all":
        nemesis.crash_all(parse_duration((arg or {}).get("window", 0)))
    elif kind in ("start", "resume"):
        getattr(nemesis, kind)(arg, **({"wait": False} if kind == "start" else {}))
    else:
        getattr(nemesis, kind)(arg)


def run_scenario(
    topology: TopologyBase,
    scenario: Scenario,
    *,
    runtime: DockerRuntime,
    reports: Path = Path("reports"),
    keep: bool = False,
    seed: int = 0,
    say: Say = print,
) -> RunOutcome:
    validate_plan(scenario, topology)
    spec = workload_spec(scenario, topology)
    run = up(topology, runtime, say=say, hand_over=keep)
    out = reports / run.id
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "topology.json").write_text(topology.model_dump_json(indent=2))
        (out / "scenario.json").write_text(scenario.model_dump_json(indent=2))
        (out / "meta.json").write_text(json.dumps({"run_id": run.id, "seed": seed, "subnet": run.subnet}))
        system = system_for(run, runtime)
        clock = run_clock(run)
        rng = random.Random(seed)
        workload = workload_class(spec.type)(system, spec, rng)
        workload.setup()
        history = HistoryWriter(out / "history.jsonl", clock, concurrency=spec.clients)
        events = EventWriter(out / "events.jsonl", clock)
        nemesis = Nemesis(system, events=events, clock=clock, rng=rng, say=say)
        stop = threading.Event()
        say(f"workload {spec.type}: {spec.clients} clients, {spec.rate:g} ops/s; "
            f"timeline of {len(scenario.steps)} steps, about {scenario.duration_s:.0f}s")  # fmt: skip
        samples = SampleWriter(out / "samples.jsonl", clock)
        probes = probes_for(system, samples).start()
        threads = workload.run(history, stop)
        try:
            stop.wait(scenario.settle)
            for step in scenario.steps:
                apply_step(nemesis, step, stop)
            say("healing and waiting for the cluster to recover")
            nemesis.heal(wait=True)
            stop.wait(spec.quiesce)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=spec.timeout * 3 + 5)
            probes.stop()
            samples.close()
        say("final reads")
        workload.final_read(history)
        checksums = workload.checksums() if hasattr(workload, "checksums") else None
        history.close()
        events.close()
        if checksums is not None:
            (out / "checksums.json").write_text(json.dumps(checksums, indent=2, sort_keys=True))
        _save_logs(system, out / "logs")
        result = check_report(out)
    finally:
        if not keep:
            down(run.id, runtime)
    return RunOutcome(run.id, out, result)


def _save_logs(system: Any, directory: Path) -> None:
    """Every container of the run: nodes (``n1.log``) and helpers (``toxiproxy.log``, ``monitor.log``…)."""
    directory.mkdir(parents=True, exist_ok=True)
    prefix = f"hh-{system.run.id}-"
    for container in system.runtime.containers(system.run.id):
        name = container.name.removeprefix(prefix)
        (directory / f"{name}.log").write_text(system.runtime.logs(container.name, tail=2000))


def check_report(out: Path, *, write: bool = True) -> Result:
    """Run the scenario's checkers on a stored run directory (no cluster needed)."""
    if not (out / "history.jsonl").is_file() or not (out / "scenario.json").is_file():
        raise InputError(f"{out}: not a run directory (expected history.jsonl and scenario.json)")
    scenario = Scenario.model_validate_json((out / "scenario.json").read_text())
    topology_doc = json.loads((out / "topology.json").read_text())
    spec = scenario.workload[topology_doc["system"]]
    names = checker_names(scenario, spec, topology_doc["system"])
    samples_path = out / "samples.jsonl"
    checksums_path = out / "checksums.json"
    ctx = CheckContext(
        events=tuple(read_events(out / "events.jsonl")) if (out / "events.jsonl").exists() else (),
        checksums=json.loads(checksums_path.read_text()) if checksums_path.exists() else None,
        samples=tuple(read_samples(samples_path)) if samples_path.exists() else (),
        options=scenario.checks,
    )
    result = compose({name: CHECKERS[name] for name in names})(read_history(out / "history.jsonl"), ctx)
    if write:
        (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    return result
