"""The ``harness`` command: a thin front door over the library.

Exit codes: 0 all checks valid / command done; 1 a check is invalid; 2 bad input or usage;
3 verdict unknown only; 4 harness or infrastructure error (the run proves nothing); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from harness.errors import HarnessError, InfraError, InputError
from harness.runtime.signals import raise_interrupt

log = logging.getLogger("harness.cli")

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_UNKNOWN, EXIT_INFRA, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        from harness.report.console import error

        error(f"{self.prog}: {message}")
        raise SystemExit(EXIT_USAGE)


def _runtime() -> Any:
    from harness.runtime.docker import DockerRuntime

    return DockerRuntime()


# -- commands ---------------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    """Every problem in every file, one line each; given topologies and scenarios together, every pair
    too (what ``run`` would refuse of it)."""
    from harness.model.scenario import Scenario
    from harness.model.topology import TopologyBase
    from harness.plan import Source, check_pair, check_scenario
    from harness.report.console import console, error
    from harness.specs import load_spec

    problems: list[str] = []
    topologies: list[tuple[Path, TopologyBase]] = []
    scenarios: list[tuple[Path, Scenario]] = []
    for name in args.files:
        path = Path(name)
        if _is_nightly(path):
            found = _validate_nightly(path)
            problems += found
            continue
        try:
            spec = load_spec(path)
        except InputError as exc:
            problems.append(str(exc))
            continue
        if isinstance(spec, Scenario):
            found = check_scenario(spec, Source.of(spec, path))
            scenarios.append((path, spec))
        else:
            assert isinstance(spec, TopologyBase)
            found = []
            topologies.append((path, spec))
        problems += found
        if not found:
            console.print(f"[green]ok[/green] {path}: {type(spec).__name__} {getattr(spec, 'name', '')}")
            note = _image_note(spec) if isinstance(spec, TopologyBase) else None
            if note:
                console.print(f"[yellow]note[/yellow] {path}: {note}")
    for tpath, topology in topologies:
        for spath, scenario in scenarios:
            pair = [
                p for p in check_pair(scenario, topology, Source.of(scenario, spath)) if p not in problems
            ]
            if pair:
                problems += [f"{line} (with {tpath})" for line in pair]
            else:
                console.print(f"[green]ok[/green] {spath} on {tpath}")
    if problems:
        error("\n".join(problems))
        return EXIT_USAGE
    return EXIT_OK


def _image_note(topology: Any) -> str | None:
    """A plain note for a valid topology that cannot run on this host: its upstream image is absent (``up``
    and ``run`` refuse it before anything starts). None when the image is there or built here."""
    name = topology.image.name
    if topology.image.profile != "upstream" or not name:
        return None
    try:
        present: bool | None = _runtime().image_exists(name)
    except Exception:
        present = None
    if present:
        return None
    why = "it is not present" if present is False else "no Docker engine answers to say whether it is present"
    return (f"topology {topology.name} cannot run here without the image {name} ({why}; pull it where a "
            "registry is reachable); the file itself is valid")  # fmt: skip


def _is_nightly(path: Path) -> bool:
    from harness.model.loading import read_yaml
    from harness.model.nightly import is_nightly_doc

    try:
        return is_nightly_doc(read_yaml(path))
    except InputError:
        return False  # load_spec says what is wrong with it


def _validate_nightly(path: Path) -> list[str]:
    """Problems of a nightly file and of every file it lists (pairs that do not fit are listed, not
    problems: the matrix skips them)."""
    from rich.markup import escape

    from harness.report.console import console

    try:
        _, plan = _nightly_plan(path)
    except InputError as exc:
        return str(exc).splitlines()
    console.print(f"[green]ok[/green] {escape(str(path))}: nightly, {len(plan.pairs)} pair(s) to run, "
                  f"{len(plan.skipped)} skipped (do not fit)")  # fmt: skip
    return []


def cmd_up(args: argparse.Namespace) -> int:
    from harness.lifecycle import system_for, up
    from harness.report.console import console, status_table
    from harness.specs import load_topology

    topology = load_topology(args.topology)
    runtime = _runtime()
    run = up(topology, runtime, hand_over=True)
    console.print(status_table(run.id, topology.system, system_for(run, runtime).status()))
    console.print(f"run [bold]{run.id}[/bold] is up; `harness down {run.id}` removes it")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from harness.lifecycle import load_run, run_ids, system_for
    from harness.report.console import console, status_table

    runtime = _runtime()
    ids = [args.run] if args.run else sorted(run_ids(runtime))
    if args.json:
        from harness.report.jsonout import logs_on_stderr, print_json, status_doc

        with logs_on_stderr():
            docs = []
            for run_id in ids:
                run = load_run(run_id, runtime)
                docs.append(status_doc(run.id, run.topology.system, list(system_for(run, runtime).status())))
            print_json({"runs": docs})
        return EXIT_OK
    if not ids:
        console.print("no runs")
        return EXIT_OK
    for run_id in ids:
        run = load_run(run_id, runtime)
        console.print(status_table(run.id, run.topology.system, system_for(run, runtime).status()))
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    from harness.lifecycle import down, run_ids
    from harness.runtime import storage

    if not args.all and not args.run:
        raise InputError("down: name a run (see `harness status`) or give --all")
    runtime = _runtime()
    if args.all:
        ids = sorted(run_ids(runtime))
        for run_id in ids:
            log.info(f"removed run {run_id} ({down(run_id, runtime)} resources)")
        leftovers = runtime.remove_run(None)
        for run_id in sorted(storage.mounted_run_ids()):  # mounts of runs whose resources are gone
            leftovers += storage.unmount_run(run_id)
        if leftovers:
            log.info(f"removed {leftovers} more labelled resource(s)")
        if not ids and not leftovers:
            log.info("nothing to remove")
        return EXIT_OK
    if args.run not in run_ids(runtime):
        raise InputError(f"down: no run {args.run!r} (runs: {', '.join(sorted(run_ids(runtime))) or 'none'})")
    log.info(f"removed run {args.run} ({down(args.run, runtime)} resources)")
    return EXIT_OK


def cmd_images_build(args: argparse.Namespace) -> int:
    from harness.runtime.images import ensure_node_image

    ensure_node_image(_runtime(), force=args.force, via=args.via)
    return EXIT_OK


def _exit_for(valid: object) -> int:
    return {True: EXIT_OK, False: EXIT_INVALID}.get(valid, EXIT_UNKNOWN)  # type: ignore[call-overload]


def _load_run_inputs(topology_path: str, scenario_paths: Sequence[str]) -> tuple[Any, list[Any]]:
    """The topology and every scenario ``run`` got, each pair checked as ``validate`` would: every problem of
    every file and pair at once (SpecError, exit 2), before anything starts."""
    from harness.model.loading import SpecError
    from harness.plan import Source, check_pair
    from harness.specs import load_scenario, load_topology

    problems: list[str] = []

    def add(lines: Sequence[str]) -> None:
        problems.extend(line for line in lines if line not in problems)

    topology = None
    try:
        topology = load_topology(topology_path)
    except InputError as exc:
        add(str(exc).splitlines())
    loaded: dict[str, Any] = {}
    for name in scenario_paths:
        if name in loaded:
            continue
        try:
            loaded[name] = load_scenario(name)
        except InputError as exc:
            add(str(exc).splitlines())
            loaded[name] = None
            continue
        if topology is not None:
            add(check_pair(loaded[name], topology, Source.of(loaded[name], Path(name))))
    if problems:
        raise SpecError(problems)
    return topology, [loaded[name] for name in scenario_paths]


def cmd_explore(args: argparse.Namespace) -> int:
    """Generated fault schedules on one reused cluster until a guarantee breaks (then shrunk there, the
    minimal one written as a scenario file) or the budget is spent. Exit 1 when one broke, 0 otherwise."""
    import secrets
    import time

    from harness.explore import explore
    from harness.model.durations import parse_duration
    from harness.model.loading import SpecError
    from harness.report.console import console
    from harness.reuse import ReusedCluster
    from harness.runner import RunOutcome, run_next
    from harness.specs import load_topology
    from harness.workloads import WORKLOADS

    topology = load_topology(args.topology)
    problems = []
    if args.workload not in WORKLOADS:
        problems.append(f"explore: --workload: unknown workload {args.workload!r}, expected one of: "
                        f"{', '.join(sorted(WORKLOADS))}")  # fmt: skip
    budgets = {}
    for flag in ("budget", "scenario_budget", "shrink_budget"):
        value = getattr(args, flag)
        if value is None:
            continue
        try:
            budgets[flag] = parse_duration(value)
        except (ValueError, TypeError) as exc:
            problems.append(f"explore: --{flag.replace('_', '-')}: {exc}")
    if budgets.get("scenario_budget", 30.0) < 5.0:
        problems.append("explore: --scenario-budget: expected at least 5s (3s of settle and a final wait)")
    if problems:
        raise SpecError(problems)
    workload: dict[str, Any] = {"type": args.workload, "clients": args.clients, "rate": args.rate}
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    out = Path(args.reports) / f"explore-{topology.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    console.print(f"explore {topology.name} with {args.workload}: seed {seed}, budget {budgets['budget']:g}s, "
                  f"reports in {out}/")  # fmt: skip
    cluster = ReusedCluster(topology, _runtime(), hand_over=args.keep)

    def run(scenario: Any) -> RunOutcome:
        outcome = run_next(cluster, scenario, reports=out / "runs", seed=seed)
        verdict = {True: "valid", False: "INVALID"}.get(outcome.result.valid, "unknown")  # type: ignore[arg-type]
        steps = len(scenario.steps)
        console.print(f"  {outcome.run_id}: {steps} steps, {scenario.duration_s:.0f}s: {verdict}")
        return outcome

    try:
        result = explore(topology, workload, budget_s=budgets["budget"], seed=seed, run=run, out_dir=out,
                         max_examples=args.max_examples, shrink_examples=args.shrink_examples,
                         shrink_budget_s=budgets.get("shrink_budget"), safety_only=not args.any_guarantee,
                         scenario_budget_s=budgets.get("scenario_budget", 30.0), log=console.print)  # fmt: skip
    finally:
        cluster.close()
    (out / "seed").write_text(f"{seed}\n")
    if result.found:
        console.print(f"[red]a guarantee broke[/red] after {result.examples} schedule(s); shrunk in "
                      f"{result.shrink_runs} run(s) to {len(result.minimal or [])} steps: {result.scenario_path}")  # fmt: skip
        for line in result.failures:
            console.print(f"  {line}")
        console.print(f"replay: harness run {args.topology} {result.scenario_path}")
        return EXIT_INVALID
    console.print(f"[green]no guarantee broke[/green] in {result.examples} schedule(s), {result.elapsed_s:.0f}s "
                  f"({result.stopped})")  # fmt: skip
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """One or several scenarios on one topology (several: one reused cluster, through ``run_scenarios``);
    ``--count N`` runs the list N times. Exit 0 when every verdict is valid, 1 if any is invalid, 3 if one
    is unknown (and none invalid)."""
    from harness.checkers.base import merge_valid
    from harness.report.console import console, result_table
    from harness.runner import RunOutcome, run_scenarios

    if args.count < 1:
        raise InputError(f"run: --count: expected at least 1, got {args.count}")
    topology, scenarios = _load_run_inputs(args.topology, args.scenarios)  # every problem, before anything
    scenarios = list(scenarios) * args.count

    def show(outcome: RunOutcome) -> None:
        title = f"{_scenario_name(outcome)} on {topology.name} — run {outcome.run_id}"
        if outcome.reused:
            title += f" (cluster {outcome.cluster_id or '?'} reused)"
        console.print(result_table(title, outcome.result))
        if outcome.replaced:
            console.print(f"[yellow]cluster replaced before this scenario: {outcome.replaced}[/yellow]")
        console.print(
            f"report: {outcome.report_dir}/ (result.json, history.jsonl, events.jsonl, samples.jsonl, "
            "harness.log, logs/)"
        )

    kwargs = {"runtime": _runtime(), "reports": Path(args.reports), "keep": args.keep, "seed": args.seed}
    if args.json:
        from harness.matrix import outcome_doc, verdict_word
        from harness.report.jsonout import logs_on_stderr, print_json

        with logs_on_stderr():
            outcomes = run_scenarios(topology, scenarios, **kwargs)
            valid = merge_valid(o.result.valid for o in outcomes)
            print_json({"topology": topology.name, "count": args.count, "valid": valid,
                        "verdict": verdict_word(valid), "runs": [outcome_doc(o) for o in outcomes]})  # fmt: skip
        return _exit_for(valid)
    outcomes = run_scenarios(topology, scenarios, on_outcome=show, **kwargs)
    if len(outcomes) > 1:
        from rich.table import Table

        table = Table(title=f"{len(outcomes)} runs on {topology.name}", title_justify="left")
        for column in ("scenario", "run", "verdict", "cluster"):
            table.add_column(column)
        for o in outcomes:
            verdict = {True: "[green]valid[/green]", False: "[red]INVALID[/red]"}.get(
                o.result.valid,  # type: ignore[arg-type]
                "[yellow]unknown[/yellow]",
            )
            cluster = ("reused " if o.reused else "new ") + (o.cluster_id or o.run_id)
            if o.replaced:
                cluster += f" (replaced: {o.replaced})"
            table.add_row(_scenario_name(o), o.run_id, verdict, cluster)
        console.print(table)
    return _exit_for(merge_valid(o.result.valid for o in outcomes))


def _scenario_name(outcome: Any) -> str:
    """The scenario a run directory holds (its scenario.json)."""
    import json

    try:
        return str(json.loads((Path(outcome.report_dir) / "scenario.json").read_text()).get("name", "?"))
    except (OSError, ValueError, AttributeError):
        return "?"


# -- matrix, nightly, trends -------------------------------------------------------------------------------
def _print_plan(plan: Any, *, dry_run: bool) -> None:
    from rich.markup import escape

    from harness.report.console import console

    verb = "would run" if dry_run else "runs"
    for path, topology, pairs in plan.by_topology():
        names = ", ".join(p.scenario.name for p in pairs)
        console.print(
            f"{verb} on [bold]{escape(topology.name)}[/bold] ({escape(str(path))}): {escape(names)}"
        )
    for s in plan.skipped:
        console.print(f"[dim]skipped {escape(s.scenario)} on {escape(s.topology)}: {escape(s.reason)}[/dim]")
    if not plan.pairs:
        console.print("[yellow]no (topology, scenario) pair fits: nothing to run[/yellow]")


def _matrix(plan: Any, *, reports: Path, prefix: str, count: int, seed: int, keep: bool,
            meta: dict[str, Any]) -> Any:  # fmt: skip
    from harness.matrix import matrix_dir, run_matrix
    from harness.report.compare import rich_table
    from harness.report.console import console

    def progress(outcome: Any) -> None:
        verdict = {True: "valid", False: "INVALID"}.get(outcome.result.valid, "unknown")
        reuse = f", cluster {outcome.cluster_id} reused" if outcome.reused else ""
        log.info(f"{_scenario_name(outcome)}: {verdict} (run {outcome.run_id}{reuse})")

    directory = matrix_dir(reports, prefix)
    done = run_matrix(plan, runtime=_runtime(), directory=directory, count=count, keep=keep, seed=seed,
                      on_outcome=progress, meta=meta)  # fmt: skip
    if done.comparison is not None:
        console.print(rich_table(done.comparison))
    console.print(f"matrix: {directory}/ (matrix.html, matrix.md, matrix.json, junit.xml)")
    return done


def cmd_matrix(args: argparse.Namespace) -> int:
    """Every fitting (topology, scenario) pair; each topology's scenarios on one reused cluster."""
    from harness.matrix import expand, plan_matrix

    if args.count < 1:
        raise InputError(f"matrix: --count: expected at least 1, got {args.count}")
    topologies = [*args.topologies, *args.topology_options]
    if not topologies:
        raise InputError("matrix: expected at least one topology (TOPOLOGY... or --topologies TOPOLOGY...)")
    plan = plan_matrix([(expand(topologies), expand(args.scenarios))])
    _print_plan(plan, dry_run=args.dry_run)
    if args.dry_run or not plan.pairs:
        return EXIT_OK
    done = _matrix(plan, reports=Path(args.reports), prefix="matrix", count=args.count, seed=args.seed,
                   keep=args.keep, meta={})  # fmt: skip
    return _exit_for(done.valid)


def _nightly_plan(path: Path) -> tuple[Any, Any]:
    from harness.matrix import expand, plan_matrix
    from harness.model.nightly import load_nightly

    spec = load_nightly(path)
    base = path.parent
    groups = []
    if spec.topologies:
        groups.append((expand(spec.topologies, base), expand(spec.scenarios, base)))
    groups += [(expand([p.topology], base), expand(p.scenarios, base)) for p in spec.pairs]
    return spec, plan_matrix(groups)


def _trends_exit(trends: Any, *verdicts: object) -> int:
    if trends.failed or False in verdicts:
        return EXIT_INVALID
    if trends.unknown or any(v != True for v in verdicts):  # noqa: E712 - True, False or "unknown"
        return EXIT_UNKNOWN
    return EXIT_OK


def _write_trends(root: Path, history: int, thresholds: Any, output: Path | None = None) -> Any:
    from harness.report.console import console
    from harness.report.trends import build_trends, load_history, write_trends

    trends = build_trends(load_history(root)[-history:], thresholds)
    paths = write_trends(trends, output or root)
    for r in trends.regressions:
        console.print(f"[red]regression[/red] {r.message}", markup=True)
    for topology, scenario in trends.invalid:
        console.print(f"[red]invalid[/red] {scenario} on {topology}")
    for topology, scenario in trends.missing:
        console.print(f"[yellow]not run in the latest nightly[/yellow]: {scenario} on {topology}")
    console.print(f"trends: {', '.join(str(p) for p in paths)} "
                  f"({len(trends.nightlies)} nightlies, {len(trends.regressions)} regression(s))")  # fmt: skip
    return trends


def cmd_nightly(args: argparse.Namespace) -> int:
    """The matrix a nightly file lists, then trends and regressions over the stored nightlies."""
    from harness.report.trends import append_history, prune_history, read_nightly

    path = Path(args.file)
    spec, plan = _nightly_plan(path)
    reports = Path(spec.reports) if Path(spec.reports).is_absolute() else path.parent / spec.reports
    _print_plan(plan, dry_run=args.dry_run)
    if args.dry_run:
        return EXIT_OK
    if not plan.pairs:
        raise InputError(f"{path}: no (topology, scenario) pair fits: nothing to run")
    done = _matrix(plan, reports=reports, prefix="nightly", count=spec.count, seed=spec.seed, keep=spec.keep,
                   meta={"nightly": spec.name, "nightly_file": str(path)})  # fmt: skip
    history = append_history(reports, read_nightly(done.directory))
    log.info(f"figures appended to {history}")
    for gone in prune_history(reports, spec.history):
        log.info(f"removed {gone} (history: {spec.history})")
    trends = _write_trends(reports, spec.history, spec.regressions)
    return _trends_exit(trends, done.valid)


def cmd_trends(args: argparse.Namespace) -> int:
    """Trends and regressions rebuilt from stored nightlies (nothing runs)."""
    from harness.model.nightly import Regressions, load_nightly

    thresholds, history = Regressions(), args.history
    if args.nightly:
        spec = load_nightly(Path(args.nightly))
        thresholds, history = spec.regressions, history or spec.history
    trends = _write_trends(Path(args.directory), history or 1000, thresholds,
                           Path(args.output) if args.output else None)  # fmt: skip
    if not trends.nightlies:
        raise InputError(f"{args.directory}: no nightly in it (a nightly is a directory with a matrix.json)")
    latest = trends.latest
    return _trends_exit(trends, latest.valid)


def cmd_check(args: argparse.Namespace) -> int:
    from harness.report.console import console, result_table
    from harness.runner import check_report

    report = _report_dir(args.report)
    if args.json:
        from harness.report.jsonout import logs_on_stderr, print_json

        with logs_on_stderr():
            result = check_report(report, write=False)
            print_json({"run_dir": str(report), "valid": result.valid, "result": result.to_dict()})
        return _exit_for(result.valid)
    result = check_report(report, write=False)
    console.print(result_table(f"re-checked {report}", result))
    return _exit_for(result.valid)


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild ``report.html`` and ``junit.xml`` of a stored run (its checks run again, as ``check``)."""
    from harness.report.console import console
    from harness.report.html import write_report
    from harness.runner import check_report
    from harness.stored_run import load_stored_run

    report = _report_dir(args.report)
    stored = load_stored_run(report)
    result = check_report(report, write=False, stored=stored)
    page = write_report(report, result, stored)
    console.print(f"report: {page} (and {page.with_name('junit.xml')}); verdict {result.valid}")
    return _exit_for(result.valid)


def cmd_compare(args: argparse.Namespace) -> int:
    """Runs side by side: a table on the terminal, or ``--format`` md/html/json/csv (``-o FILE``)."""
    from harness.report.compare import compare, render, rich_table
    from harness.report.console import console
    from harness.report.jsonout import logs_on_stderr

    fmt = "json" if args.json else args.format
    with logs_on_stderr() if fmt != "table" else _nothing():
        comparison = compare([Path(p) for p in args.runs])
        if fmt == "table" and not args.output:
            console.print(rich_table(comparison))
            return EXIT_OK
        text = render(comparison, "md" if fmt == "table" else fmt)
        if args.output and args.output != "-":
            Path(args.output).write_text(text, encoding="utf-8")
            log.info(f"wrote {args.output} ({len(comparison.cells)} cells)")
        else:
            sys.stdout.write(text)
    return EXIT_OK


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


def _report_dir(name: str) -> Path:
    """A run's report directory: the path itself, or ``reports/<run-id>``."""
    for candidate in (Path(name), Path("reports") / name):
        if candidate.is_dir():
            return candidate
    raise InputError(f"{name}: no report there (expected a run directory, or a run id under reports/)")


def cmd_export(args: argparse.Namespace) -> int:
    from harness.model.history import read_history
    from harness.report.edn import write_edn

    report = _report_dir(args.report)
    history = read_history(report / "history.jsonl")
    if args.output == "-":
        write_edn(history, sys.stdout)
        return EXIT_OK
    target = Path(args.output) if args.output else report / "history.edn"
    write_edn(history, target)
    log.info(f"wrote {len(history)} ops to {target} (Jepsen EDN: one op map per line, for Elle and Knossos)")
    return EXIT_OK


def _nemesis(run_id: str) -> Any:
    from harness.faults.nemesis import Nemesis
    from harness.lifecycle import load_run, run_clock, system_for
    from harness.paths import run_dir

    runtime = _runtime()
    run = load_run(run_id, runtime)
    return Nemesis(system_for(run, runtime), events=run_dir(run.id) / "events.jsonl", clock=run_clock(run))


LINK_FLAGS = ("latency", "bandwidth", "timeout", "stall", "reset_peer", "slow_close", "slicer", "limit_data",
              "down")  # fmt: skip


def link_doc(args: argparse.Namespace) -> dict[str, Any]:
    """The ``link:`` step the flags of ``harness fault RUN link`` mean (validated by the step model)."""
    from harness.model.durations import parse_duration

    def ms(value: str) -> int:
        try:
            return round(parse_duration(value) * 1000)
        except ValueError as exc:
            raise InputError(f"fault link: {exc}") from None

    given = [k for k in LINK_FLAGS if getattr(args, k) not in (None, False)]
    if len(given) != 1:
        flags = ", ".join("--" + k.replace("_", "-") for k in LINK_FLAGS)
        raise InputError(f"fault link: give exactly one of {flags}")
    (kind,) = given
    value = getattr(args, kind)
    doc: dict[str, Any] = {"target": args.target, "kind": kind}
    if kind != "down":
        doc |= {"direction": args.direction or ("both" if kind == "stall" else "downstream"),
                "toxicity": args.toxicity}  # fmt: skip
    if kind == "latency":
        doc |= {"latency_ms": ms(value), "jitter_ms": ms(args.jitter or "0")}
    elif kind == "bandwidth":
        doc["rate_kbps"] = value
    elif kind in ("timeout", "reset_peer"):
        doc["timeout_ms"] = ms(value)
    elif kind == "slow_close":
        doc["delay_ms"] = ms(value)
    elif kind == "limit_data":
        doc["bytes"] = value
    elif kind == "slicer":
        size, _, rest = str(value).partition(":")
        variation, _, delay = rest.partition(":")
        try:
            doc |= {
                "average_size": int(size),
                "size_variation": int(variation or 0),
                "delay_us": int(delay or 0),
            }
        except ValueError:
            raise InputError(
                f"fault link: --slicer: expected SIZE[:VARIATION[:DELAY_US]], got {value!r}"
            ) from None
    return doc


def fault_step(args: argparse.Namespace) -> Any:
    """The step model ``harness fault RUN ...`` applies: the same models scenario files are parsed into."""
    from harness.model.durations import parse_duration
    from harness.model.faults import parse_step

    if args.fault == "partition":
        if args.isolate:
            shape: Any = {"isolate": args.isolate}
        elif args.groups:
            shape = {"groups": [g.split(",") for g in args.groups.split(";")]}
        elif args.one_way:
            src, _, dst = args.one_way.partition(":")
            to = dst.split(",")
            shape = {"one_way": {"from": src, "to": to[0] if len(to) == 1 else to}}
        else:
            shape = {"shape": args.shape or "halves"}
        return parse_step({"partition": shape}, "fault partition")
    if args.fault == "link":
        return parse_step({"link": link_doc(args)}, "fault")
    if args.fault == "crash-all":
        return parse_step({"crash_all": {"window": args.window}}, "fault crash-all")
    if args.fault == "power-loss":
        return parse_step({"power_loss": {"target": args.target, "window": args.window}}, "fault power-loss")
    if args.fault == "clock":
        clock: dict[str, Any] = {"target": args.target}
        if args.bump is not None:
            clock["bump"] = args.bump
        elif args.drift is not None:
            clock["drift"] = args.drift
        else:
            delta, _, period = args.strobe.partition(":")
            clock["strobe"] = {"delta": delta, "period": period or None}
        return parse_step({"clock": clock}, "fault clock")
    if args.fault == "wipe":
        return parse_step({"wipe": {"target": args.target, "return": not args.no_return}}, "fault wipe")
    if args.fault == "disk":
        disk: dict[str, Any] = {"target": args.target, "kind": args.kind}
        if args.ops:
            disk["ops"] = [op for op in args.ops.split(",") if op]
        if args.latency:
            try:
                disk["latency_ms"] = round(parse_duration(args.latency) * 1000)
            except ValueError as exc:
                raise InputError(f"fault disk: --latency: {exc}") from None
        return parse_step({"disk": disk}, "fault disk")
    return parse_step({args.fault: args.target}, "fault")


def cmd_fault(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from harness.report.console import console

    step = fault_step(args)  # bad flags are refused before the run is even looked up
    nemesis = _nemesis(args.run)
    events = nemesis.apply(step)
    if args.fault in ("resume", "start"):
        console.print(f"{args.fault}: {', '.join(e.id for e in events) or 'nothing to do'}")
        return EXIT_OK
    for event in events:
        target = event.target if isinstance(event.target, str) else ",".join(event.target)
        state = "in effect" if event.end is None else "done"  # a wipe that returned at once has ended
        shown = escape(f"{event.name} on {target} via {event.mechanism}")  # a partition's target: [n1] | [n2]
        console.print(f"[bold]{event.id}[/bold] {shown} — {state}")
    return EXIT_OK


def cmd_heal(args: argparse.Namespace) -> int:
    nemesis = _nemesis(args.run)
    nemesis.heal(wait=not args.no_wait)
    extra = "".join([", every disk healthy" if nemesis.system.lazy_storage else "",
                     ", every clock true" if nemesis.system.fake_clock else ""])  # fmt: skip
    log.info(f"run {args.run} healed: no partition, no toxics, nothing paused{extra}, every node up")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from harness.doctor import doctor

    return doctor(fix=args.fix)


# -- parser -----------------------------------------------------------------------------------------
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ha-harness")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="harness", description="Chaos and failover testing for replicated databases and brokers."
    )
    parser.add_argument("--version", action="version", version=f"harness {_version()}")
    parser.add_argument("--no-progress", action="store_true",
                        help="no live progress bars (image build, bring-up, timeline, checks); they are shown "
                             "only on an interactive terminal anyway, never with --json; HARNESS_PROGRESS=0 "
                             "turns them off too")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("validate", cmd_validate, "check topology and scenario files, and each topology with each "
                                      "scenario; every problem, one line each, exit 2")  # fmt: skip
    p.add_argument("files", nargs="+", metavar="FILE")
    p = add("up", cmd_up, "bring a topology's cluster up and return once it is ready")
    p.add_argument("topology", metavar="TOPOLOGY")
    p = add("status", cmd_status, "show runs and the state of their nodes")
    p.add_argument("run", nargs="?", metavar="RUN")
    p.add_argument("--json", action="store_true", help="machine-readable: one JSON document on stdout")
    p = add("down", cmd_down, "remove a run (or --all runs) and everything it created")
    p.add_argument("run", nargs="?", metavar="RUN")
    p.add_argument("--all", action="store_true", help="every resource carrying the harness's labels")
    p = add("export", cmd_export, "export a stored run's history (Jepsen's EDN, for Elle and Knossos)")
    p.add_argument("report", metavar="RUN", help="report directory or run id (reports/<run-id>)")
    p.add_argument("--edn", action="store_true", required=True, help="EDN history (the only format for now)")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="where to write (default RUN/history.edn; - for stdout)"
    )
    images = sub.add_parser("images", help="node images", description="node images")
    images_sub = images.add_subparsers(dest="images_command", required=True, parser_class=_Parser)
    p = images_sub.add_parser("build", help="build the node image unless its recipe's tag exists")
    p.set_defaults(func=cmd_images_build)
    p.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    p.add_argument("--via", choices=["auto", "mmdebstrap", "dockerfile"], default="auto")
    p = add("run", cmd_run, "run scenarios on a topology's cluster (several: one reused cluster) and check "
                            "the results")  # fmt: skip
    p.add_argument("topology", metavar="TOPOLOGY")
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    p.add_argument("--count", type=int, default=1, metavar="N", help="run the list of scenarios N times")
    p.add_argument("--json", action="store_true", help="machine-readable: a summary of every run on stdout")
    p.add_argument("--reports", default="reports", metavar="DIR", help="where reports/<run-id>/ goes")
    p.add_argument("--keep", action="store_true", help="leave the cluster up afterwards")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (replayable)")
    p = add("explore", cmd_explore, "run generated fault schedules on one reused cluster until a guarantee "
                                    "breaks, shrink it there, write the minimal scenario")  # fmt: skip
    p.add_argument("topology", metavar="TOPOLOGY")
    p.add_argument("--workload", required=True, metavar="TYPE", help="sql-set, amqp-queue, sql-bank…")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rate", type=float, default=100.0, help="ops/s per client")
    p.add_argument("--budget", default="10m", metavar="DURATION", help="wall clock for finding a failure")
    p.add_argument("--scenario-budget", default=None, metavar="DURATION",
                   help="each generated scenario's length (default 30s)")  # fmt: skip
    p.add_argument("--shrink-budget", default=None, metavar="DURATION", help="wall clock for shrinking")
    p.add_argument("--shrink-examples", type=int, default=30, metavar="N", help="runs for shrinking")
    p.add_argument("--max-examples", type=int, default=None, metavar="N", help="schedules to try at most")
    p.add_argument("--any-guarantee", action="store_true",
                   help="count availability and lag bounds too (default: safety figures only)")  # fmt: skip
    p.add_argument("--seed", type=int, default=None, help="hypothesis seed (default random, printed)")
    p.add_argument("--reports", default="reports", metavar="DIR", help="where reports/explore-…/ goes")
    p.add_argument("--keep", action="store_true", help="leave the cluster up afterwards")
    p = add("matrix", cmd_matrix, "run every (topology, scenario) pair that fits and compare them")
    p.add_argument("topologies", nargs="*", metavar="TOPOLOGY")
    p.add_argument("--topologies", nargs="+", dest="topology_options", default=[], metavar="TOPOLOGY",
                   help="topology files, directories of them, or globs (or give them before the options)")  # fmt: skip
    p.add_argument("--scenarios", nargs="+", required=True, metavar="SCENARIO",
                   help="scenario files, directories of them, or globs")  # fmt: skip
    p.add_argument("--count", type=int, default=1, metavar="N", help="runs of each pair")
    p.add_argument("--dry-run", action="store_true", help="list the pairs (and those skipped); start nothing")
    p.add_argument("--reports", default="reports", metavar="DIR", help="where reports/matrix-<time>/ goes")
    p.add_argument("--keep", action="store_true", help="leave the clusters up afterwards")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (replayable)")
    p = add(
        "nightly", cmd_nightly, "run a nightly file's matrix, then trends and regressions over its history"
    )
    p.add_argument("file", metavar="NIGHTLY_YAML")
    p.add_argument("--dry-run", action="store_true", help="list the pairs (and those skipped); start nothing")
    p = add("trends", cmd_trends, "rebuild trends.html, trends.json and regressions.md from stored nightlies")
    p.add_argument("directory", metavar="DIR", help="the directory of nightlies (a nightly file's reports)")
    p.add_argument("--nightly", metavar="NIGHTLY_YAML", help="take the thresholds and history from this file")
    p.add_argument("--history", type=int, default=0, metavar="N", help="only the N latest nightlies")
    p.add_argument("-o", "--output", metavar="DIR", help="write there instead of DIR")
    p = add("check", cmd_check, "re-run the checkers on a stored run directory (no cluster)")
    p.add_argument("report", metavar="RUN", help="report directory or run id (reports/<run-id>)")
    p.add_argument("--json", action="store_true", help="machine-readable: the result as JSON on stdout")
    p = add("report", cmd_report, "rebuild a stored run's report.html and junit.xml (no cluster)")
    p.add_argument("report", metavar="RUN", help="report directory or run id (reports/<run-id>)")
    p = add("compare", cmd_compare, "compare runs: rows are topologies, columns are scenarios")
    p.add_argument("runs", nargs="+", metavar="RUN_OR_DIR", help="run directories, or directories of runs")
    p.add_argument("--format", choices=["table", "md", "html", "json", "csv"], default="table")
    p.add_argument("-o", "--output", metavar="FILE", help="write there instead of stdout")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p = add("fault", cmd_fault, "inject one fault into a running run (by hand, for exploring)")
    p.add_argument("run", metavar="RUN")
    faults = p.add_subparsers(dest="fault", required=True, parser_class=_Parser)
    f = faults.add_parser("partition", help="cut the peer mesh (iptables in each node's namespace)")
    f.add_argument("--isolate", metavar="NODE|ROLE", help="isolate one node, by name or role (primary)")
    f.add_argument("--shape", choices=["halves", "random_halves", "majorities_ring", "bridge"])
    f.add_argument("--groups", metavar="n1;n2,n3", help="explicit groups, ';' between groups")
    f.add_argument("--one-way", metavar="SRC:DST", help="SRC cannot reach DST (DST can reach SRC)")
    f = faults.add_parser("link", help="a Toxiproxy fault on a client link (node name or proxy name)")
    f.add_argument("target", metavar="LINK")
    kinds = f.add_mutually_exclusive_group(required=True)
    kinds.add_argument("--latency", metavar="DURATION", help="delay data (with --jitter)")
    kinds.add_argument("--bandwidth", type=int, metavar="KB/s", help="limit the rate")
    kinds.add_argument("--timeout", metavar="DURATION", help="stop data, close connections after DURATION")
    kinds.add_argument("--stall", action="store_true", help="stop data, keep connections open")
    kinds.add_argument("--reset-peer", metavar="DURATION", nargs="?", const="0", help="reset connections")
    kinds.add_argument("--slow-close", metavar="DURATION", help="delay closes")
    kinds.add_argument("--slicer", metavar="SIZE[:VAR[:US]]", help="slice data into small packets")
    kinds.add_argument("--limit-data", type=int, metavar="BYTES", help="close after BYTES")
    kinds.add_argument("--down", action="store_true", help="disable the proxy")
    f.add_argument("--jitter", metavar="DURATION")
    f.add_argument("--direction", choices=["upstream", "downstream", "both"], default=None,
                   help="default downstream (both for --stall)")  # fmt: skip
    f.add_argument("--toxicity", type=float, default=1.0)
    for name, text in [("kill", "SIGKILL"), ("pause", "freeze"), ("stop", "graceful stop"),
                       ("start", "start stopped nodes"), ("restart", "stop then start"),
                       ("resume", "unfreeze")]:  # fmt: skip
        f = faults.add_parser(name, help=f"{text} a node (name, role or all)")
        f.add_argument("target", nargs="?", default="primary" if name not in ("start", "resume") else "all")
    f = faults.add_parser("crash-all", help="SIGKILL every node within a window")
    f.add_argument("--window", default="0s", metavar="DURATION")
    f = faults.add_parser("power-loss", help="SIGKILL and drop un-fsynced writes (storage: lazyfs)")
    f.add_argument("target", nargs="?", default="all", metavar="NODE|ROLE|all")
    f.add_argument("--window", default="0s", metavar="DURATION", help="each node within this window")
    f = faults.add_parser("clock", help="jump, drift or strobe a node's wall clock (clock: faketime); heal "
                          "sets it true")  # fmt: skip
    f.add_argument("target", metavar="NODE|ROLE|all")
    modes = f.add_mutually_exclusive_group(required=True)
    modes.add_argument("--bump", metavar="DURATION", help="signed, e.g. --bump=-30s or --bump 5s")
    modes.add_argument("--drift", type=float, metavar="RATE", help="extra seconds per second, e.g. 0.01")
    modes.add_argument("--strobe", metavar="DELTA:PERIOD", help="jump DELTA forward and back every PERIOD")
    f = faults.add_parser("wipe", help="a node lost with its disk: back empty and re-seeded (or not, "
                          "until heal)")  # fmt: skip
    f.add_argument("target", nargs="?", default="primary", metavar="NODE|ROLE")
    f.add_argument("--no-return", action="store_true", help="stay down until `harness heal`")
    f = faults.add_parser("disk", help="a faulty disk under a node's data (storage: lazyfs); heal clears it")
    f.add_argument("target", metavar="NODE|ROLE|all")
    f.add_argument("--kind", choices=["eio", "enospc", "slow"], required=True)
    f.add_argument(
        "--ops", metavar="write,fsync", help="operations that fail or are slow (default write,fsync)"
    )
    f.add_argument("--latency", metavar="DURATION", help="for --kind slow: added to each operation")
    p = add("heal", cmd_heal, "undo every fault of a run and wait until it is healthy")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--no-wait", action="store_true", help="return without waiting for recovery")
    p = add("doctor", cmd_doctor, "say what is missing and how to get it")
    p.add_argument("--fix", action="store_true", help="run the set-up script to install what is missing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from harness.errors import IncompleteRunError
    from harness.report.console import console, error, log_to_console
    from harness.report.progress import live_display, wanted

    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    log_to_console()
    try:
        with live_display(console, enabled=wanted(args.no_progress)):
            return int(args.func(args))
    except IncompleteRunError as exc:
        error(str(exc))
        return EXIT_UNKNOWN
    except InputError as exc:
        error(str(exc))
        return EXIT_USAGE
    except InfraError as exc:
        error(str(exc))
        return EXIT_INFRA
    except HarnessError as exc:
        error(str(exc))
        return EXIT_INFRA
    except KeyboardInterrupt:
        error("interrupted; everything this command started was removed")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
