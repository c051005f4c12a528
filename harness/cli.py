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
        leftovers = runtime.remove(runtime.containers(), runtime.networks(), runtime.volumes())
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
    images = sub.add_parser("images", help="node images", description="node images")
    images_sub = images.add_subparsers(dest="images_command", required=True, parser_class=_Parser)
    p = images_sub.add_parser("build", help="build the node image unless its recipe's tag exists")
    p.set_defaults(func=cmd_images_build)
    p.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    p.add_argument("--via", choices=["auto", "mmdebstrap", "dockerfile"], default="auto")
    p = add("doctor", cmd_doctor, "say what is missing and how to get it")
    p.add_argument("--fix", action="store_true", help="run the set-up script to install what is missing")
    return parser


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    from harness.report.console import error

    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
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
