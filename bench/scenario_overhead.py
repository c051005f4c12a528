"""What does the harness add to a scenario beyond its own timeline, with and without a reused cluster?

For each topology (default: topologies/galera-3.yaml and topologies/rabbitmq-3.yaml) it runs the same
``--count`` scenarios (default 7) twice through ``harness.runner``:

* reuse: ``run_scenarios(topology, scenarios)``: one cluster for all of them, healed, checked healthy and
  reset between scenarios (``harness run TOPOLOGY SCENARIO...``);
* fresh: ``run_scenario`` per scenario: a cluster of its own each time (bring-up and removal included).

A scenario's own timeline is what it asks to last: ``Scenario.duration_s`` (settle + its waits) + the
workload's ``quiesce``. The system's recovery is the time the cluster itself takes to be healthy again
after the heal (and, inside the timeline, beyond its waits: a ``start`` step waits for the node to rejoin),
from each run's ``meta.json`` ``phases_s``. The harness's overhead = wall time − timelines − recovery, per
scenario (amortised: the whole sequence, bring-up and removal of the cluster included, divided by the
count); the phases it is made of are printed too. The scenarios are short
ones drawn from what every system supports — a wait, a kill and start, a pause and resume, a partition,
client-link latency — cycled up to ``--count``; ``--scenario FILE`` (repeatable) uses shipped files instead.

    python bench/scenario_overhead.py [--count 7] [--topology topologies/galera-3.yaml ...] [--mode reuse,fresh]

Target (issue #8): with reuse, at most 2 s per scenario amortised.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
os.environ["HARNESS_NAMESPACE"] = f"bench-overhead-{secrets.token_hex(3)}"  # only this bench's resources

from harness.model.scenario import Scenario  # noqa: E402
from harness.model.topology import TopologyBase  # noqa: E402
from harness.runner import RunOutcome, run_scenario, run_scenarios  # noqa: E402
from harness.runtime.docker import DockerRuntime  # noqa: E402
from harness.specs import load_scenario, load_topology  # noqa: E402

WORKLOADS = {
    "galera": {"type": "sql-set", "clients": 4, "rate": 100, "quiesce": "1s"},
    "rabbitmq": {"type": "amqp-queue", "clients": 4, "rate": 100, "quiesce": "1s"},
    "mmm": {"type": "sql-set", "clients": 4, "rate": 100, "quiesce": "1s"},
}
TIMELINES: list[tuple[str, list[dict[str, Any]]]] = [
    ("wait", [{"wait": "3s"}]),
    ("kill-start", [{"kill": "n2"}, {"wait": "2s"}, {"start": "n2"}, {"wait": "1s"}]),
    ("pause-resume", [{"pause": "n3"}, {"wait": "2s"}, {"resume": "n3"}, {"wait": "1s"}]),
    ("partition", [{"partition": {"isolate": "n1"}}, {"wait": "2s"}, {"heal": "partition"}, {"wait": "1s"}]),
    (
        "latency",
        [
            {"link": {"target": "n1", "kind": "latency", "latency_ms": 100}},
            {"wait": "2s"},
            {"heal": "links"},
            {"wait": "1s"},
        ],
    ),
]


def short_scenarios(system: str, count: int) -> list[Scenario]:
    out = []
    for i in range(count):
        name, steps = TIMELINES[i % len(TIMELINES)]
        doc = {"name": f"overhead-{i + 1}-{name}", "systems": [system], "settle": "1s", "steps": steps,
               "workload": {system: WORKLOADS[system]}}  # fmt: skip
        out.append(Scenario.model_validate(doc))
    return out


def own_timeline_s(scenario: Scenario, system: str) -> float:
    spec = scenario.workload[system]
    quiesce = float(getattr(spec, "quiesce", 0) or 0)
    return scenario.duration_s + quiesce  # duration_s: settle + the steps' waits


def measure(topology: TopologyBase, scenarios: list[Scenario], mode: str, reports: Path) -> dict[str, Any]:
    runtime = DockerRuntime()
    started = time.monotonic()
    outcomes: list[RunOutcome]
    if mode == "reuse":
        outcomes = run_scenarios(topology, scenarios, runtime=runtime, reports=reports)
    else:
        outcomes = [run_scenario(topology, s, runtime=runtime, reports=reports) for s in scenarios]
    wall = time.monotonic() - started
    timeline = sum(own_timeline_s(s, topology.system) for s in scenarios)
    verdicts = [o.result.valid for o in outcomes]
    phases: dict[str, float] = {}
    recovery = 0.0
    for scenario, outcome in zip(scenarios, outcomes, strict=True):
        spent = json.loads((outcome.report_dir / "meta.json").read_text())["phases_s"]
        for name, seconds in spent.items():
            phases[name] = phases.get(name, 0.0) + seconds
        recovery += spent["recovery"] + max(0.0, spent["timeline"] - scenario.duration_s)
    overhead = wall - timeline - recovery
    return {"mode": mode, "wall_s": wall, "timeline_s": timeline, "recovery_s": recovery,
            "per_scenario_s": overhead / len(scenarios),
            "phases": {k: v / len(scenarios) for k, v in phases.items() if k not in ("timeline", "recovery", "quiesce")},
            "valid": sum(v is True for v in verdicts), "count": len(scenarios),
            "clusters": len({o.cluster_id for o in outcomes}), "replaced": sum(o.replaced is not None for o in outcomes)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=7)
    parser.add_argument("--topology", action="append", type=Path)
    parser.add_argument("--scenario", action="append", type=Path)
    parser.add_argument("--mode", default="reuse,fresh")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    topologies = args.topology or [
        REPO / "topologies" / "galera-3.yaml",
        REPO / "topologies" / "rabbitmq-3.yaml",
    ]
    console = Console()
    table = Table(title=f"overhead per scenario beyond its own timeline ({args.count} scenarios)")
    for col in (
        "topology",
        "mode",
        "scenarios",
        "clusters",
        "valid",
        "timelines",
        "wall",
        "overhead/scenario",
    ):
        table.add_column(col, justify="right" if col not in ("topology", "mode") else "left")
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        for path in topologies:
            topology = load_topology(path)
            if args.scenario:
                scenarios = [load_scenario(p) for p in args.scenario][: args.count]
            else:
                scenarios = short_scenarios(topology.system, args.count)
            for mode in args.mode.split(","):
                rows = [measure(topology, scenarios, mode, Path(tmp) / mode) for _ in range(args.repeat)]
                per = statistics.median(r["per_scenario_s"] for r in rows)
                r = rows[0]
                table.add_row(topology.name, mode, str(r["count"]), str(r["clusters"]),
                              f"{r['valid']}/{r['count']}", f"{r['timeline_s']:.1f}s", f"{r['recovery_s']:.1f}s",
                              f"{statistics.median(x['wall_s'] for x in rows):.1f}s", f"{per:.2f}s")  # fmt: skip
                console.print(f"{topology.name} {mode}: {per:.2f}s per scenario beyond its timeline and the "
                              f"system's recovery (wall {r['wall_s']:.1f}s, timelines {r['timeline_s']:.1f}s, "
                              f"recovery {r['recovery_s']:.1f}s, replaced {r['replaced']}); mean per scenario: "
                              + ", ".join(f"{k} {v:.2f}s" for k, v in r["phases"].items()))  # fmt: skip
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
