"""The ``harness`` command: a thin front door over the library.

Exit codes: 0 all checks valid / command done; 1 a check is invalid; 2 bad input or usage;
3 verdict unknown only; 4 harness or infrastructure error (the run proves nothing); 130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from harness.errors import HarnessError, InfraError, InputError
from harness.runtime.signals import raise_interrupt

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
    from harness.model.specs import load_spec
    from harness.report.console import console, error

    problems = []
    for path in args.files:
        try:
            spec = load_spec(Path(path))
            console.print(f"[green]ok[/green] {path}: {type(spec).__name__} {getattr(spec, 'name', '')}")
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        error("\n".join(problems))
        return EXIT_USAGE
    return EXIT_OK


def cmd_up(args: argparse.Namespace) -> int:
    from harness.model.topology import load_topology
    from harness.report.console import console, say, status_table
    from harness.runtime.cluster import system_for, up

    topology = load_topology(args.topology)
    runtime = _runtime()
    run = up(topology, runtime, say=say, hand_over=True)
    console.print(status_table(run.id, topology.system, system_for(run, runtime).status()))
    console.print(f"run [bold]{run.id}[/bold] is up; `harness down {run.id}` removes it")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from harness.report.console import console, status_table
    from harness.runtime.cluster import load_run, run_ids, system_for

    runtime = _runtime()
    ids = [args.run] if args.run else sorted(run_ids(runtime))
    if not ids:
        console.print("no runs")
        return EXIT_OK
    for run_id in ids:
        run = load_run(run_id, runtime)
        console.print(status_table(run.id, run.topology.system, system_for(run, runtime).status()))  # type: ignore[attr-defined]
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    from harness.report.console import say
    from harness.runtime.cluster import down, run_ids

    if not args.all and not args.run:
        raise InputError("down: name a run (see `harness status`) or give --all")
    runtime = _runtime()
    if args.all:
        ids = sorted(run_ids(runtime))
        for run_id in ids:
            say(f"removed run {run_id} ({down(run_id, runtime)} resources)")
        leftovers = runtime.remove_run(None)
        if leftovers:
            say(f"removed {leftovers} more labelled resource(s)")
        if not ids and not leftovers:
            say("nothing to remove")
        return EXIT_OK
    if args.run not in run_ids(runtime):
        raise InputError(f"down: no run {args.run!r} (runs: {', '.join(sorted(run_ids(runtime))) or 'none'})")
    say(f"removed run {args.run} ({down(args.run, runtime)} resources)")
    return EXIT_OK


def cmd_images_build(args: argparse.Namespace) -> int:
    from harness.report.console import say
    from harness.runtime.images import ensure_node_image

    ensure_node_image(_runtime(), force=args.force, via=args.via, say=say)
    return EXIT_OK


def _exit_for(valid: object) -> int:
    return {True: EXIT_OK, False: EXIT_INVALID}.get(valid, EXIT_UNKNOWN)  # type: ignore[call-overload]


def cmd_run(args: argparse.Namespace) -> int:
    from harness.model.scenario import load_scenario
    from harness.model.topology import load_topology
    from harness.report.console import console, result_table, say
    from harness.runner import run_scenario, validate_plan

    topology = load_topology(args.topology)
    scenario = load_scenario(args.scenario)
    validate_plan(scenario, topology)
    outcome = run_scenario(topology, scenario, runtime=_runtime(), reports=Path(args.reports),
                           keep=args.keep, seed=args.seed, say=say)  # fmt: skip
    console.print(result_table(f"{scenario.name} on {topology.name} — run {outcome.run_id}", outcome.result))
    console.print(
        f"report: {outcome.report_dir}/ (result.json, history.jsonl, events.jsonl, samples.jsonl, logs/)"
    )
    return _exit_for(outcome.result.valid)


def cmd_check(args: argparse.Namespace) -> int:
    from harness.report.console import console, result_table
    from harness.runner import check_report

    report = _report_dir(args.report)
    result = check_report(report, write=False)
    console.print(result_table(f"re-checked {report}", result))
    return _exit_for(result.valid)


def _report_dir(name: str) -> Path:
    """A run's report directory: the path itself, or ``reports/<run-id>``."""
    for candidate in (Path(name), Path("reports") / name):
        if (candidate / "history.jsonl").is_file():
            return candidate
    raise InputError(f"{name}: no report there (expected a directory with history.jsonl, or a run id "
                     "under reports/)")  # fmt: skip


def cmd_export(args: argparse.Namespace) -> int:
    from harness.model.history import read_history, write_edn
    from harness.report.console import say

    report = _report_dir(args.report)
    history = read_history(report / "history.jsonl")
    if args.output == "-":
        write_edn(history, sys.stdout)
        return EXIT_OK
    target = Path(args.output) if args.output else report / "history.edn"
    write_edn(history, target)
    say(f"wrote {len(history)} ops to {target} (Jepsen EDN: one op map per line, for Elle and Knossos)")
    return EXIT_OK


def _nemesis(run_id: str) -> Any:
    from harness.faults.nemesis import Nemesis
    from harness.paths import run_dir
    from harness.report.console import say
    from harness.runtime.cluster import load_run, run_clock, system_for

    runtime = _runtime()
    run = load_run(run_id, runtime)
    return Nemesis(
        system_for(run, runtime), events=run_dir(run.id) / "events.jsonl", clock=run_clock(run), say=say
    )


def _link_spec(args: argparse.Namespace) -> Any:
    from harness.faults import link
    from harness.model.durations import parse_duration

    common = {"direction": args.direction, "toxicity": args.toxicity}
    ms = lambda v: round(parse_duration(v) * 1000)  # noqa: E731
    if args.latency:
        return link.Latency(ms(args.latency), ms(args.jitter or 0), **common)
    if args.down:
        return link.Down()
    if args.stall:
        return link.Timeout(0, **common)
    if args.reset_peer:
        return link.ResetPeer(0, **common)
    if args.bandwidth is not None:
        return link.Bandwidth(args.bandwidth, **common)
    raise InputError("fault link: give one of --latency, --down, --stall, --reset-peer, --bandwidth")


def cmd_fault(args: argparse.Namespace) -> int:
    from harness.report.console import console

    nemesis = _nemesis(args.run)
    if args.fault == "partition":
        if args.isolate:
            event = nemesis.partition("isolate", node=args.isolate)
        elif args.groups:
            groups = [g.split(",") for g in args.groups.split(";")]
            event = nemesis.partition("groups", groups=groups)
        elif args.one_way:
            src, _, dst = args.one_way.partition(":")
            event = nemesis.partition("one_way", src=src, dst=dst.split(","))
        else:
            event = nemesis.partition(args.shape or "halves")
    elif args.fault == "link":
        event = nemesis.link(args.target, _link_spec(args))
    elif args.fault == "crash-all":
        event = nemesis.crash_all(args.window)
    elif args.fault in ("resume", "start"):
        events = getattr(nemesis, args.fault)(args.target)
        console.print(f"{args.fault}: {', '.join(e.id for e in events) or 'nothing to do'}")
        return EXIT_OK
    else:
        event = getattr(nemesis, args.fault)(args.target)
    console.print(f"[bold]{event.id}[/bold] {event.name} on {event.target} via {event.mechanism} — in effect")
    return EXIT_OK


def cmd_heal(args: argparse.Namespace) -> int:
    from harness.report.console import say

    nemesis = _nemesis(args.run)
    nemesis.heal(wait=not args.no_wait)
    say(f"run {args.run} healed: no partition, no toxics, nothing paused, every node up")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from harness.doctor import doctor

    return doctor(fix=args.fix)


# -- parser -----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="harness", description="Chaos and failover testing for replicated databases and brokers."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("validate", cmd_validate, "check topology and scenario files; exit 2 on the first bad one")
    p.add_argument("files", nargs="+", metavar="FILE")
    p = add("up", cmd_up, "bring a topology's cluster up and return once it is ready")
    p.add_argument("topology", metavar="TOPOLOGY")
    p = add("status", cmd_status, "show runs and the state of their nodes")
    p.add_argument("run", nargs="?", metavar="RUN")
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
    p = add("run", cmd_run, "run a scenario on a topology's cluster and check the results")
    p.add_argument("topology", metavar="TOPOLOGY")
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--reports", default="reports", metavar="DIR", help="where reports/<run-id>/ goes")
    p.add_argument("--keep", action="store_true", help="leave the cluster up afterwards")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (replayable)")
    p = add("check", cmd_check, "re-run the checkers on a stored run directory (no cluster)")
    p.add_argument("report", metavar="RUN", help="report directory or run id (reports/<run-id>)")
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
    f.add_argument("--latency", metavar="DURATION")
    f.add_argument("--jitter", metavar="DURATION")
    f.add_argument("--bandwidth", type=int, metavar="KB/s")
    f.add_argument("--down", action="store_true")
    f.add_argument("--stall", action="store_true")
    f.add_argument("--reset-peer", action="store_true")
    f.add_argument("--direction", choices=["upstream", "downstream", "both"], default="downstream")
    f.add_argument("--toxicity", type=float, default=1.0)
    for name, text in [("kill", "SIGKILL"), ("pause", "freeze"), ("stop", "graceful stop"),
                       ("start", "start stopped nodes"), ("restart", "stop then start"),
                       ("resume", "unfreeze")]:  # fmt: skip
        f = faults.add_parser(name, help=f"{text} a node (name, role or all)")
        f.add_argument("target", nargs="?", default="primary" if name not in ("start", "resume") else "all")
    f = faults.add_parser("crash-all", help="SIGKILL every node within a window")
    f.add_argument("--window", type=float, default=0.0, metavar="SECONDS")
    p = add("heal", cmd_heal, "undo every fault of a run and wait until it is healthy")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--no-wait", action="store_true", help="return without waiting for recovery")
    p = add("doctor", cmd_doctor, "say what is missing and how to get it")
    p.add_argument("--fix", action="store_true", help="run the set-up script to install what is missing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from harness.report.console import error

    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        return int(args.func(args))
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


if __name__ == "__main__":
    sys.exit(main())
