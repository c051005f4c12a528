"""Real clusters for the tests that claim cluster behaviour: one per system, shared by the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.lifecycle import Run, down, system_for, up
from harness.runtime.docker import DockerRuntime
from harness.specs import load_topology
from harness.systems.base import ClusterSystem

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster" in str(item.path):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def runtime() -> DockerRuntime:
    return DockerRuntime()  # no engine is an error here, never a skip: CI must run these


def _cluster(runtime: DockerRuntime, topology: str) -> Iterator[tuple[Run, ClusterSystem]]:
    run = up(load_topology(ROOT / "topologies" / topology), runtime)
    try:
        yield run, system_for(run, runtime)
    finally:
        down(run.id, runtime)


@pytest.fixture(scope="session")
def galera(runtime: DockerRuntime) -> Iterator[tuple[Run, ClusterSystem]]:
    yield from _cluster(runtime, "galera-3.yaml")


@pytest.fixture(scope="session")
def rabbit(runtime: DockerRuntime) -> Iterator[tuple[Run, ClusterSystem]]:
    yield from _cluster(runtime, "rabbitmq-3.yaml")


def _nemesis(cluster: tuple[Run, ClusterSystem], tmp_path: Path) -> Iterator[Any]:
    """A nemesis on a shared run; heals (and waits for health) after every test."""
    from harness.faults.nemesis import Nemesis

    nemesis = Nemesis(cluster[1], events=tmp_path / "events.jsonl")
    yield nemesis
    nemesis.heal()


@pytest.fixture
def galera_nemesis(galera: tuple[Run, ClusterSystem], tmp_path: Path) -> Iterator[Any]:
    yield from _nemesis(galera, tmp_path)


@pytest.fixture
def rabbit_nemesis(rabbit: tuple[Run, ClusterSystem], tmp_path: Path) -> Iterator[Any]:
    yield from _nemesis(rabbit, tmp_path)
