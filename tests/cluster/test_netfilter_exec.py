"""Partitions applied from inside the containers (``exec`` mode: no root on the Docker host).

The harness is root here, so the suite forces the mode with ``HARNESS_NETFILTER_MODE=exec``: the nodes are
created with NET_ADMIN, and every rule goes in through ``docker exec … iptables-restore``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.faults.nemesis import Nemesis
from harness.lifecycle import Run, down, system_for, up
from harness.model.history import read_events
from harness.runtime import netfilter
from harness.runtime.docker import DockerRuntime
from harness.runtime.wait import wait_until
from harness.specs import load_topology
from harness.systems.base import ClusterSystem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exec_galera(runtime: DockerRuntime) -> Iterator[tuple[Run, ClusterSystem]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_NETFILTER_MODE", "exec")
        run = up(load_topology(ROOT / "topologies" / "galera-3.yaml"), runtime)
        try:
            yield run, system_for(run, runtime)
        finally:
            down(run.id, runtime)


def _status(system: ClusterSystem, node: object) -> str | None:
    try:
        return system.wsrep(node, timeout=1.0).get("wsrep_cluster_status")  # type: ignore[attr-defined]
    except Exception:
        return None


def test_partition_from_inside_the_containers(exec_galera: tuple[Run, ClusterSystem], tmp_path: Path) -> None:
    run, system = exec_galera
    assert netfilter.mode() == "exec"
    n1, n2, n3 = run.nodes
    for node in run.nodes:  # NET_ADMIN only because the rules go in from inside
        assert system.runtime.client.containers.get(node.container).attrs["HostConfig"]["CapAdd"] == [
            "NET_ADMIN"
        ]
    nemesis = Nemesis(system, events=tmp_path / "events.jsonl")
    t0 = time.monotonic()
    event = nemesis.partition("isolate", node="n3")
    assert event.mechanism == "iptables(exec)" and event.detail["how"] == "exec"
    assert netfilter.current(system.runtime, n3.container) == [n1.ip, n2.ip]
    wait_until(lambda: _status(system, n3) == "non-Primary", timeout=30, what="n3 non-Primary")
    detected = time.monotonic() - t0
    assert _status(system, n1) == "Primary"
    nemesis.heal()  # waits until every node is Primary/Synced again
    assert all(netfilter.current(system.runtime, n.container) == [] for n in run.nodes)
    assert all(s.healthy for s in system.status())
    (ev,) = read_events(tmp_path / "events.jsonl")
    assert ev.end is not None and ev.detail["how"] == "exec"
    print(f"exec mode: n3 non-Primary {detected:.1f}s after the partition")
