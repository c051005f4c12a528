"""A partition shows up in RabbitMQ's ``cluster_status`` → ``partitions`` once the network heals.

rabbitmq-3-ignore: the record stays (the cluster stays split) until the losing side's rabbit app is
restarted, which ``RabbitCluster.recover_partitions`` / ``after_heal`` do. rabbitmq-3-autoheal: the
winner restarts the losers by itself and the record clears; the harness steps in (an ``operator-recovery``
event) only when autoheal has not merged the cluster within ``settings.autoheal_grace``. Both use
net_ticktime 5 s. Every recovery the harness makes is asserted on the events it records, never on logs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.faults.nemesis import Nemesis
from harness.lifecycle import Run, down, system_for, up
from harness.model.history import Event, read_events
from harness.runtime.docker import DockerRuntime
from harness.runtime.images import ensure_node_image
from harness.runtime.wait import wait_until
from harness.specs import load_topology
from harness.systems.rabbitmq.cluster import RabbitCluster
from harness.systems.rabbitmq.partitions import Membership, merge_partitions

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
    if not system.whole(system.memberships()):  # a test that failed half-way: what heal(wait=True) does
        system.after_heal()
        system.wait_healthy(run.topology.timeouts.heal)


@pytest.fixture(scope="module")
def rabbit_autoheal_forced(rabbit_autoheal: Cluster) -> Cluster:
    """The autoheal cluster seen through a topology whose ``autoheal_grace`` is 0.1 s: the same containers,
    but the harness gives autoheal no time, so its fallback recovery must run (the grace is the harness's
    own setting, never rendered into RabbitMQ's configuration)."""
    run, system = rabbit_autoheal
    settings = run.topology.settings  # type: ignore[attr-defined]
    topology = run.topology.model_copy(
        update={"settings": settings.model_copy(update={"autoheal_grace": 0.1})}
    )
    forced = dataclasses.replace(run, topology=topology)
    return forced, RabbitCluster(forced, system.runtime)


@pytest.fixture
def ignore_nemesis(rabbit_ignore: Cluster, tmp_path: Path) -> Iterator[Nemesis]:
    yield from _nemesis(rabbit_ignore, tmp_path)


@pytest.fixture
def autoheal_nemesis(rabbit_autoheal: Cluster, tmp_path: Path) -> Iterator[Nemesis]:
    yield from _nemesis(rabbit_autoheal, tmp_path)


@pytest.fixture
def forced_nemesis(rabbit_autoheal_forced: Cluster, tmp_path: Path) -> Iterator[Nemesis]:
    yield from _nemesis(rabbit_autoheal_forced, tmp_path)


def recoveries(nemesis: Nemesis) -> list[Event]:
    """The operator recoveries the harness made while this nemesis's event log was the system's."""
    return [e for e in [*nemesis.events.closed, *nemesis.open.values()] if e.name == "operator-recovery"]


def stay_apart(
    system: RabbitCluster,
    sides: Mapping[str, frozenset[str]],
    expected: Mapping[str, frozenset[str]],
    *,
    window: float,
    deadline: float,
) -> tuple[dict[str, Membership | None], int]:
    """Sample every node's view again and again, from now until every node reports exactly ``expected``
    and at least ``window`` seconds have passed (failing after ``deadline`` s), and assert on EVERY sample
    that each node in ``sides`` still runs with exactly its side and that no node reports a partition that
    does not follow the cut. Returns the last views and how many samples were taken."""
    began = time.monotonic()
    samples = 0
    while True:
        views = system.memberships()
        samples += 1
        at = time.monotonic() - began
        for name, side in sides.items():
            view = views[name]
            assert view is not None and view.running == side, (
                f"{at:.1f}s after heal, sample {samples}: {name} runs with "
                f"{sorted(view.running) if view else None}, expected the sides apart ({sorted(side)})"
            )
        reported = merge_partitions(views)
        stray = {r: p for r, p in reported.items() if not p <= expected.get(r, frozenset())}
        assert not stray, f"sample {samples}: partitions that do not follow the cut: {stray}"
        if reported == expected and at >= window:
            return views, samples
        assert at < deadline, (
            f"after {at:.1f}s ({samples} samples) partitions {reported}, expected {expected}"
        )


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
    rabbit_ignore: Cluster, ignore_nemesis: Nemesis, tmp_path: Path
) -> None:
    run, system = rabbit_ignore
    nemesis = ignore_nemesis
    ticktime = run.topology.settings.net_ticktime  # type: ignore[attr-defined]
    sides = {"n1": frozenset({"n1", "n2"}), "n3": frozenset({"n3"})}
    detected = isolate(system, nemesis, "n3", sides)

    healed_at = time.monotonic()
    nemesis.heal(wait=False)
    expected = {"n1": frozenset({"n3"}), "n2": frozenset({"n3"}), "n3": frozenset({"n1", "n2"})}
    # The network is fine again, but under ignore the sides stay apart: checked on every sample for at
    # least two net ticks, the time in which reconnected nodes would have merged if anything merged them.
    _views, samples = stay_apart(system, sides, expected, window=2 * ticktime, deadline=30)
    appeared = time.monotonic() - healed_at
    assert samples >= 3, samples
    statuses = {s.node: s for s in system.status()}
    assert not any(s.healthy for s in statuses.values())
    assert "partitioned from n1,n2" in statuses["n3"].state
    assert "n3:n1,n2" in statuses["n1"].detail or "n3:n1,n2" in statuses["n3"].detail
    assert recoveries(nemesis) == [], "nothing recovered before the harness was asked to"

    began = time.monotonic()
    assert system.recover_partitions() == ["n3"]
    recovered = time.monotonic() - began
    # recover_partitions returned once every node sees all three running and no partitions.
    assert all(s.healthy for s in system.status())
    (recovery,) = recoveries(nemesis)
    assert recovery.target == ("n3",) and recovery.end is not None, recovery
    assert recovery.detail["by"] == "harness" and recovery.detail["reason"] == "partition_handling ignore"
    assert recovery.detail["partitions"] == {k: sorted(v) for k, v in expected.items()}, recovery.detail
    assert system.recover_partitions() == [], "a whole cluster needs no recovery"
    assert len(recoveries(nemesis)) == 1, "and records none"
    stored = [e for e in read_events(tmp_path / "events.jsonl") if e.name == "operator-recovery"]
    assert [e.target for e in stored] == [("n3",)]  # the recovery is one of the run's events
    print(f"\nignore/isolate n3: detected {detected:.1f}s after partition, all partitions reported "
          f"{appeared:.1f}s after heal ({samples} samples apart), recovered in {recovered:.1f}s")  # fmt: skip


def test_ignore_heal_hook_restarts_the_smaller_side_even_the_seed(
    rabbit_ignore: Cluster, ignore_nemesis: Nemesis
) -> None:
    """``after_heal`` then ``wait_healthy``: what ``Nemesis.heal(wait=True)`` runs; n1 is outnumbered."""
    run, system = rabbit_ignore
    nemesis = ignore_nemesis
    detected = isolate(system, nemesis, "n1", {"n2": frozenset({"n2", "n3"}), "n1": frozenset({"n1"})})
    healed_at = time.monotonic()
    nemesis.heal(wait=False)
    system.after_heal()
    system.wait_healthy(run.topology.timeouts.heal)  # every node sees all three, no partitions
    total = time.monotonic() - healed_at
    (recovery,) = recoveries(nemesis)
    assert recovery.target == ("n1",), recovery  # the seed, alone, is the losing side
    assert recovery.detail["reason"] == "partition_handling ignore", recovery.detail
    assert set(recovery.detail["partitions"]) <= {"n1", "n2", "n3"} and recovery.detail["partitions"]
    print(f"\nignore/isolate n1: detected {detected:.1f}s after partition, whole {total:.1f}s after heal")


def _autoheal_restarts(system: RabbitCluster, node: str) -> int:
    """How often ``node``'s log says autoheal chose it to restart."""
    return system.runtime.logs(system.run.node(node).container, tail=5000).count(
        "we were selected to restart"
    )


def test_autoheal_clears_the_partition_by_itself(rabbit_autoheal: Cluster, autoheal_nemesis: Nemesis) -> None:
    run, system = rabbit_autoheal
    nemesis = autoheal_nemesis
    grace = run.topology.settings.autoheal_grace  # type: ignore[attr-defined]
    before = _autoheal_restarts(system, "n3")
    detected = isolate(system, nemesis, "n3", {"n1": frozenset({"n1", "n2"}), "n3": frozenset({"n3"})})
    healed_at = time.monotonic()
    nemesis.heal(wait=False)
    # RabbitMQ's autoheal picks n3 as the loser and restarts it (rabbit_autoheal logs the decision).
    wait_until(lambda: _autoheal_restarts(system, "n3") > before, timeout=30, interval=0.2,
               what="autoheal to restart n3")  # fmt: skip
    system.after_heal()  # waits up to autoheal_grace for RabbitMQ to merge; steps in only after that
    system.wait_healthy(run.topology.timeouts.heal)  # every node sees all three, no partitions
    total = time.monotonic() - healed_at
    stepped_in = recoveries(nemesis)
    winners = {"n1", "n2"}
    stale = [e for e in stepped_in if e.target and set(e.target) <= winners
             and set(e.detail["partitions"]) <= winners]  # fmt: skip
    if stepped_in and stale == stepped_in:
        # RabbitMQ 3.10's own race, not the harness's: autoheal did restart n3 and every node runs with
        # every node, but a node of the winning side kept n3 in its partition list (rabbit_node_monitor
        # forgets partitions only in handle_dead_rabbit), so the harness restarted that reporter's app.
        pytest.xfail(f"autoheal merged n3 back but left a stale partition record: {stale[0].detail}")
    assert stepped_in == [], f"autoheal did not merge within {grace:g}s: {stepped_in}"
    assert all(e.detail.get("by") != "harness" for e in nemesis.events.closed), nemesis.events.closed
    print(f"\nautoheal/isolate n3: detected {detected:.1f}s after partition, whole {total:.1f}s after heal, "
          "by itself")  # fmt: skip


def test_autoheal_fallback_recovery_runs_when_the_grace_is_over(
    rabbit_autoheal_forced: Cluster, forced_nemesis: Nemesis, tmp_path: Path
) -> None:
    run, system = rabbit_autoheal_forced
    nemesis = forced_nemesis
    assert run.topology.settings.autoheal_grace == 0.1  # type: ignore[attr-defined]
    isolate(system, nemesis, "n3", {"n1": frozenset({"n1", "n2"}), "n3": frozenset({"n3"})})
    healed_at = time.monotonic()
    nemesis.heal()  # wait=True: after_heal gives autoheal 0.1 s, then recovers, then waits for health
    total = time.monotonic() - healed_at
    (recovery,) = recoveries(nemesis)
    assert recovery.detail["by"] == "harness", recovery
    assert recovery.detail["reason"] == "autoheal had not merged the cluster in 0.1s", recovery.detail
    assert recovery.detail["partitions"], "the recovery ran on a partition some node reported"
    # only ever the losing side (possibly already restarting under autoheal), or, for a partition record
    # RabbitMQ left stale on a node that runs with every node, that reporter
    assert set(recovery.target) <= {"n3"} | set(recovery.detail["partitions"]), recovery
    assert recovery.end is not None and recovery.end >= recovery.start
    assert all(s.healthy for s in system.status())
    stored = [e for e in read_events(tmp_path / "events.jsonl") if e.name == "operator-recovery"]
    assert [e.detail["reason"] for e in stored] == [recovery.detail["reason"]]
    print(f"\nautoheal (grace 0.1s)/isolate n3: whole {total:.1f}s after heal, the harness restarted "
          f"{','.join(recovery.target) or 'nothing'}")  # fmt: skip
