"""Run a scenario on a topology: cluster up, workload, fault timeline, heal, final reads, checks, report.

Both front doors (``harness run`` and, later, the pytest plugin) call :func:`run_scenario`.
Layout of ``reports/<run-id>/``: ``topology.json``, ``scenario.json``, ``meta.json``, ``history.jsonl``,
``events.jsonl`` (faults, and the harness's own actions on the cluster), ``samples.jsonl`` (probes),
``checksums.json``, ``logs/<container>.log``, ``harness.log`` (this run's own log), ``result.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import logging.handlers
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness import progress
from harness.checkers import CHECKERS
from harness.checkers.base import CheckContext, Checker, Result, compose
from harness.checkers.guarantees import check_guarantees, resolve_bounds
from harness.errors import InputError
from harness.faults.nemesis import Nemesis
from harness.lifecycle import run_clock, system_for
from harness.model.clock import RunClock
from harness.model.durations import format_duration
from harness.model.faults import StepBase, WaitStep, step_to_yaml
from harness.model.history import Event, EventWriter, History, HistoryWriter, SampleWriter
from harness.model.scenario import Scenario, WorkloadSpec
from harness.model.topology import TopologyBase
from harness.plan import checker_names, validate_pair, workload_spec
from harness.probes import probes_for
from harness.report.html import write_report
from harness.reuse import Lease, ReusedCluster
from harness.runtime.base import Runtime
from harness.stored_run import StoredRun, load_stored_run
from harness.systems.base import ClusterSystem
from harness.systems.registry import topology_adapter
from harness.workloads import workload_class
from harness.workloads.base import Workload

log = logging.getLogger(__name__)

__all__ = ["RunOutcome", "apply_step", "check_report", "run_next", "run_on", "run_scenario", "run_scenarios"]


@dataclass(frozen=True)
class RunOutcome:
    run_id: str  # the report's id (its directory name under reports/)
    report_dir: Path
    result: Result
    cluster_id: str = ""  # the cluster it ran on (== run_id unless the cluster was reused)
    reused: bool = False  # ran on a cluster an earlier scenario had used (healed, checked, reset)
    replaced: str | None = None  # why the cluster was replaced before this scenario, if it was


def apply_step(nemesis: Nemesis, step: StepBase, stop: threading.Event) -> list[Event]:
    """One timeline step: a wait is the scenario's clock; anything else is the nemesis's (its events)."""
    if isinstance(step, WaitStep):
        stop.wait(step.wait)
        return []
    return nemesis.apply(step)


def run_timeline(scenario: Scenario, nemesis: Nemesis, stop: threading.Event, shown: progress.Phase) -> None:
    """The settle, then every step in order; ``shown``: the scenario's own clock (settle and waits, so a
    slow fault does not advance it), the step in effect and its number."""
    shown.update(f"t=0s settle {scenario.settle:g}s", completed=0.0, until=scenario.settle)
    stop.wait(scenario.settle)
    at, count = scenario.settle, len(scenario.steps)
    for number, step in enumerate(scenario.steps, 1):
        if isinstance(step, WaitStep):
            shown.update(completed=at, until=at + step.wait)
            at += step.wait
        else:
            shown.update(f"step {number}/{count} t={at:.0f}s {describe_step(step)}", completed=at)
        events = apply_step(nemesis, step, stop)
        opened = [ev for ev in events if ev.end is None]
        if opened:
            faults = "; ".join(f"{ev.name} {_target(ev)}" for ev in opened)
            shown.update(f"step {number}/{count} t={at:.0f}s {faults}")
    shown.update(completed=at)


def describe_step(step: StepBase) -> str:
    """A step in a few words: ``kill primary``, ``partition isolate=n1``, ``heal all``."""
    if isinstance(step, WaitStep):
        return f"wait {format_duration(step.wait)}"
    doc = step_to_yaml(step)
    value = doc.get(step.kind, doc)
    if isinstance(value, dict):
        return " ".join([step.kind, *(f"{k}={_words(v)}" for k, v in value.items() if v is not None)])
    return f"{step.kind} {_words(value)}"


def _words(value: object) -> str:
    if isinstance(value, list):
        nested = any(isinstance(v, list) for v in value)
        return (" | " if nested else ",").join(_words(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={_words(v)}" for k, v in value.items() if v is not None)
    return str(value)


class RunLog:
    """Everything the harness logs from the start of a run (its bring-up included, before the run's
    directory exists) to its end, kept in the run's ``harness.log``."""

    def __init__(self) -> None:
        self.handler: logging.Handler = logging.handlers.MemoryHandler(
            capacity=100_000, flushLevel=logging.CRITICAL + 1
        )
        self.handler.setFormatter(FORMAT)
        self.root = logging.getLogger("harness")
        self.previous = self.root.level

    def __enter__(self) -> RunLog:
        self.root.addHandler(self.handler)
        if self.root.level == logging.NOTSET or self.root.level > logging.INFO:
            self.root.setLevel(logging.INFO)
        return self

    def keep_in(self, path: Path) -> None:
        """From now on write to ``path``, starting with what was logged so far."""
        file = logging.FileHandler(path, encoding="utf-8")
        file.setFormatter(FORMAT)
        assert isinstance(self.handler, logging.handlers.MemoryHandler)
        self.handler.setTarget(file)
        self.handler.flush()
        self.root.removeHandler(self.handler)
        self.handler.close()
        self.handler = file
        self.root.addHandler(file)

    def __exit__(self, *exc: object) -> None:
        self.root.removeHandler(self.handler)
        self.root.setLevel(self.previous)
        self.handler.close()


FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_scenario(
    topology: TopologyBase,
    scenario: Scenario,
    *,
    runtime: Runtime,
    reports: Path = Path("reports"),
    keep: bool = False,
    seed: int = 0,
) -> RunOutcome:
    """One scenario on a cluster of its own (removed at the end unless ``keep``)."""
    return run_scenarios(topology, [scenario], runtime=runtime, reports=reports, keep=keep, seed=seed)[0]


def run_scenarios(
    topology: TopologyBase,
    scenarios: Sequence[Scenario],
    *,
    runtime: Runtime,
    reports: Path = Path("reports"),
    keep: bool = False,
    seed: int = 0,
    on_outcome: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Several scenarios on one topology, in order, on one reused cluster: between scenarios it is healed
    and checked healthy and the next workload resets its tables or queues; a cluster that does not come
    back in time is replaced (see ``harness.reuse``). Every pair is validated before anything starts.
    ``on_outcome`` is called after each scenario; ``keep`` hands the last cluster over instead of removing
    it. Each scenario has its own run directory: ``reports/<cluster id>``, then ``<cluster id>-2``…"""
    for scenario in scenarios:
        validate_pair(scenario, topology)
        workload_spec(scenario, topology)  # raises, before anything starts, if it has no workload here
    cluster = ReusedCluster(topology, runtime, hand_over=keep)
    outcomes: list[RunOutcome] = []
    try:
        for scenario in scenarios:
            outcome = run_next(cluster, scenario, reports=reports, seed=seed)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    finally:
        cluster.close()
    return outcomes


def run_next(cluster: ReusedCluster, scenario: Scenario, *, reports: Path, seed: int) -> RunOutcome:
    """``scenario`` on ``cluster``'s next lease (brought up the first time, else healed and checked healthy,
    or replaced), the lease's bring-up or health check logged into the scenario's ``harness.log``."""
    topology = cluster.topology
    spec = workload_spec(scenario, topology)
    with RunLog() as run_log:
        log.info(f"{scenario.name} on {topology.name}, seed {seed}")
        lease = cluster.acquire()
        return run_on(lease, topology, scenario, spec, runtime=cluster.runtime, reports=reports, seed=seed,
                      run_log=run_log)  # fmt: skip


def run_on(lease: Lease, topology: TopologyBase, scenario: Scenario, spec: WorkloadSpec, *, runtime: Runtime,
           reports: Path, seed: int, run_log: RunLog | None = None) -> RunOutcome:  # fmt: skip
    """``scenario`` on the running cluster ``lease`` names (nothing brought up or removed here)."""
    out = reports / lease.report_id
    out.mkdir(parents=True, exist_ok=True)
    if run_log is not None:
        run_log.keep_in(out / "harness.log")
    if lease.replaced:
        log.warning(f"the cluster was replaced before this scenario ({lease.replaced})")
    result = _run(lease, topology, scenario, spec, runtime, out, seed)
    return RunOutcome(lease.report_id, out, result, cluster_id=lease.run.id, reused=lease.reused,
                      replaced=lease.replaced)  # fmt: skip


def _run(lease: Lease, topology: TopologyBase, scenario: Scenario, spec: WorkloadSpec, runtime: Runtime,
         out: Path, seed: int) -> Result:  # fmt: skip
    run = lease.run
    (out / "topology.json").write_text(topology.model_dump_json(indent=2))
    (out / "scenario.json").write_text(scenario.model_dump_json(indent=2))
    meta = {"run_id": lease.report_id, "cluster_id": run.id, "seed": seed, "subnet": run.subnet,
            "image": run.image, "scenario_on_cluster": lease.index, "reused": lease.reused,
            "replaced": lease.replaced}  # fmt: skip
    (out / "meta.json").write_text(json.dumps(meta))
    phases = Phases(acquire=lease.acquire_s)
    system = system_for(run, runtime)
    # the first scenario keeps the cluster's clock (its bring-up at 0); a later one starts its own
    clock = RunClock() if lease.reused else run_clock(run)
    rng = random.Random(seed)
    workload = workload_class(spec.type)(system, spec, rng)
    with progress.phase("workload setup") as shown:
        shown.update(f"{spec.type}: {spec.clients} clients")
        workload.setup()
    phases.mark("setup")
    history = HistoryWriter(out / "history.jsonl", clock, concurrency=spec.clients)
    events = EventWriter(out / "events.jsonl", clock)
    nemesis = Nemesis(system, events=events, clock=clock, rng=rng)
    nemesis.heal(wait=False)  # every mechanism at its baseline before the first fault, as after the last
    stop = threading.Event()
    log.info(f"workload {spec.type}: {spec.clients} clients, {spec.rate:g} ops/s; "
             f"timeline of {len(scenario.steps)} steps, about {scenario.duration_s:.0f}s")  # fmt: skip
    samples = SampleWriter(out / "samples.jsonl", clock)
    probes = probes_for(system, samples).start()
    threads = workload.run(history, stop)
    with contextlib.ExitStack() as finishing:
        try:
            with progress.phase("timeline", total=scenario.duration_s, clock=True) as shown:
                run_timeline(scenario, nemesis, stop, shown)
            phases.mark("timeline")
            after = finishing.enter_context(progress.phase("after the timeline"))
            after.update("heal")
            log.info("healing and waiting for the cluster to recover")
            nemesis.heal(wait=True)
            phases.mark("recovery")
            after.update(f"quiesce {spec.quiesce:g}s")
            stop.wait(spec.quiesce)
            phases.mark("quiesce")
            after.update("stopping the workload")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=spec.timeout * 3 + 5)
            probes.stop()
            samples.close()
            phases.mark("stop")
        result = _finish(workload, history, events, system, out, phases, after)
    meta["phases_s"] = phases.durations  # where the scenario's wall time went (bench/scenario_overhead.py)
    (out / "meta.json").write_text(json.dumps(meta))
    return result


def _finish(workload: Workload, history: HistoryWriter, events: EventWriter, system: ClusterSystem, out: Path,
            phases: Phases, shown: progress.Phase) -> Result:  # fmt: skip
    """Final reads, checksums, the containers' logs, the checks and the report: the scenario's result."""
    shown.update("final reads")
    log.info("final reads")
    workload.final_read(history)
    phases.mark("final_read")
    checksums = workload.checksums() if hasattr(workload, "checksums") else None
    history.close()
    events.close()
    if checksums is not None:
        (out / "checksums.json").write_text(json.dumps(checksums, indent=2, sort_keys=True))
    shown.update("saving the containers' logs")
    _save_logs(system, out / "logs")
    phases.mark("logs")
    shown.update("checks")
    stored = load_stored_run(out)
    result = check_report(out, stored=stored)
    phases.mark("check")
    shown.update("report")
    write_report(out, result, stored)
    phases.mark("report")
    return result


class Phases:
    """Wall-clock seconds per phase of a scenario: ``mark(name)`` ends the phase ``name`` (begun at the
    previous mark); ``acquire`` (the cluster's bring-up, or its heal and health check) is given."""

    def __init__(self, *, acquire: float = 0.0) -> None:
        self.durations: dict[str, float] = {"acquire": round(acquire, 3)}
        self._last = time.monotonic()

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.durations[name] = round(now - self._last, 3)
        self._last = now


def _save_logs(system: ClusterSystem, directory: Path) -> None:
    """Every container of the run: nodes (``n1.log``) and helpers (``toxiproxy.log``, ``monitor.log``…),
    and a wiped node's log up to the wipe (``n1-1-before-wipe.log``)."""
    directory.mkdir(parents=True, exist_ok=True)
    prefix = f"hh-{system.run.id}-"
    for container in system.runtime.containers(system.run.id):
        name = container.name.removeprefix(prefix)
        (directory / f"{name}.log").write_text(system.runtime.logs(container.name, tail=2000))
    wiped = system.wiped_logs()  # containers removed with their disk (a `wipe`): their logs until then
    for path in sorted(wiped.glob("*.log")) if wiped.is_dir() else []:
        (directory / f"{path.stem}-before-wipe.log").write_text(path.read_text())
        path.unlink()  # moved: the next scenario on a reused cluster has its own


def check_report(out: Path, *, write: bool = True, stored: StoredRun | None = None) -> Result:
    """Run the scenario's checkers on a stored run directory (no cluster needed); ``stored``: the directory
    already read (``load_stored_run(out)``), so that the report can be drawn from the same read.

    A corrupt run directory is an InputError naming FILE:LINE (exit 2); one missing a file a verdict
    needs is an IncompleteRunError (exit 3); neither is ever read as data loss.
    """
    if stored is None:
        stored = load_stored_run(out)
    try:
        scenario = Scenario.model_validate(stored.scenario_doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"] if "=" not in str(p))
        raise InputError(f"{out / 'scenario.json'}: {where}: {first['msg']}") from None
    system = stored.topology_doc.get("system")
    if not isinstance(system, str) or system not in scenario.workload:
        raise InputError(
            f"{out / 'topology.json'}: system: {system!r} has no workload in the stored scenario"
        )
    topology = _stored_topology(out, stored.topology_doc)
    names = checker_names(scenario, system)
    ctx = CheckContext(events=stored.events, checksums=stored.checksums, samples=stored.samples,
                       options=scenario.checks)  # fmt: skip
    with progress.phase("checks") as shown:
        checkers = {name: _shown_as(name, CHECKERS[name], shown) for name in names}
        result = compose(checkers)(stored.history, ctx)
        shown.update("guarantees")
        bounds = resolve_bounds(topology.expect, scenario.expect, system=system, topology=topology.name)
        result = check_guarantees(result, bounds)  # the scenario's (and topology's) `expect:`, a child
    result = with_harness_actions(result, stored.events)
    result = with_replacement(result, out)
    if write:
        (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    return result


def _shown_as(name: str, checker: Checker, shown: progress.Phase) -> Checker:
    """``checker``, its name shown as the current step while it runs."""

    def run(history: History, ctx: CheckContext, /) -> Result:
        shown.update(name)
        return checker(history, ctx)

    run.__name__ = getattr(checker, "__name__", name)
    run.__doc__ = getattr(checker, "__doc__", None)
    return run


def _stored_topology(out: Path, doc: dict[str, Any]) -> TopologyBase:
    try:
        return topology_adapter().validate_python(doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"] if "=" not in str(p) and str(p) != doc.get("system"))
        raise InputError(f"{out / 'topology.json'}: {where}: {first['msg']}") from None


def with_harness_actions(result: Result, events: tuple[Event, ...]) -> Result:
    """Say in the result when the harness stepped in (an operator's recovery, a bootstrap after every node
    crashed): such actions can themselves change what a system keeps, so a verdict must show them."""
    actions = [ev for ev in events if ev.detail.get("by") == "harness"]
    if not actions:
        return result
    notes = [f"the harness stepped in: {ev.name} on {_target(ev)} via {ev.mechanism} at "
             f"{ev.start / 1e9:.1f}s" for ev in actions]  # fmt: skip
    details = {**result.details, "harness_actions": [ev.to_dict() for ev in actions]}
    return dataclasses.replace(result, notes=(*result.notes, *notes), details=details)


def with_replacement(result: Result, out: Path) -> Result:
    """Say in the result when the scenario ran on a replacement cluster (the one before it did not come
    back healthy after the previous scenario)."""
    try:
        meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return result
    reason = meta.get("replaced") if isinstance(meta, dict) else None
    if not reason:
        return result
    note = f"the harness replaced the cluster before this scenario: {reason}"
    return dataclasses.replace(
        result, notes=(*result.notes, note), details={**result.details, "replaced": reason}
    )


def _target(ev: Event) -> str:
    return ev.target if isinstance(ev.target, str) else ",".join(ev.target)
