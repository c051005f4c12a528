"""Galera variants on real clusters: two data nodes with garbd as the tie-breaker, and two nodes with
unequal votes (pc.weight). What the quorum decides is read from the nodes' own wsrep status."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.faults.nemesis import Nemesis
from harness.lifecycle import down, system_for, up
from harness.runtime.wait import wait_until
from harness.specs import load_topology

ROOT = Path(__file__).resolve().parents[2]


def _cluster(runtime: Any, topology: str) -> Iterator[Any]:
    run = up(load_topology(ROOT / "topologies" / topology), runtime)
    try:
        yield run, system_for(run, runtime)
    finally:
        down(run.id, runtime)


def state(system: Any, node: Any) -> tuple[str, str] | None:
    try:
        status = system.wsrep(node, timeout=1.0)
    except Exception:
        return None
    return status.get("wsrep_cluster_status", ""), status.get("wsrep_cluster_size", "")


def wait_state(system: Any, node: Any, want: tuple[str, str], what: str) -> None:
    # EVS declares a silent peer gone after suspect_timeout (3 s) + install: generous for a loaded host
    wait_until(lambda: state(system, node) == want, timeout=45, interval=0.3, what=what)


@pytest.fixture(scope="module")
def garbd(runtime) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    yield from _cluster(runtime, "galera-3-garbd.yaml")


@pytest.fixture(scope="module")
def weighted(runtime) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    yield from _cluster(runtime, "galera-2-weighted.yaml")


def test_garbd_keeps_the_data_node_it_still_sees_primary(garbd, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run, system = garbd
    n1, n2, _ = run.nodes
    assert [s.healthy for s in system.status()] == [True, True, True]
    assert state(system, n1) == ("Primary", "3")  # garbd is counted as a member
    nemesis = Nemesis(system, events=tmp_path / "events.jsonl")
    try:
        nemesis.partition("isolate", node="n1")
        wait_state(system, n2, ("Primary", "2"), "n2 Primary with garbd (2 of 3 votes)")
        wait_state(system, n1, ("non-Primary", "1"), "n1 non-Primary alone")
        nemesis.heal()
        assert state(system, n1) == ("Primary", "3")
        nemesis.kill("n3")  # the arbitrator's loss leaves the two data nodes a majority of the last view
        wait_state(system, n1, ("Primary", "2"), "n1 and n2 Primary without garbd")
        assert state(system, n2) == ("Primary", "2")
    finally:
        nemesis.heal()
    assert all(s.healthy for s in system.status())


def test_the_heavier_node_alone_stays_primary(weighted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run, system = weighted
    n1, n2 = run.nodes
    nemesis = Nemesis(system, events=tmp_path / "events.jsonl")
    try:
        nemesis.partition("isolate", node="n2")
        wait_state(system, n1, ("Primary", "1"), "n1 (weight 2 of 3) Primary alone")
        wait_state(system, n2, ("non-Primary", "1"), "n2 (weight 1 of 3) non-Primary")
    finally:
        nemesis.heal()
    assert all(s.healthy for s in system.status())
