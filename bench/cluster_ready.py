"""How long does the harness take to make a cluster ready, against the plainest sequential script?

For each system and size (Galera: topologies/galera-3.yaml and galera-5.yaml, RabbitMQ: rabbitmq-3.yaml and
rabbitmq-5.yaml), on the same machine with the same node image, it times:

* harness: ``harness.lifecycle.up(load_topology(...), DockerRuntime())`` from the call to its return
  (the harness returns only once the cluster is really ready), then ``down`` (not timed);
* floor: the plainest possible sequential ``docker`` CLI script (subprocess): ``docker network create
  --internal`` on a free ``10.214.x.0/24``, then one ``docker run`` per node, one after another, each
  waited for before the next. Galera: n1 founds the cluster (``--wsrep-new-cluster``), wait until it is
  Primary/Synced/ready, then n2 (wait for size 2, synced), then n3 (size 3). RabbitMQ: n1, wait for
  ``rabbitmqctl await_startup``; then n2 and n3 each: start, await_startup, ``stop_app``, ``join_cluster
  rabbit@n1``, ``start_app``; ready when ``cluster_status`` on every node lists every node running. The
  configs are the harness's own renderings (same image, same settings) for nodes on the floor's subnet;
  RabbitMQ's loses its peer-discovery lines, since the floor clusters by ``join_cluster``.

Both clocks stop at the same readiness criterion (every node ready with the full cluster size). The
harness runs in a fresh ``HARNESS_NAMESPACE``; every floor container and network is labelled
``io.ha-harness.bench=1`` and removed on exit (also on Ctrl-C).

    python bench/cluster_ready.py [--repeat N] [--systems galera,rabbitmq] [--nodes 3,5]

Targets (issue #8): the harness at or below 0.8x the floor (medians of N), and 5 nodes within 1.3x the
harness's own time for 3 (printed as "5 / 3").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.runtime.signals import no_interrupts, raise_interrupt

REPO = Path(__file__).resolve().parent.parent
SYSTEMS = ("galera", "rabbitmq")
BENCH_LABEL = "io.ha-harness.bench"
BENCH_ID_LABEL = "io.ha-harness.bench.id"
FLOOR_PREFIX = "10.214"
TOKEN = secrets.token_hex(3)
NAMESPACE = f"bench-ready-{TOKEN}"
# The harness must see only this bench's resources: set before the runtime is imported or used.
os.environ["HARNESS_NAMESPACE"] = NAMESPACE

from harness.lifecycle import down, new_run_id, up  # noqa: E402
from harness.model.topology import TopologyBase  # noqa: E402
from harness.runtime.docker import DockerRuntime  # noqa: E402
from harness.runtime.images import node_image_ref  # noqa: E402
from harness.runtime.run import Node, Run, new_secret  # noqa: E402
from harness.specs import load_topology  # noqa: E402
from harness.systems.galera.cluster import GaleraCluster  # noqa: E402
from harness.systems.galera.settings import GaleraTopology  # noqa: E402
from harness.systems.rabbitmq.cluster import RabbitCluster, node_name  # noqa: E402
from harness.systems.rabbitmq.settings import RabbitTopology  # noqa: E402

console = Console(highlight=False, width=max(100, shutil.get_terminal_size().columns))
Say = Callable[[str], None]


SIZES = (3, 5)


def topology_of(system: str, nodes: int = 3) -> TopologyBase:
    return load_topology(REPO / "topologies" / f"{system}-{nodes}.yaml")


# -- harness ---------------------------------------------------------------------------------------


def harness_ready(system: str, nodes: int, runtime: DockerRuntime) -> float:
    """Seconds from ``up`` being called to its return (the cluster is ready); the run is then removed.
    What ``up`` logs (``harness.*`` loggers) is printed by the handler ``main`` installs."""
    topology = topology_of(system, nodes)
    run_id = new_run_id(topology)
    try:
        started = time.monotonic()
        up(topology, runtime, run_id=run_id)
        return time.monotonic() - started
    finally:
        with no_interrupts():
            down(run_id, runtime)


# -- floor: plain sequential docker CLI ------------------------------------------------------------


@dataclass(frozen=True)
class FloorRun(Run):
    """A Run on the floor's own subnet and names, only to reuse the harness's config rendering."""

    @property
    def subnet(self) -> str:
        return f"{FLOOR_PREFIX}.{self.slot}.0/24"

    @property
    def gateway(self) -> str:
        return f"{FLOOR_PREFIX}.{self.slot}.1"

    def ip(self, host: int) -> str:
        return f"{FLOOR_PREFIX}.{self.slot}.{host}"

    @property
    def network(self) -> str:
        return f"hhbench-{self.id}"

    @property
    def nodes(self) -> list[Node]:
        return [
            Node(name, self.ip(10 + i), f"hhbench-{self.id}-{name}")
            for i, name in enumerate(self.topology.node_names, start=1)
        ]


def docker(*args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=timeout)
    if check and done.returncode != 0:
        out = (done.stderr or done.stdout).strip()[-400:]
        raise RuntimeError(f"docker {' '.join(args[:3])}… exit {done.returncode}: {out}")
    return done


def used_subnets() -> set[str]:
    ids = docker("network", "ls", "-q").stdout.split()
    if not ids:
        return set()
    fmt = "{{range .IPAM.Config}}{{.Subnet}} {{end}}"
    return set(docker("network", "inspect", "--format", fmt, *ids).stdout.split())


def bench_labels() -> list[str]:
    return ["--label", f"{BENCH_LABEL}=1", "--label", f"{BENCH_ID_LABEL}={TOKEN}"]


def create_floor_network(system: str, topology: TopologyBase, image: str) -> FloorRun:
    used = used_subnets()
    run_id = f"{TOKEN}-{system}-{secrets.token_hex(2)}"
    secret = new_secret()  # the rendered configs carry this run's own credentials
    for slot in range(1, 255):
        run = FloorRun(id=run_id, topology=topology, slot=slot, image=image, owner="bench", secret=secret)
        if run.subnet in used:
            continue
        done = docker(
            "network", "create", "--driver", "bridge", "--internal",
            "--subnet", run.subnet, "--gateway", run.gateway, *bench_labels(), run.network,
            check=False,
        )  # fmt: skip
        if done.returncode == 0:
            return run
        if "overlap" not in done.stderr.lower():
            raise RuntimeError(f"docker network create {run.network} failed: {done.stderr.strip()}")
    raise RuntimeError(f"no free subnet in {FLOOR_PREFIX}.1-254.0/24")


def docker_run(run: FloorRun, node: Node, config: Path, env: dict[str, str] | None = None) -> None:
    """One node, like the harness starts it: tini init, fixed IP, peers in /etc/hosts, config mounted."""
    hosts = [arg for n in run.nodes for arg in ("--add-host", f"{n.name}:{n.ip}")]
    envs = [arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")]
    docker(
        "run", "-d", "--init", "--name", node.container, "--hostname", node.name,
        "--network", run.network, "--ip", node.ip, "--network-alias", node.name, *hosts,
        "-v", f"{config / node.name}:/etc/harness:ro", "--user", "0", *envs, *bench_labels(),
        run.image, "sh", "/etc/harness/start.sh",
    )  # fmt: skip


def poll(check: Callable[[], str | None], *, deadline: float, what: str, sleep: float = 0.1) -> None:
    """Call ``check`` (None: done, else what is still missing) with a short sleep until the deadline."""
    last = "never checked"
    while True:
        try:
            problem = check()
        except (subprocess.SubprocessError, ValueError) as exc:  # a hung exec, odd output: not yet
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return
        last = problem
        if time.monotonic() >= deadline:
            raise RuntimeError(f"floor: timed out waiting for {what} ({last})")
        time.sleep(sleep)


def galera_status(node: Node) -> dict[str, str]:
    query = (
        "SHOW GLOBAL STATUS WHERE Variable_name IN "
        "('wsrep_ready','wsrep_cluster_status','wsrep_local_state_comment','wsrep_cluster_size')"
    )
    done = docker("exec", node.container, "mariadb", "-N", "-B", "-e", query, check=False, timeout=10)
    if done.returncode != 0:
        return {}
    return dict(line.split("\t", 1) for line in done.stdout.splitlines() if "\t" in line)


def galera_floor(run: FloorRun, config: Path, say: Say) -> None:
    assert isinstance(run.topology, GaleraTopology)
    GaleraCluster(run, None).render(config)  # type: ignore[arg-type]  # rendering never touches Docker
    (config / run.nodes[0].name / "bootstrap").touch()  # start.sh: --wsrep-new-cluster
    deadline = time.monotonic() + run.topology.timeouts.startup
    for size, node in enumerate(run.nodes, start=1):
        docker_run(run, node, config)
        members = run.nodes[:size]

        def check(members: list[Node] = members, size: int = size) -> str | None:
            for member in reversed(members):  # the newest node is the last to get there
                status = galera_status(member)
                if not GaleraCluster.is_ready(status, size):
                    return f"{member.name}: {status or 'no answer'}"
            return None

        poll(check, deadline=deadline, what=f"galera size {size} Primary/Synced")
        say(f"floor galera: {node.name} in, size {size} Primary/Synced")


def rabbitmqctl(node: Node, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return docker("exec", node.container, "rabbitmqctl", *args, check=False, timeout=timeout)


def rabbit_floor(run: FloorRun, config: Path, say: Say) -> None:
    assert isinstance(run.topology, RabbitTopology)
    rabbit = RabbitCluster(run, None)  # type: ignore[arg-type]  # rendering never touches Docker
    rabbit.render(config)
    for node in run.nodes:  # same settings, but a standalone boot: the floor clusters by join_cluster
        conf = config / node.name / "rabbitmq.conf"
        lines = conf.read_text().splitlines()
        conf.write_text("\n".join(line for line in lines if not line.startswith("cluster_formation.")) + "\n")
    deadline = time.monotonic() + run.topology.timeouts.startup
    first = run.nodes[0]

    def started(node: Node) -> Callable[[], str | None]:
        def check() -> str | None:
            done = rabbitmqctl(node, "await_startup", "--timeout", "30")
            return (
                None
                if done.returncode == 0
                else f"{node.name}: {(done.stderr or done.stdout).strip()[-120:]}"
            )

        return check

    for node in run.nodes:
        docker_run(run, node, config, env={"RABBITMQ_NODENAME": node_name(node)})
        poll(started(node), deadline=deadline, what=f"rabbitmqctl await_startup on {node.name}")
        if node != first:
            for step in (["stop_app"], ["join_cluster", node_name(first)], ["start_app"]):
                done = rabbitmqctl(node, *step)
                if done.returncode != 0:
                    raise RuntimeError(
                        f"floor: rabbitmqctl {' '.join(step)} on {node.name}: {done.stderr.strip()}"
                    )
        say(f"floor rabbitmq: {node.name} up{'' if node == first else ', joined'}")

    want = {node_name(n) for n in run.nodes}

    def clustered() -> str | None:
        for node in run.nodes:
            done = rabbitmqctl(node, "-q", "cluster_status", "--formatter", "json", timeout=15)
            if done.returncode != 0 or "{" not in done.stdout:
                return f"{node.name}: cluster_status exit {done.returncode}"
            running = set(json.loads(done.stdout[done.stdout.index("{") :]).get("running_nodes", []))
            if running != want:
                return f"{node.name} sees running {sorted(running)}"
        return None

    poll(clustered, deadline=deadline, what=f"every node's cluster_status listing {len(want)} running nodes")


def remove_floor(bench_id: str = TOKEN) -> int:
    """Remove every container and network carrying this bench's id label (never anything else)."""
    selector = f"label={BENCH_ID_LABEL}={bench_id}"
    count = 0
    containers = docker("ps", "-aq", "--filter", selector, check=False).stdout.split()
    if containers:
        docker("rm", "-f", "-v", *containers, check=False)
        count += len(containers)
    networks = docker("network", "ls", "-q", "--filter", selector, check=False).stdout.split()
    if networks:
        docker("network", "rm", *networks, check=False)
        count += len(networks)
    return count


def floor_ready(system: str, nodes: int, image: str, say: Say) -> float:
    """Seconds from the first ``docker`` command to the last readiness check passing; then all removed."""
    topology = topology_of(system, nodes)
    config = Path(tempfile.mkdtemp(prefix=f"hhbench-{TOKEN}-"))
    try:
        started = time.monotonic()

        def timed(text: str) -> None:
            say(f"{text} ({time.monotonic() - started:.1f}s)")

        run = create_floor_network(system, topology, image)
        (galera_floor if system == "galera" else rabbit_floor)(run, config, timed)
        return time.monotonic() - started
    finally:
        with no_interrupts():
            remove_floor()
            shutil.rmtree(config, ignore_errors=True)


# -- driver ----------------------------------------------------------------------------------------


class _SayHandler(logging.Handler):
    def __init__(self, say: Say) -> None:
        super().__init__(logging.INFO)
        self.say = say

    def emit(self, record: logging.LogRecord) -> None:
        self.say(record.getMessage())


def show_harness_log(say: Say) -> None:
    """Print what the harness logs (its ``harness.*`` loggers) while it brings a cluster up."""
    root = logging.getLogger("harness")
    root.addHandler(_SayHandler(say))
    root.setLevel(logging.INFO)


def warm_up(image: str) -> None:
    """One throw-away container so neither side pays for a cold image/page cache."""
    docker("run", "--rm", "--network", "none", *bench_labels(), image, "true")


def median(samples: list[float]) -> float | None:
    return statistics.median(samples) if samples else None


def fmt(value: float | None) -> str:
    return "failed" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=1, help="repetitions per system and side (default 1)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated: galera,rabbitmq")
    parser.add_argument("--nodes", default=",".join(map(str, SIZES)), help="comma-separated sizes: 3,5")
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    sizes = [int(n) for n in args.nodes.split(",") if n.strip().isdigit()]
    if unknown or not systems or args.repeat < 1 or not sizes or any(n not in SIZES for n in sizes):
        parser.error(f"--systems takes {','.join(SYSTEMS)} (got {args.systems!r}); --nodes takes 3,5; "
                     "--repeat >= 1")  # fmt: skip
    signal.signal(signal.SIGTERM, raise_interrupt)

    def say(text: str) -> None:
        console.print(f"[dim]    {text.strip()}[/dim]")

    show_harness_log(say)

    runtime = DockerRuntime()
    image = node_image_ref()
    console.print(f"namespace {NAMESPACE}, bench id {TOKEN}, image {image}, repeat {args.repeat}")
    cases = [(system, n) for system in systems for n in sizes]
    results: dict[tuple[str, int], tuple[list[float], list[float]]] = {c: ([], []) for c in cases}
    try:
        warm_up(image)
        for system, nodes in cases:
            harness_s, floor_s = results[(system, nodes)]
            for rep in range(args.repeat):
                # alternate which side goes first, so neither always inherits the other's warm caches
                order = ("harness", "floor") if rep % 2 == 0 else ("floor", "harness")
                for side in order:
                    console.print(f"[bold]{system}-{nodes}[/bold] {side} #{rep + 1}")
                    try:
                        if side == "harness":
                            harness_s.append(harness_ready(system, nodes, runtime))
                        else:
                            floor_s.append(floor_ready(system, nodes, image, say))
                    except Exception as exc:  # report it, measure the rest
                        console.print(
                            f"[red]  {system}-{nodes} {side} failed: {type(exc).__name__}: {exc}[/red]"
                        )
                        continue
                    console.print(
                        f"  {side} ready in {(harness_s if side == 'harness' else floor_s)[-1]:.2f}s"
                    )
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; cleaning up[/yellow]")
        return 130
    finally:
        with no_interrupts():
            remove_floor()
            runtime.remove_run(None)  # our namespace only

    table = Table(
        title=f"cluster ready time, median of {args.repeat}",
        caption="targets: harness <= 0.8x the floor; 5 nodes <= 1.3x the harness's 3",
    )
    for column, justify in (("cluster", "left"), ("harness ready s", "right"), ("floor ready s", "right"),
                            ("ratio", "right"), ("<= 0.8x", "center"), ("5 / 3", "right")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    all_met = True
    for system, nodes in cases:
        harness_s, floor_s = results[(system, nodes)]
        h, f = median(harness_s), median(floor_s)
        met = h is not None and f is not None and h <= 0.8 * f
        all_met &= met
        ratio = f"{h / f:.2f}" if h is not None and f else "-"
        three = median(results.get((system, 3), ([], []))[0])
        growth = f"{h / three:.2f}" if nodes == 5 and h is not None and three else ""
        table.add_row(f"{system}-{nodes}", fmt(h), fmt(f), ratio, "met" if met else "NOT met", growth)
    console.print(table)
    for system, nodes in cases:
        harness_s, floor_s = results[(system, nodes)]
        samples = ", ".join(f"{v:.2f}" for v in harness_s) or "-"
        floors = ", ".join(f"{v:.2f}" for v in floor_s) or "-"
        console.print(f"{system}-{nodes} samples: harness [{samples}]  floor [{floors}]")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
