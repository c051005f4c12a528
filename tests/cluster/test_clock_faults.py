"""Clock faults on a real MMM pair under libfaketime (topology ``clock: faketime``): a master's wall clock
(MariaDB's NOW()) jumps, drifts and strobes while its peer's and the harness's stay true, pt-heartbeat's
lag (stamped by the monitor's true clock) stays true, and a heal sets the clock right again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.faults.nemesis import Nemesis
from harness.lifecycle import Run, down, system_for, up
from harness.runtime.docker import DockerRuntime
from harness.runtime.wait import wait_until
from harness.specs import load_topology
from harness.systems.mmm.cluster import MmmCluster
from harness.systems.mysql_replicated import heartbeat_age

ROOT = Path(__file__).resolve().parents[2]
SLACK_S = 1.5  # a query's round trip and a loaded host


@pytest.fixture(scope="module")
def mmm(runtime: DockerRuntime) -> Iterator[tuple[Run, MmmCluster]]:
    run = up(load_topology(ROOT / "topologies" / "mmm-2-faketime.yaml"), runtime)
    try:
        system = system_for(run, runtime)
        assert isinstance(system, MmmCluster)
        yield run, system
    finally:
        down(run.id, runtime)


@pytest.fixture
def nemesis(mmm: tuple[Run, MmmCluster], tmp_path: Path) -> Iterator[Nemesis]:
    nemesis = Nemesis(mmm[1], events=tmp_path / "events.jsonl")
    yield nemesis
    nemesis.heal()


def skew(system: MmmCluster, name: str) -> float:
    """The node's wall clock (MariaDB's NOW()) minus the host's, seconds."""
    conn = system.connect(system.run.node(name), timeout=2.0)
    try:
        with conn.cursor() as cur:
            before = time.time()
            cur.execute("SELECT UNIX_TIMESTAMP(NOW(6))")
            (stamp,) = cur.fetchone()
            after = time.time()
    finally:
        conn.close()
    return float(stamp) - (before + after) / 2


def test_a_bump_moves_one_masters_wall_clock_and_a_heal_sets_it_true(
    mmm: tuple[Run, MmmCluster], nemesis: Nemesis
) -> None:
    _, system = mmm
    assert abs(skew(system, "n1")) < SLACK_S and abs(skew(system, "n2")) < SLACK_S
    event = nemesis.clock("n1", bump_s=-30.0)
    assert event.mechanism == "faketime" and event.detail["bump_s"] == -30.0
    assert abs(skew(system, "n1") + 30.0) < SLACK_S, "n1's NOW() is 30 s behind, without a restart"
    assert abs(skew(system, "n2")) < SLACK_S, "n2's clock is untouched"
    # pt-heartbeat is stamped by the monitor's true clock: the lag it shows on each master stays true
    for node in system.run.nodes:
        ts = wait_until(lambda n=node: system.heartbeat_ts(n), timeout=10, what="a heartbeat stamp")
        assert heartbeat_age(ts) < 2.0
    (ended,) = nemesis.heal_clock()
    assert ended.id == event.id and ended.end is not None
    assert abs(skew(system, "n1")) < SLACK_S


def test_drift_and_strobe_are_driven_until_healed(mmm: tuple[Run, MmmCluster], nemesis: Nemesis) -> None:
    _, system = mmm
    nemesis.clock("n2", drift=4.0)  # 4 s gained per true second
    wait_until(lambda: skew(system, "n2") > 2.0, timeout=10, interval=0.1, what="n2's clock running ahead")
    first = skew(system, "n2")
    wait_until(lambda: skew(system, "n2") > first + 1.0, timeout=10, interval=0.1, what="and gaining")
    nemesis.heal_clock()
    assert abs(skew(system, "n2")) < SLACK_S

    nemesis.clock("n1", strobe=(10.0, 0.2))  # true, then 10 s ahead, every 200 ms
    seen: set[int] = set()

    def both() -> bool:
        seen.add(round(skew(system, "n1") / 10))
        return {0, 1} <= seen

    wait_until(both, timeout=10, interval=0.05, what="n1's clock flipping between true and +10 s")
    nemesis.heal_clock()
    assert abs(skew(system, "n1")) < SLACK_S
