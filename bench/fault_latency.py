"""How long does each nemesis mechanism take to put a fault in effect on a real cluster, and to heal it?

Brings a real 3-node cluster up (``harness.lifecycle.up``, RabbitMQ by default, Galera works too) in
a fresh ``HARNESS_NAMESPACE``, builds a ``Nemesis`` on it and, for ``--reps`` repetitions each, times from
the call to the fault being in effect and from the heal call to the fault being gone:

* iptables partition (isolate n3): in effect = ``nemesis.partition("isolate", node="n3")`` returned (the
  filter tables of every node are replaced before it returns; checked with ``netfilter.current`` on a few
  reps); gone = ``nemesis.heal_partition()`` returned (checked empty).
* Toxiproxy latency toxic on n1's link: ``nemesis.link("n1", Latency(...))`` / ``nemesis.heal_links()``
  returned; on a few reps the first byte from a new connection to the proxied endpoint is timed (delayed
  by the toxic right after apply, prompt right after heal).
* Toxiproxy ``down`` on n1's link: same calls; on a few reps a new TCP connection to
  ``system.endpoint(n1)`` is refused (or closed at once) right after apply, and answered right after heal.
* docker pause / resume of n2: in effect = ``nemesis.pause("n2")`` returned (the container state is
  checked to be "paused" on every rep); gone = ``nemesis.resume("n2")`` returned (state "running").
* SIGKILL of n3 (``--kill-reps``, 5 by default, 0 to skip): from ``nemesis.kill("n3")`` to the container
  state "exited" (polled); start = ``nemesis.start("n3", wait=False)`` returned (``docker start``, not the
  rejoin; the rejoin is waited for, untimed by the target, before the next rep).

The clock is ``time.perf_counter_ns`` in this process, so every figure includes the client side (HTTP to
the Docker engine or to Toxiproxy, process spawns). One extra unrecorded warm-up rep per mechanism comes
first (shown as "cold"). Percentiles are nearest-rank (with 50 samples p99 is the maximum).
A small breakdown of one node's share of the iptables path (docker inspect for the pid, the nsenter +
iptables-restore spawn) follows the main table.

    python bench/fault_latency.py [--reps 50] [--topology topologies/rabbitmq-3.yaml]

The cluster is always healed and removed (``down``) on exit, Ctrl-C and SIGTERM included, and the script
then checks that nothing labelled with its namespace is left. Target: p99 < 50 ms for iptables and
Toxiproxy.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.table import Table

from harness.faults.nemesis import Nemesis
from harness.lifecycle import down, new_run_id, system_for, up
from harness.model.faults import Down, Latency, LinkFaultBase
from harness.runtime import labels as L
from harness.runtime import netfilter
from harness.runtime.docker import DockerRuntime
from harness.runtime.run import Node
from harness.runtime.signals import no_interrupts, raise_interrupt
from harness.specs import load_topology
from harness.systems.base import ClusterSystem

REPO = Path(__file__).resolve().parent.parent
TARGET_P99_MS = 50.0
# What a client sends first so that the server answers (MySQL greets on connect; AMQP wants its header).
PROBES: dict[str, bytes] = {"amqp": b"AMQP\x00\x00\x09\x01", "mysql": b""}

T = TypeVar("T")
console = Console(highlight=False, width=max(170, shutil.get_terminal_size().columns))


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (as bench/fault_latency_toxiproxy.py)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """(milliseconds from the call to the return, the result)."""
    began = time.perf_counter_ns()
    result = fn()
    return (time.perf_counter_ns() - began) / 1e6, result


@dataclass
class Series:
    """One mechanism and phase: its samples (ms) and the outcome of its in-effect/gone checks."""

    mechanism: str
    phase: str  # "apply" or "heal"
    clock: str  # what stops the clock
    targeted: bool  # subject to the p99 target
    samples: list[float] = field(default_factory=list)
    cold: float | None = None
    checks: list[bool] = field(default_factory=list)
    note: str = ""

    def add(self, ms: float, *, warm_up: bool) -> None:
        if warm_up:
            self.cold = ms
        else:
            self.samples.append(ms)

    def check(self, ok: bool, *, warm_up: bool = False) -> None:
        if not warm_up:
            self.checks.append(ok)


def verify_reps(reps: int, count: int) -> set[int]:
    """``count`` rep indices spread over 0..reps-1 (always the first and the last)."""
    if reps <= 0 or count <= 0:
        return set()
    if count == 1 or reps == 1:
        return {0}
    return {round(i * (reps - 1) / (min(count, reps) - 1)) for i in range(min(count, reps))}


# -- probes of the proxied client endpoint -----------------------------------------------------------


def connection_refused(endpoint: tuple[str, int]) -> bool:
    """A new connection is refused, or accepted and closed at once (the link is down)."""
    try:
        sock = socket.create_connection(endpoint, timeout=1.0)
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    with sock:
        sock.settimeout(0.3)
        try:
            return sock.recv(1) == b""  # closed; a timeout means an open, silent connection
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def first_byte_ms(endpoint: tuple[str, int], probe: bytes, timeout: float = 3.0) -> float | None:
    """Milliseconds from connecting to the first byte the server sends (None: no answer)."""
    began = time.perf_counter_ns()
    try:
        with socket.create_connection(endpoint, timeout=timeout) as sock:
            if probe:
                sock.sendall(probe)
            if not sock.recv(1):
                return None
    except OSError:
        return None
    return (time.perf_counter_ns() - began) / 1e6


# -- the mechanisms -------------------------------------------------------------------------------------


def bench_partition(nemesis: Nemesis, runtime: DockerRuntime, reps: int, verify: set[int]) -> list[Series]:
    run = nemesis.run
    target = run.nodes[-1].name
    plan = nemesis.plan_partition("isolate", node=target)
    ip = {n.name: n.ip for n in run.nodes}
    expected = {n.name: sorted(ip[p] for p in plan.drops_at(n.name)) for n in run.nodes}
    how = netfilter.mode()
    mech = f"iptables partition (isolate {target})"
    apply = Series(mech, "apply", f"partition() returned; {how}, {len(run.nodes)} nodes", True)
    heal = Series(mech, "heal", "heal_partition() returned", True)
    for rep in range(-1, reps):
        warm = rep < 0
        ms, _ = timed(lambda: nemesis.partition("isolate", node=target))
        apply.add(ms, warm_up=warm)
        if rep in verify:
            seen = {n.name: netfilter.current(runtime, n.container) for n in run.nodes}
            apply.check(seen == expected)
            if seen != expected:
                console.print(f"[red]  rep {rep}: rules after partition {seen}, expected {expected}[/red]")
        ms, _ = timed(nemesis.heal_partition)
        heal.add(ms, warm_up=warm)
        if rep in verify:
            left = {n.name: netfilter.current(runtime, n.container) for n in run.nodes}
            heal.check(not any(left.values()))
            if any(left.values()):
                console.print(f"[red]  rep {rep}: rules left after heal {left}[/red]")
    return [apply, heal]


def bench_link(
    nemesis: Nemesis,
    system: ClusterSystem,
    node: Node,
    spec: LinkFaultBase,
    label: str,
    reps: int,
    verify: set[int],
) -> list[Series]:
    service = next(iter(system.services))
    endpoint = system.endpoint(node, service)
    probe = PROBES.get(service, b"")
    mech = f"toxiproxy {label} ({node.name} link)"
    apply = Series(mech, "apply", "link() returned (server acked)", True)
    heal = Series(mech, "heal", "heal_links() returned (all proxies)", True)
    latency = spec.latency_ms if isinstance(spec, Latency) else 0
    lat_on: list[float] = []
    lat_off: list[float] = []
    for rep in range(-1, reps):
        warm = rep < 0
        ms, _ = timed(lambda: nemesis.link(node.name, spec))
        apply.add(ms, warm_up=warm)
        if rep in verify:
            if isinstance(spec, Down):
                apply.check(connection_refused(endpoint))
            else:
                got = first_byte_ms(endpoint, probe)
                lat_on.append(got if got is not None else math.inf)
                apply.check(got is not None and got >= 0.9 * latency)
        ms, _ = timed(nemesis.heal_links)
        heal.add(ms, warm_up=warm)
        if rep in verify:
            got = first_byte_ms(endpoint, probe)
            lat_off.append(got if got is not None else math.inf)
            heal.check(got is not None and (not latency or got < latency / 2))
    if isinstance(spec, Down):
        apply.note = "new connection refused right after apply"
        heal.note = "new connection answered right after heal"
    else:
        apply.note = f"first byte after apply: {fmt_list(lat_on)} ms"
    heal.note = (heal.note + "; " if heal.note else "") + f"first byte after heal: {fmt_list(lat_off)} ms"
    return [apply, heal]


def bench_pause(nemesis: Nemesis, system: ClusterSystem, node: Node, reps: int) -> list[Series]:
    mech = f"docker pause/resume ({node.name})"
    apply = Series(mech, "apply", 'pause() returned (state "paused" checked every rep)', False)
    heal = Series(mech, "heal", 'resume() returned (state "running" checked every rep)', False)
    for rep in range(-1, reps):
        warm = rep < 0
        ms, _ = timed(lambda: nemesis.pause(node.name))
        apply.add(ms, warm_up=warm)
        apply.check(system.container_state(node) == "paused", warm_up=warm)
        ms, _ = timed(lambda: nemesis.resume(node.name))
        heal.add(ms, warm_up=warm)
        heal.check(system.container_state(node) == "running", warm_up=warm)
    return [apply, heal]


def bench_kill(
    nemesis: Nemesis, system: ClusterSystem, runtime: DockerRuntime, node: Node, reps: int
) -> list[Series]:
    mech = f"SIGKILL / start ({node.name})"
    apply = Series(mech, "apply", 'kill() called → state "exited" (polled)', False)
    heal = Series(mech, "heal", "start(wait=False) returned (docker start)", False)
    rejoin: list[float] = []
    returned: list[float] = []
    heal_timeout = float(system.run.topology.timeouts.heal)
    for _ in range(reps):
        began = time.perf_counter_ns()
        nemesis.kill(node.name)
        returned.append((time.perf_counter_ns() - began) / 1e6)
        deadline = time.monotonic() + 30.0
        while (state := runtime.state(node.container).status) != "exited":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} still {state!r} 30 s after SIGKILL")
        apply.add((time.perf_counter_ns() - began) / 1e6, warm_up=False)
        apply.check(True)
        ms, _ = timed(lambda: nemesis.start(node.name, wait=False))
        heal.add(ms, warm_up=False)
        heal.check(system.container_state(node) == "running")
        ms, _ = timed(lambda: system.wait_healthy(heal_timeout))
        rejoin.append(ms / 1000)
    apply.note = f"kill() itself returned in p50 {percentile(returned, 50):.1f} ms" if returned else ""
    heal.note = f"rejoin (untimed by target): {', '.join(f'{s:.1f}' for s in rejoin)} s" if rejoin else ""
    return [apply, heal]


def bench_iptables_parts(runtime: DockerRuntime, node: Node, reps: int) -> list[tuple[str, list[float]]]:
    """One node's share of a partition/heal, sequential: pid lookup, bare nsenter, nsenter+restore."""
    inspect_ms: list[float] = []
    spawn_ms: list[float] = []
    restore_ms: list[float] = []
    empty = netfilter.ruleset([])
    tool = netfilter.host_tool("iptables-restore")
    for _ in range(reps):
        ms, pid = timed(lambda: runtime.state(node.container).pid)
        inspect_ms.append(ms)
        argv = ["nsenter", "-t", str(pid), "-n"]
        spawn = partial(subprocess.run, [*argv, "true"], check=True)
        restore = partial(subprocess.run, [*argv, tool, "-w", "5"], input=empty, text=True,
                          check=True, capture_output=True)  # fmt: skip
        ms, _ = timed(spawn)
        spawn_ms.append(ms)
        ms, _ = timed(restore)
        restore_ms.append(ms)
    return [
        ("docker inspect (pid lookup)", inspect_ms),
        ("nsenter -n true (spawn only)", spawn_ms),
        (f"nsenter -n {tool} (empty table)", restore_ms),
    ]


# -- output ---------------------------------------------------------------------------------------------


def load() -> str:
    """The host's load average (other users' clusters on the engine share these CPUs)."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def fmt_list(values: list[float]) -> str:
    return ", ".join("-" if math.isinf(v) else f"{v:.0f}" for v in values) or "-"


def report(series: list[Series], reps: int, title: str) -> bool:
    table = Table(title=title, caption=f"target: p99 < {TARGET_P99_MS:.0f} ms for iptables and Toxiproxy")
    for name, justify in [("mechanism", "left"), ("phase", "left"), ("clock stops when", "left"),
                          ("n", "right"), ("cold", "right"), ("p50 ms", "right"), ("p99 ms", "right"),
                          (f"> {TARGET_P99_MS:.0f} ms", "right"), ("slowest 3 ms", "right"), ("checked", "right"),
                          ("target", "center")]:  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    met = True
    for s in series:
        if not s.samples:
            continue
        p50, p99 = percentile(s.samples, 50), percentile(s.samples, 99)
        checked = f"{sum(s.checks)}/{len(s.checks)}" if s.checks else "-"
        checks_ok = all(s.checks)
        if s.targeted:
            ok = p99 < TARGET_P99_MS and checks_ok
            met &= ok
            verdict = "[green]met[/green]" if ok else "[red]NOT met[/red]"
        else:
            verdict = "-" if checks_ok else "[red]check failed[/red]"
        cold = f"{s.cold:.1f}" if s.cold is not None else "-"
        over = sum(v >= TARGET_P99_MS for v in s.samples)
        slowest = ", ".join(f"{v:.0f}" for v in sorted(s.samples, reverse=True)[:3])
        table.add_row(s.mechanism, s.phase, s.clock, str(len(s.samples)), cold, f"{p50:.1f}", f"{p99:.1f}",
                      str(over), slowest, checked, verdict)  # fmt: skip
    console.print(table)
    for s in series:
        if s.note:
            console.print(f"  {s.mechanism} {s.phase}: {s.note}")
    return met


def report_parts(parts: list[tuple[str, list[float]]], node: Node) -> None:
    table = Table(title=f"iptables path, one node ({node.name}), sequential: where the time goes")
    for name in ("step", "n", "p50 ms", "p99 ms"):
        table.add_column(name, justify="left" if name == "step" else "right")
    for name, samples in parts:
        table.add_row(
            name, str(len(samples)), f"{percentile(samples, 50):.1f}", f"{percentile(samples, 99):.1f}"
        )
    console.print(table)


# -- cleanup --------------------------------------------------------------------------------------------


def leftovers(runtime: DockerRuntime, namespace: str) -> list[str]:
    """Everything on the engine labelled with our namespace (containers, networks, volumes)."""
    flt = {"label": [f"{L.NAMESPACE}={namespace}"]}
    found = [f"container {c.name}" for c in runtime.client.containers.list(all=True, filters=flt)]
    found += [f"network {n.name}" for n in runtime.client.networks.list(filters=flt)]
    found += [f"volume {v.name}" for v in runtime.client.volumes.list(filters=flt)]
    return found


# -- main -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=50, help="repetitions per mechanism (default 50)")
    parser.add_argument("--topology", type=Path, default=REPO / "topologies" / "rabbitmq-3.yaml",
                        help="topology file (default topologies/rabbitmq-3.yaml; galera-3 works too)")  # fmt: skip
    parser.add_argument("--kill-reps", type=int, default=5, help="SIGKILL/start repetitions (0: skip)")
    parser.add_argument("--verify", type=int, default=5, help="reps on which the effect is checked")
    parser.add_argument("--latency-ms", type=int, default=200, help="latency of the toxic (default 200)")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.kill_reps < 0 or args.verify < 0:
        parser.error("--reps >= 1, --kill-reps >= 0, --verify >= 0")

    # Our own namespace before anything touches the runtime: runs, the reaper and down see only it.
    namespace = f"bench-fault-{secrets.token_hex(3)}"
    os.environ["HARNESS_NAMESPACE"] = namespace
    signal.signal(signal.SIGTERM, raise_interrupt)

    log = logging.getLogger("harness")  # what up/heal log, shown dim
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("    %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    topology = load_topology(args.topology)
    runtime = DockerRuntime()
    run_id = new_run_id(topology)  # known before up, so that the finally block can always remove it
    console.print(f"namespace {namespace}, run {run_id}, topology {args.topology}, reps {args.reps}")
    console.print(f"host: {os.cpu_count()} CPUs, {load()}; netfilter mode {netfilter.mode()}")
    nemesis: Nemesis | None = None
    series: list[Series] = []
    parts: list[tuple[str, list[float]]] = []
    part_node: Node | None = None
    verify = verify_reps(args.reps, args.verify)
    code = 0
    try:
        began = time.monotonic()
        run = up(topology, runtime, run_id=run_id)
        console.print(f"cluster ready in {time.monotonic() - began:.1f}s")
        system = system_for(run, runtime)
        nemesis = Nemesis(system)
        nodes = run.nodes
        console.print("[bold]iptables partition[/bold]")
        series += bench_partition(nemesis, runtime, args.reps, verify)
        console.print("[bold]toxiproxy latency[/bold]")
        latency = Latency(target=nodes[0].name, latency_ms=args.latency_ms)
        series += bench_link(
            nemesis, system, nodes[0], latency, f"latency {args.latency_ms}ms", args.reps, verify
        )
        console.print("[bold]toxiproxy down[/bold]")
        series += bench_link(nemesis, system, nodes[0], Down(target=nodes[0].name), "down", args.reps, verify)
        console.print("[bold]docker pause/resume[/bold]")
        series += bench_pause(nemesis, system, nodes[1], args.reps)
        if args.kill_reps:
            console.print("[bold]SIGKILL/start[/bold]")
            system.wait_healthy(float(topology.timeouts.heal))
            series += bench_kill(nemesis, system, runtime, nodes[-1], args.kill_reps)
        if netfilter.mode() == "nsenter":
            part_node = nodes[0]
            parts = bench_iptables_parts(runtime, part_node, min(args.reps, 20))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; healing and removing the cluster[/yellow]")
        code = 130
    finally:
        with no_interrupts():
            if nemesis is not None:
                try:
                    nemesis.heal(wait=False)
                except Exception as exc:  # the cluster is removed next anyway
                    console.print(f"[yellow]heal failed: {type(exc).__name__}: {exc}[/yellow]")
            removed = down(run_id, runtime)
            left = leftovers(runtime, namespace)
            console.print(f"down {run_id}: removed {removed} resource(s)")
            if left:
                console.print(f"[red]left in namespace {namespace}: {', '.join(left)}[/red]")
            else:
                console.print(f"nothing left labelled io.ha-harness.namespace={namespace}")
    if code:
        return code
    console.print(f"host after the run: {load()}")
    title = f"{topology.name}: fault in effect / gone, {args.reps} reps (nearest-rank)"
    met = report(series, args.reps, title)
    if parts and part_node is not None:
        report_parts(parts, part_node)
    console.print(
        f"target p99 < {TARGET_P99_MS:.0f} ms for iptables and Toxiproxy: {'met' if met else 'NOT met'}"
    )
    return 0 if met and not left else 1


if __name__ == "__main__":
    sys.exit(main())
