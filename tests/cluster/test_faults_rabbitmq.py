"""Faults on a real rabbitmq-3 (pause_minority): partitions show in cluster_status, kills rejoin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.runtime import netfilter
from harness.runtime.wait import wait_until
from harness.systems.rabbitmq.cluster import node_name

ROOT = Path(__file__).resolve().parents[2]


def running_seen_by(system, node):  # type: ignore[no-untyped-def]
    try:
        return set(system.cluster_status(node, timeout=8)["running_nodes"])
    except Exception:
        return None


def test_isolated_node_leaves_the_cluster_and_rejoins(rabbit, rabbit_nemesis) -> None:  # type: ignore[no-untyped-def]
    run, system = rabbit
    n1, n2, _n3 = run.nodes
    rabbit_nemesis.partition("isolate", node="n3")
    majority = {node_name(n1), node_name(n2)}
    # net_ticktime 10 s: the majority notices within about 10-14 s; pause_minority then pauses n3.
    wait_until(lambda: running_seen_by(system, n1) == majority, timeout=45, interval=1,
               what="n1's cluster_status to drop n3 from running_nodes")  # fmt: skip
    assert running_seen_by(system, n2) == majority
    rabbit_nemesis.heal()  # waits until all three are running and see each other
    for node in run.nodes:
        assert running_seen_by(system, node) == {node_name(n) for n in run.nodes}
    assert all(netfilter.current(system.runtime, n.container) == [] for n in run.nodes)


def test_killed_node_restarts_and_rejoins(rabbit, rabbit_nemesis) -> None:  # type: ignore[no-untyped-def]
    run, system = rabbit
    n2 = run.nodes[1]
    rabbit_nemesis.kill("n2")
    assert system.container_state(n2) == "exited"
    wait_until(lambda: node_name(n2) not in (running_seen_by(system, run.nodes[0]) or {node_name(n2)}),
               timeout=30, interval=1, what="n1 to see n2 gone")  # fmt: skip
    rabbit_nemesis.start("n2")
    assert running_seen_by(system, n2) == {node_name(n) for n in run.nodes}


def test_cli_fault_and_heal(rabbit) -> None:  # type: ignore[no-untyped-def]
    run, system = rabbit

    def harness(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)  # fmt: skip

    done = harness("fault", run.id, "partition", "--one-way", "n1:n2")
    assert done.returncode == 0, done.stderr
    assert "partition on n1-x->n2 via iptables" in done.stdout
    assert netfilter.current(system.runtime, run.nodes[1].container) == [run.nodes[0].ip]
    assert netfilter.current(system.runtime, run.nodes[0].container) == []
    bad = harness("fault", run.id, "kill", "n9")
    assert bad.returncode == 2 and "unknown node or role 'n9'" in bad.stderr
    healed = harness("heal", run.id)
    assert healed.returncode == 0, healed.stderr
    assert all(netfilter.current(system.runtime, n.container) == [] for n in run.nodes)
