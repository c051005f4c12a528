"""A partition shows up in RabbitMQ's ``cluster_status`` → ``partitions`` once the network heals.

rabbitmq-3-ignore: the record stays (the cluster stays split) until the losing side's rabbit app is
restarted, which ``RabbitCluster.recover_partitions`` / ``after_heal`` do. rabbitmq-3-autoheal: the
winner restarts the losers by itself and the record clears. Both use net_ticktime 5 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.faults.nemesis import Nemesis
from harness.lifecycle import Run, down, system_for, up
from harness.runtime.docker import DockerRuntime
from harness.runtime.images import ensure_node_image
from harness.runtime.wait import wait_until
from harness.specs import load_topology
from harness.systems.rabbitmq.cluster import RabbitCluster, merge_partitions

ROOT = Path(__file__).resolve().parents[2]
Cluster = tuple[Run, RabbitCluster]
TOPOLOGIES = ("rabbitmq-3-ignore", "rabbitmq-3-autoheal")


@pytest.fixture(scope="module")
def starting(runtime: DockerRuntime) -> Iterator[dict[str, Future[Run]]]:
    """Both clusters start together (they are independent), so the module waits for one start-up."""
    ensure_node_image(runtime)  # once, before two `up`s could both find it missing and build it
    pool = ThreadPoolExecutor(max_workers=len(TOPOLOGIES))
    futures = {name: pool.submit(up, load_topology(ROOT / "topologies" / f"{name}.yaml"), runtime)
               for name in TOPOLOGIES}  # fmt: skip
    try:
        yield futures
    finally:
        pool.shutdown(wait=True)
        for future in futures.values():
            if future.exception() is None:  # a failed `up` has removed its own resources
                down(future.result().id, runtime)


def _system(starting: dict[str, Future[Run]], name: str, runtime: DockerRuntime) -> Cluster:
    run = starting[name].result()  # re-raises this cluster's start-up error for its tests only
    system = system_for(run, runtime)
    assert isinstance(system, RabbitCluster)
    return run, system


@pytest.fixture(scope="module")
def rabbit_ignore(starting: dict[str, Future[Run]], runtime: DockerRuntime) -> Cluster:
    return _system(starting, "rabbitmq-3-ignore", runtime)


@pytest.fixture(scope="module")
def rabbit_autoheal(starting: dict[str, Future[Run]], runtime: DockerRuntime) -> Cluster:
    return _system(starting, "rabbitmq-3-autoheal", runtime)


def _nemesis(cluster: Cluster, tmp_path: Path) -> Iterator[Nemesis]:
    """A nemesis on a module's cluster; afterwards the cluster is whole again, even after a failed test."""
    run, system = cluster
    nemesis = Nemesis(system, events=tmp_path / "events.jsonl")
    yield nemesis
    nemesis.heal(wait=False)
    system.after_heal()  # what heal(wait=True) is to do: recover under ignore
    system.wait_healthy(run.topology.timeouts.heal)


@pytest.fixture
def ignore_nemesis(rabbit_ignore: Cluster, tmp_path: Path) -> Iterator[Nemesis]:
    yield from _nemesis(rabbit_ignore, tmp_path)


@pytest.fixture
def autoheal_nemesis(rabbit_autoheal: Cluster, tmp_path: Path) -> Iterator[Nemesis]:
    yield from _nemesis(rabbit_autoheal, tmp_path)


def isolate(system: RabbitCluster, nemesis: Nemesis, node: str, sides: dict[str, frozenset[str]]) -> float:
    """Cut ``node`` off and wait until each node in ``sides`` runs with exactly its side; seconds taken."""
    began = time.monotonic()
    nemesis.partition("isolate", node=node)

    def apart() -> bool:
        views = system.memberships(timeout=3)  # a node's cluster_status hangs until it sees the cut
        if any((view := views[name]) is None or view.running != side for name, side in sides.items()):
            seen = {name: sorted(v.running) if v else None for name, v in views.items()}
            raise RuntimeError(f"running nodes seen: {seen}")
        return True

    want = "; ".join(f"{name} sees {','.join(sorted(side))}" for name, side in sides.items())
    wait_until(apart, timeout=30, interval=0.2, max_interval=0.5, what=f"the split ({want})")
    assert system.partitions() == {}, "recorded only once the sides reconnect"
    assert nemesis.open, "the partition event is open"
    return time.monotonic() - began


def test_ignore_partition_is_recorded_and_stays_until_recovered(
    rabbit_ignore: Cluster, ignore_nemesis: Nemesis
) -> None:
    _, system = rabbit_ignore
    nemesis = ignore_nemesis
    detected = isolate(system, nemesis, "n3", {"n1": frozenset({"n1", "n2"}), "n3": frozenset({"n3"})})

    healed_at = time.monotonic()
    nemesis.heal(wait=False)
    first = wait_until(system.partitions, timeout=30, interval=0.2, max_interval=0.5,
                       what="a partition in some node's cluster_status")  # fmt: skip
    appeared = time.monotonic() - healed_at
    expected = {"n1": frozenset({"n3"}), "n2": frozenset({"n3"}), "n3": frozenset({"n1", "n2"})}
    stray = {
        reporter: peers for reporter, peers in first.items() if not peers <= expected.get(reporter, set())
    }
    assert not stray, f"partitions that do not follow the cut: {stray}"

    def reported() -> bool:
        views = system.memberships()
        # The network is fine again, but under ignore the sides stay apart.
        assert views["n1"] and views["n1"].running == {"n1", "n2"}, views["n1"]
        assert views["n3"] and views["n3"].running == {"n3"}, views["n3"]
        return merge_partitions(views) == expected

    wait_until(reported, timeout=15, interval=0.2,
               what=f"every node to report its partition, expected {expected}")  # fmt: skip
    statuses = {s.node: s for s in system.status()}
    assert not any(s.healthy for s in statuses.values())
    assert "partitioned from n1,n2" in statuses["n3"].state
    assert "n3:n1,n2" in statuses["n1"].detail or "n3:n1,n2" in statuses["n3"].detail

    began = time.monotonic()
    messages: list[str] = []
    assert system.recover_partitions() == ["n3"]
    recovered = time.monotonic() - began
    assert "restarting the rabbit app on n3" in messages[0]
    # recover_partitions returned once every node sees all three running and no partitions.
    assert all(s.healthy for s in system.status())
    assert system.recover_partitions() == [], "a whole cluster needs no recovery"
    print(f"\nignore/isolate n3: detected {detected:.1f}s after partition, partitions {appeared:.1f}s "
          f"after heal, recovered in {recovered:.1f}s")  # fmt: skip


def test_ignore_heal_hook_restarts_the_smaller_side_even_the_seed(
    rabbit_ignore: Cluster, ignore_nemesis: Nemesis
) -> None:
    """``after_heal`` then ``wait_healthy``: what ``Nemesis.heal(wait=True)`` runs; n1 is outnumbered."""
    run, system = rabbit_ignore
    nemesis = ignore_nemesis
    detected = isolate(system, nemesis, "n1", {"n2": frozenset({"n2", "n3"}), "n1": frozenset({"n1"})})
    healed_at = time.monotonic()
    nemesis.heal(wait=False)
    messages: list[str] = []
    system.after_heal()
    system.wait_healthy(run.topology.timeouts.heal)  # every node sees all three, no partitions
    total = time.monotonic() - healed_at
    assert any("restarting the rabbit app on n1" in m for m in messages), messages
    print(f"\nignore/isolate n1: detected {detected:.1f}s after partition, whole {total:.1f}s after heal")


def test_autoheal_clears_the_partition_by_itself(rabbit_autoheal: Cluster, autoheal_nemesis: Nemesis) -> None:
    run, system = rabbit_autoheal
    nemesis = autoheal_nemesis
    n3 = run.node("n3")
    detected = isolate(system, nemesis, "n3", {"n1": frozenset({"n1", "n2"}), "n3": frozenset({"n3"})})
    healed_at = time.monotonic()
    nemesis.heal(wait=False)
    # RabbitMQ's autoheal picks n3 as the loser and restarts it (rabbit_autoheal logs the decision).
    wait_until(lambda: "we were selected to restart" in system.runtime.logs(n3.container, tail=2000),
               timeout=30, interval=0.2, what="autoheal to restart n3")  # fmt: skip
    messages: list[str] = []
    system.after_heal()  # autoheal merges by itself; the harness steps in only if it loops
    system.wait_healthy(run.topology.timeouts.heal)  # every node sees all three, no partitions
    total = time.monotonic() - healed_at
    assert all("autoheal has not merged" in m or m.startswith("  rabbitmq:") for m in messages), messages
    how = "with the harness's help: " + "; ".join(messages) if messages else "by itself"
    print(
        f"\nautoheal/isolate n3: detected {detected:.1f}s after partition, whole {total:.1f}s after heal, {how}"
    )
