"""Explore: run generated fault schedules on a real cluster until a guarantee breaks, then shrink it there.

``explore(topology, workload, budget_s=..., seed=..., run=..., out_dir=...)`` draws schedules
(``harness.schedules``) with hypothesis under a fixed seed, builds a scenario of each (validated as
``run`` would) and hands it to ``run`` — the caller's: typically one reused cluster running each scenario
(``harness.runner.run_scenarios``' reuse session) and returning its ``RunOutcome`` (or a bare ``Result``).
It stops at the first scenario whose result breaks a guarantee (``breaches``: with ``safety_only``, only
a safety figure counts — lost, duplicated, unexpected, wrong bank totals, bad reads, divergence, any checker's
own verdict but availability's and lag's — not an availability or lag bound), or when ``budget_s`` of wall
clock or ``max_examples`` runs are spent.

On a failure, hypothesis' own shrinker reruns smaller schedules on the cluster (at most
``shrink_examples`` runs, ``shrink_budget_s`` seconds; the smallest failing schedule seen so far is kept
whatever stops it), and the minimal one is written as an ordinary scenario file
(``out_dir/minimal-scenario.yaml``, which ``harness validate TOPOLOGY FILE`` accepts and ``harness run``
replays), with ``out_dir/explore.json``: the seed, runs, time spent, the failing figures, the original and
the shrunk schedule. A schedule is run at most once (verdicts are cached by schedule), so a flaky cluster
cannot make hypothesis' replay of its minimal example disagree with the run it shrank on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from ruamel.yaml import YAML

from harness.checkers.base import Result
from harness.model.faults import StepBase, step_to_yaml
from harness.model.guarantees import GUARANTEES
from harness.model.scenario import Scenario
from harness.model.topology import TopologyBase
from harness.plan import validate_pair
from harness.schedules import scenario_doc, scenario_for, schedule_duration_s, schedules

if TYPE_CHECKING:
    from harness.runner import RunOutcome

__all__ = [
    "AVAILABILITY_CHECKERS",
    "AVAILABILITY_GUARANTEES",
    "SAFETY_GUARANTEES",
    "ExploreResult",
    "breaches",
    "explore",
    "write_scenario",
]

logger = logging.getLogger(__name__)

AVAILABILITY_GUARANTEES = frozenset(
    {"availability", "longest_outage_s", "outage_count", "time_to_recover_s", "lag_p99_s", "lag_max_s"}
)
SAFETY_GUARANTEES = frozenset(GUARANTEES) - AVAILABILITY_GUARANTEES
AVAILABILITY_CHECKERS = frozenset({"availability", "lag"})  # every other checker's own verdict is safety's
_SAFETY_FIGURES = SAFETY_GUARANTEES | {"differing"}

MINIMAL_FILE = "minimal-scenario.yaml"
REPORT_FILE = "explore.json"


def breaches(result: Result, *, safety_only: bool = True) -> list[str]:
    """What broke in a run's composed result (one child per checker, plus ``guarantees``), one line per
    failing figure; empty when the run is valid or unknown — or, with ``safety_only``, invalid only
    through availability or lag (bounds on them, or the availability / lag checkers' own verdicts)."""
    if result.valid is not False:
        return []
    found: list[str] = []
    guarantees = result.children.get("guarantees")
    if guarantees is not None:
        for row in guarantees.details.get("bounds", ()):
            if row.get("passed") is False and (not safety_only or row.get("name") in SAFETY_GUARANTEES):
                found.append(f"{row['name']} {row['op']} {row['bound']} breached: {row['check']}.{row['figure']} "
                             f"= {row['value']}")  # fmt: skip
    for name, child in result.children.items():
        if name == "guarantees" or child.valid is not False:
            continue
        if safety_only and name in AVAILABILITY_CHECKERS:
            continue
        figures = [
            f"{name}.{k} = {_shown(v)}" for k, v in child.figures.items() if k in _SAFETY_FIGURES and _bad(v)
        ]
        found += figures or [
            f"{name}: invalid ({'; '.join(child.notes) or child.error or 'no reason given'})"
        ]
    if not result.children and not safety_only:
        found.append(f"invalid ({'; '.join(result.notes) or 'no reason given'})")
    return found


def _bad(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return isinstance(value, list | tuple) and len(value) > 0


def _shown(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


@dataclass
class ExploreResult:
    """What an exploration did and found (``found``: a failing schedule; ``minimal``: the shrunk one)."""

    seed: int
    topology: str
    stopped: str  # "shrunk" | "shrink-limit" | "budget" | "max-examples" | "exhausted" | "errors"
    examples: int  # scenarios run before the first failure (that one included)
    shrink_runs: int  # scenarios run while shrinking
    elapsed_s: float
    failures: list[str] = field(default_factory=list)  # failing figures of the minimal schedule
    original: list[StepBase] | None = None  # the first failing schedule
    original_failures: list[str] = field(default_factory=list)
    minimal: list[StepBase] | None = None
    scenario: Scenario | None = None  # the minimal failing scenario (as written)
    scenario_path: Path | None = None
    report_path: Path | None = None
    run_dir: Path | None = None  # the minimal failing run's report directory, when ``run`` gave one
    errors: list[str] = field(default_factory=list)  # runs that raised (not counted as failures)

    @property
    def found(self) -> bool:
        return self.minimal is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "topology": self.topology,
            "found": self.found,
            "stopped": self.stopped,
            "examples": self.examples,
            "shrink_runs": self.shrink_runs,
            "elapsed_s": round(self.elapsed_s, 3),
            "failures": self.failures,
            "original_failures": self.original_failures,
            "original": _summary(self.original),
            "minimal": _summary(self.minimal),
            "scenario_file": str(self.scenario_path) if self.scenario_path else None,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "errors": self.errors,
        }


def _summary(steps: Sequence[StepBase] | None) -> dict[str, Any] | None:
    if steps is None:
        return None
    return {"steps": len(steps), "faults": _fault_count(steps), "duration_s": schedule_duration_s(steps),
            "schedule": [step_to_yaml(s) for s in steps]}  # fmt: skip


def _fault_count(steps: Sequence[StepBase]) -> int:
    return sum(1 for s in steps if s.claims() or s.kind == "restart")


def _size(steps: Sequence[StepBase]) -> tuple[int, int, float, int]:
    return (_fault_count(steps), len(steps), schedule_duration_s(steps), len(_key(steps)))


def _key(steps: Sequence[StepBase]) -> str:
    return json.dumps([step_to_yaml(s) for s in steps], sort_keys=True)


class _Stop(BaseException):
    """Ends the hypothesis run from inside (a BaseException: hypothesis does not take it for a failure)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class _Breach(Exception):
    """The failure hypothesis shrinks."""


@dataclass
class _Seen:
    failures: list[str]
    run_dir: Path | None


def explore(
    topology: TopologyBase,
    workload: Mapping[str, Any],
    *,
    budget_s: float,
    seed: int,
    run: Callable[[Scenario], Result | RunOutcome],
    out_dir: Path,
    max_examples: int | None = None,
    shrink_examples: int = 50,
    shrink_budget_s: float | None = None,
    safety_only: bool = True,
    scenario_budget_s: float = 60.0,
    settle_s: float = 3.0,
    max_steps: int = 30,
    kinds: Collection[str] | None = None,
    expect: Mapping[str, Any] | None = None,
    checks: Mapping[str, Mapping[str, Any]] | None = None,
    max_errors: int = 3,
    log: Callable[[str], None] = logger.info,
    clock: Callable[[], float] = time.monotonic,
    **schedule_options: Any,
) -> ExploreResult:
    """Run generated schedules through ``run`` until one breaks a guarantee or the budget is spent; shrink
    a failing one on the cluster and write it to ``out_dir`` (see the module's docstring).

    ``workload``: the workload spec (``{"type": "sql-set", "clients": 4}``) or one per system;
    ``expect``/``checks``: the generated scenarios' (the topology's ``expect`` applies as well);
    ``budget_s``: wall clock for finding a failure; shrinking has ``shrink_budget_s`` (default: as much)
    and ``shrink_examples`` runs. ``scenario_budget_s``: each scenario's length (settle included);
    ``max_steps``, ``kinds`` and ``schedule_options`` go to ``harness.schedules.schedules``. A ``run`` that
    raises is logged and not counted as a failure; ``max_errors`` of them end the exploration."""
    started = clock()
    log(f"explore {topology.name}: seed {seed}, budget {budget_s:g}s, scenarios of at most "
        f"{scenario_budget_s:g}s, {'safety' if safety_only else 'every'} guarantee")  # fmt: skip
    strategy = schedules(topology, budget_s=scenario_budget_s - settle_s, max_steps=max_steps, kinds=kinds,
                         **schedule_options)  # fmt: skip
    seen: dict[str, _Seen] = {}
    errors: list[str] = []
    counts = {"examples": 0, "shrink": 0}
    first: list[StepBase] | None = None
    first_seen: _Seen | None = None
    best: list[StepBase] | None = None
    shrink_started = 0.0
    shrink_budget = budget_s if shrink_budget_s is None else shrink_budget_s

    def scenario_of(steps: Sequence[StepBase], name: str, description: str = "") -> Scenario:
        return scenario_for(topology, steps, workload, name=name, description=description, settle_s=settle_s,
                            expect=expect, checks=checks)  # fmt: skip

    def evaluate(steps: list[StepBase]) -> list[str]:
        nonlocal first, first_seen, best, shrink_started
        shrinking = first is not None
        key = _key(steps)
        if not shrinking:
            if clock() - started >= budget_s:
                raise _Stop("budget")
            if max_examples is not None and counts["examples"] >= max_examples:
                raise _Stop("max-examples")
        if key in seen:
            return seen[key].failures
        if shrinking and (counts["shrink"] >= shrink_examples or clock() - shrink_started >= shrink_budget):
            raise _Stop("shrink-limit")
        number = counts["examples"] + counts["shrink"] + 1
        scenario = scenario_of(steps, f"explore-{number}")
        validate_pair(scenario, topology)  # a generated schedule that does not validate is a bug: raised
        counts["shrink" if shrinking else "examples"] += 1
        try:
            outcome = run(scenario)
        except Exception as exc:  # the cluster's or the caller's trouble, not a guarantee broken
            errors.append(f"{scenario.name}: {type(exc).__name__}: {exc}")
            log(f"  {scenario.name}: run failed ({type(exc).__name__}: {exc}); not counted as a failure")
            if len(errors) >= max_errors:
                raise _Stop("errors") from None
            seen[key] = _Seen([], None)
            return []
        result = outcome if isinstance(outcome, Result) else outcome.result
        run_dir = None if isinstance(outcome, Result) else outcome.report_dir
        failures = breaches(result, safety_only=safety_only)
        seen[key] = _Seen(failures, run_dir)
        faults, length = _fault_count(steps), schedule_duration_s(steps)
        verdict = "; ".join(failures) if failures else f"holds ({result.valid})"
        log(f"  {scenario.name} ({'shrink' if shrinking else 'search'}): {faults} fault(s), {len(steps)} "
            f"steps, {length:g}s: {verdict}")  # fmt: skip
        if failures:
            if first is None:
                first, first_seen, shrink_started = list(steps), seen[key], clock()
                log(f"  guarantee broken after {counts['examples']} scenario(s); shrinking")
            if best is None or _size(steps) < _size(best):
                best = list(steps)
        return failures

    phases = [Phase.generate, Phase.shrink]
    limit = 1_000_000 if max_examples is None else max(1000, 50 * max_examples)

    @hypothesis_seed(seed)
    @settings(max_examples=limit, deadline=None, database=None, derandomize=False, phases=phases,
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, report_multiple_bugs=False,
              print_blob=False)  # fmt: skip
    @given(strategy)
    def probe(steps: list[StepBase]) -> None:
        if evaluate(steps):
            raise _Breach()

    stopped = "exhausted"
    try:
        probe()
    except _Stop as stop:
        stopped = stop.why
    except _Breach:
        stopped = "shrunk"
    elapsed = clock() - started
    result = ExploreResult(seed=seed, topology=topology.name, stopped=stopped, examples=counts["examples"],
                           shrink_runs=counts["shrink"], elapsed_s=elapsed, errors=errors)  # fmt: skip
    if first is None or best is None:
        log(f"explore {topology.name}: no guarantee broken in {counts['examples']} scenario(s), "
            f"{elapsed:.0f}s ({stopped}); seed {seed}")  # fmt: skip
        return result
    assert first_seen is not None
    minimal_seen = seen[_key(best)]
    result.original, result.original_failures = first, first_seen.failures
    result.minimal, result.failures, result.run_dir = best, minimal_seen.failures, minimal_seen.run_dir
    name = f"explore-{topology.name}"[:41].rstrip("-")
    result.scenario = scenario_of(best, name, f"Minimal failing schedule found by harness explore on "
                                              f"{topology.name} (seed {seed}): {'; '.join(result.failures)}")  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    result.scenario_path = out_dir / MINIMAL_FILE
    write_scenario(result.scenario, result.scenario_path)
    result.report_path = out_dir / REPORT_FILE
    result.report_path.write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n")
    log(f"explore {topology.name}: {'; '.join(result.failures)} — shrunk from {_fault_count(first)} fault(s) / "
        f"{len(first)} steps to {_fault_count(best)} / {len(best)} in {counts['shrink']} run(s); "
        f"{result.scenario_path} (seed {seed})")  # fmt: skip
    return result


def write_scenario(scenario: Scenario, path: Path) -> None:
    """``scenario`` as an ordinary scenario file (``harness validate`` / ``harness run`` read it back)."""
    yaml = YAML(typ="rt")
    yaml.default_flow_style = None
    yaml.width = 110
    with path.open("w", encoding="utf-8") as f:
        yaml.dump(scenario_doc(scenario), f)
