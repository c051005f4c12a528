"""What does recording the history cost a client? Ops/s of one client against a real node, on vs off.

One Galera node (galera-3's settings, one node) in a fresh ``HARNESS_NAMESPACE``; one client on a direct
connection does autocommit ``INSERT``s of unique ids for ``--seconds`` per round. Rounds alternate
recording off (the bare loop) and on (``HistoryWriter.invoke`` before and ``ok`` after every insert, to a
JSONL file, as the workloads do), ``--rounds`` of each, so drift on the machine hits both alike. It also
times recording alone (invoke + ok with no database) to give the per-op cost in microseconds.

    python bench/recording.py [--rounds 5] [--seconds 4]

Target: recording costs under 5% of the client's ops/s (medians).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.lifecycle import down, system_for, up
from harness.model.history import HistoryWriter
from harness.runtime.docker import DockerRuntime
from harness.runtime.signals import no_interrupts, raise_interrupt
from harness.specs import load_topology

REPO = Path(__file__).resolve().parent.parent
console = Console()


def client_round(conn: object, seconds: float, first_id: int, history: HistoryWriter | None) -> int:
    """Insert unique ids for ``seconds``; returns how many were acknowledged."""
    done = 0
    deadline = time.monotonic() + seconds
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        while time.monotonic() < deadline:
            value = first_id + done
            op = history.invoke(0, "add", value, node="n1") if history else None
            cur.execute("INSERT INTO bench_recording (id) VALUES (%s)", (value,))
            if history and op is not None:
                history.ok(op)
            done += 1
    return done


def recording_only(n: int, directory: Path) -> float:
    """Microseconds per op (invoke + ok) with nothing else in the loop."""
    with HistoryWriter(directory / "alone.jsonl", concurrency=1) as history:
        start = time.perf_counter()
        for i in range(n):
            history.ok(history.invoke(0, "add", i, node="n1"))
        return (time.perf_counter() - start) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each mode (default 5)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one round (default 4)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds >= 1 and --seconds > 0")
    os.environ["HARNESS_NAMESPACE"] = f"bench-recording-{secrets.token_hex(3)}"
    signal.signal(signal.SIGTERM, raise_interrupt)
    runtime = DockerRuntime()
    topology = load_topology(REPO / "topologies" / "galera-3.yaml").model_copy(update={"nodes": 1})
    rates: dict[str, list[float]] = {"off": [], "on": []}
    run = None
    try:
        run = up(topology, runtime)
        system = system_for(run, runtime)
        conn = system.connect(run.nodes[0], database="harness")  # type: ignore[attr-defined]
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE bench_recording (id BIGINT PRIMARY KEY) ENGINE=InnoDB")
        next_id = 1
        with tempfile.TemporaryDirectory() as tmp:
            with HistoryWriter(Path(tmp) / "history.jsonl", concurrency=1) as history:
                client_round(conn, 1.0, 10**9, None)  # warm-up, not counted
                for r in range(args.rounds):
                    for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                        n = client_round(conn, args.seconds, next_id, history if mode == "on" else None)
                        next_id += n
                        rates[mode].append(n / args.seconds)
                        console.print(f"  round {r + 1} recording {mode:>3}: {n / args.seconds:8.0f} ops/s")
            per_op_us = recording_only(200_000, Path(tmp))
        conn.close()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; cleaning up[/yellow]")
        return 130
    finally:
        with no_interrupts():
            if run is not None:
                down(run.id, runtime)
            runtime.remove_run(None)  # our namespace only
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    cost = (off - on) / off * 100
    table = Table(title=f"one client, autocommit INSERT on one Galera node: {args.rounds} rounds x "
                        f"{args.seconds:g}s per mode (medians)")  # fmt: skip
    for column in ("recording", "ops/s median", "min", "max"):
        table.add_column(column, justify="right")
    for mode in ("off", "on"):
        table.add_row(mode, f"{statistics.median(rates[mode]):.0f}", f"{min(rates[mode]):.0f}",
                      f"{max(rates[mode]):.0f}")  # fmt: skip
    console.print(table)
    round_trip_us = 1e6 / off
    console.print(f"recording alone: {per_op_us:.1f} µs per op (invoke + ok), {1e6 / per_op_us:,.0f} ops/s; "
                  f"that is {per_op_us / round_trip_us * 100:.1f}% of one op's {round_trip_us:.0f} µs "
                  "round trip (the cost a latency-bound client pays)")  # fmt: skip
    verdict = "met" if cost < 5 else "NOT met"
    spread = (max(rates["off"]) - min(rates["off"])) / off * 50
    console.print(f"cost of recording: {cost:+.1f}% of ops/s (rounds vary by ±{spread:.0f}% here) — "
                  f"target < 5%: {verdict}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
