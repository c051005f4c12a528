"""MMM on a real mmm-2: writes through HAProxy's writer frontend, replication lag through a slowed
replication link, a cut replication link taking the reader role, and the writer failing over.

Figures (ready time, writer kill → writer moved, kill → first write that succeeds) are printed as
``MEASURE name=value`` lines (``pytest -s``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pymysql
import pytest

from harness.faults.nemesis import Nemesis
from harness.lifecycle import Run, down, system_for, up
from harness.runtime.docker import DockerRuntime
from harness.runtime.wait import wait_until
from harness.specs import load_topology
from harness.systems.mmm.cluster import MmmCluster
from harness.systems.mmm.probe import heartbeat_age
from harness.systems.mysql import DATABASE

ROOT = Path(__file__).resolve().parents[2]


def measure(name: str, value: float) -> None:
    print(f"MEASURE {name}={value:.2f}s")


@pytest.fixture(scope="module")
def mmm(runtime: DockerRuntime) -> Iterator[tuple[Run, MmmCluster]]:
    began = time.monotonic()
    run = up(load_topology(ROOT / "topologies" / "mmm-2.yaml"), runtime)
    measure("ready", time.monotonic() - began)
    try:
        system = system_for(run, runtime)
        assert isinstance(system, MmmCluster)
        conn = system.connect_endpoint(system.endpoint(run.nodes[0]))
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS mmm_rows (id VARCHAR(40) PRIMARY KEY, v INT)")
        conn.close()
        yield run, system
    finally:
        down(run.id, runtime)


@pytest.fixture
def nemesis(mmm: tuple[Run, MmmCluster], tmp_path: Path) -> Iterator[Nemesis]:
    nemesis = Nemesis(mmm[1], events=tmp_path / "events.jsonl")
    yield nemesis
    nemesis.heal()  # every link and process back, and every master healthy (ONLINE, replicating)


def detection_bound(settings: Any) -> float:
    """The longest MMM's rules let the monitor take to act on a failed check: the check may only fail at
    the next round (``check_period``) and take its ``timeout``, must keep failing for ``trap_period``, and
    the round that sees it past the trap again takes up to ``check_period`` + ``timeout``; then the role
    change (the promotion waits at most ``timeout`` for the relay log)."""
    return settings.trap_period + 2 * (settings.check_period + settings.timeout) + settings.timeout


def deadline(settings: Any) -> float:
    """A wait's deadline from the monitor's own timers: twice the bound, plus a loaded host's slack."""
    return 2 * detection_bound(settings) + 3.0


def lag(system: MmmCluster, node: Any) -> float:
    ts = system.heartbeat_ts(node)
    assert ts is not None
    return heartbeat_age(ts)


def host(system: MmmCluster, name: str) -> dict[str, Any]:
    return system.monitor_state()["hosts"][name]  # type: ignore[no-any-return]


def served_by(system: MmmCluster, service: str) -> str:
    conn = system.connect_endpoint(system.endpoint(system.run.nodes[0], service), timeout=1.0)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@hostname")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def write_row(system: MmmCluster, value: int = 1, timeout: float = 2.0) -> str:
    """Insert one row through the writer frontend, as an application does; returns its id."""
    row = uuid.uuid4().hex
    conn = system.connect_endpoint(system.endpoint(system.run.nodes[0]), timeout=timeout)
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO mmm_rows (id, v) VALUES (%s, %s)", (row, value))
    finally:
        conn.close()
    return row


def has_row(system: MmmCluster, node: Any, row: str) -> bool:
    rows = system.query(node, f"SELECT COUNT(*) AS n FROM {DATABASE}.mmm_rows WHERE id = '{row}'")
    return rows[0]["n"] == 1


def test_ready_writer_on_n1_standby_read_only(mmm: tuple[Run, MmmCluster]) -> None:
    run, system = mmm
    n1, n2 = run.nodes
    show = system.monitor_state()
    assert show["writer"] == "n1" and show["writer_active"]
    assert {name: h["state"] for name, h in show["hosts"].items()} == {"n1": "ONLINE", "n2": "ONLINE"}
    assert show["hosts"]["n1"]["roles"] == ["writer", "reader"] and show["hosts"]["n2"]["roles"] == ["reader"]
    assert (system.read_only(n1), system.read_only(n2)) == (0, 1)
    for node in (n1, n2):
        slave = system.slave_status(node)
        assert (slave["Slave_IO_Running"], slave["Slave_SQL_Running"]) == ("Yes", "Yes")
        assert slave["Master_Host"] == system.run.ip(2)  # through the run's Toxiproxy (nK-repl)
    assert served_by(system, "writer") == "n1"
    assert {served_by(system, "reader") for _ in range(4)} == {"n1", "n2"}  # round robin over both readers
    rows = system.query(n2, "SELECT @@auto_increment_increment AS inc, @@auto_increment_offset AS off")
    assert rows == [{"inc": 2, "off": 2}]


def test_write_through_writer_frontend_reaches_both_masters(mmm: tuple[Run, MmmCluster]) -> None:
    run, system = mmm
    row = write_row(system)
    for node in run.nodes:
        wait_until(partial(has_row, system, node, row), timeout=10, what=f"row on {node.name}")
    conn = system.connect_endpoint(system.endpoint(run.nodes[1], "mysql"))  # n2 itself, read-only
    with pytest.raises(pymysql.MySQLError) as refused, conn.cursor() as cur:
        cur.execute("INSERT INTO mmm_rows (id, v) VALUES ('direct-to-standby', 1)")
    conn.close()
    assert refused.value.args[0] == 1290  # --read-only: the standby refuses application writes


def test_slow_replication_link_shows_as_lag_on_that_replica_only(
    mmm: tuple[Run, MmmCluster], nemesis: Nemesis
) -> None:
    run, system = mmm
    n1, n2 = run.nodes
    wait_until(lambda: lag(system, n2) < 0.5, timeout=10, what="n2 in step before the fault")
    nemesis.link(
        "n2-repl", {"kind": "latency", "latency_ms": 1000, "direction": "downstream"}
    )  # binlog events n1 → n2, +1 s

    def n2_behind() -> tuple[float, float] | None:
        lags = lag(system, n1), lag(system, n2)
        return lags if lags[1] > 0.5 and lags[0] < 0.5 else None

    seen = wait_until(n2_behind, timeout=10, what="n2 behind by > 0.5 s while n1 is not")
    print(f"lag with 1 s on n2-repl: n1 {seen[0]:.2f}s, n2 {seen[1]:.2f}s")
    # MMM's rep_backlog reads Seconds_Behind_Master, which a slow network does not raise: n2 stays ONLINE.
    assert host(system, "n2")["state"] == "ONLINE"
    nemesis.heal_links()
    healed = time.monotonic()
    wait_until(lambda: lag(system, n2) < 0.5, timeout=10, what="n2 caught up after heal")
    measure("lag_catch_up_after_heal", time.monotonic() - healed)


def test_cut_replication_link_takes_the_reader_role(mmm: tuple[Run, MmmCluster], nemesis: Nemesis) -> None:
    run, system = mmm
    settings = run.topology.settings  # type: ignore[attr-defined]
    cut = time.monotonic()
    nemesis.link("n2-repl", {"kind": "down"})

    def n2_out() -> dict[str, Any] | None:
        n2 = host(system, "n2")
        return n2 if n2["state"] in ("REPLICATION_FAIL", "REPLICATION_DELAY") else None

    state = wait_until(n2_out, timeout=deadline(settings), what="monitor takes n2 out")
    measure("repl_cut_to_n2_out", time.monotonic() - cut)
    assert state["roles"] == [] and state["replication"]["Slave_IO_Running"] != "Yes"
    assert host(system, "n1")["roles"] == ["writer", "reader", "reader"]  # both readers on n1
    assert {served_by(system, "reader") for _ in range(4)} == {"n1"}  # HAProxy: n2 in maintenance
    nemesis.heal_links()
    # REPLICATION_* goes straight back to ONLINE once the checks pass again (no auto_set_online wait)
    wait_until(lambda: host(system, "n2")["state"] == "ONLINE" and host(system, "n2")["roles"] == ["reader"],
               timeout=deadline(settings), what="n2 ONLINE with a reader role again")  # fmt: skip
    changes = [c for c in system.monitor_state()["changes"] if c.get("host") == "n2" and "state_to" in c]
    assert [c["state_to"] for c in changes[-2:]] == [state["state"], "ONLINE"]  # straight back, per MMM


def test_writer_killed_moves_then_old_writer_rejoins_as_standby(
    mmm: tuple[Run, MmmCluster], nemesis: Nemesis
) -> None:
    run, system = mmm
    n1, n2 = run.nodes
    assert system.primary() == n1
    kill_wall = time.time()
    killed = time.monotonic()
    event = nemesis.kill("writer")
    assert tuple(event.target) == ("n1",)

    def writer_moved() -> bool:
        show = system.monitor_state(timeout=1.0)
        return show["writer"] == "n2" and show["writer_active"]

    settings = run.topology.settings  # type: ignore[attr-defined]
    # fine-grained polls (interval = max_interval): these polls are the measurement
    wait_until(writer_moved, timeout=deadline(settings), interval=0.05, max_interval=0.05,
               what="writer on n2, writes enabled")  # fmt: skip
    moved = time.monotonic() - killed

    def first_write() -> str:
        return write_row(system, timeout=1.0)

    row = wait_until(first_write, timeout=deadline(settings), interval=0.05, max_interval=0.05,
                     what="a write through the writer")  # fmt: skip
    written = time.monotonic() - killed
    changes = system.monitor_state()["changes"]
    move = next(c for c in changes if c.get("role") == "writer" and c.get("role_to") == "n2")
    measure("kill_to_writer_moved_observed", moved)
    measure("kill_to_writer_moved_monitor_log", move["time"] - kill_wall)
    measure("kill_to_first_successful_write", written)
    # the monitor moved the writer within what its own timers allow (plus slack), and not before the
    # trap period had run out: a dead writer is not replaced on one failed check
    took = move["time"] - kill_wall
    assert settings.trap_period <= took < deadline(settings), (took, detection_bound(settings))
    assert system.read_only(n2) == 0
    assert served_by(system, "writer") == "n2"
    assert has_row(system, n2, row)

    started = time.monotonic()
    nemesis.start("n1")  # waits until both masters are ONLINE and replicating again
    measure("restart_to_n1_online", time.monotonic() - started)
    show = system.monitor_state()
    assert show["writer"] == "n2"  # no fail-back
    assert show["hosts"]["n1"]["roles"] == ["reader"] and system.read_only(n1) == 1
    states = [c["state_to"] for c in show["changes"] if c.get("host") == "n1" and "state_to" in c]
    assert states[-3:] == ["HARD_OFFLINE", "AWAITING_RECOVERY", "ONLINE"]
    slave = system.slave_status(n1)
    assert (slave["Slave_IO_Running"], slave["Slave_SQL_Running"]) == ("Yes", "Yes")
    wait_until(lambda: has_row(system, n1, row), timeout=10, what="n1 replicates what n2 took as writer")


def test_writer_wiped_loses_what_only_it_had_and_returns_seeded(
    mmm: tuple[Run, MmmCluster], nemesis: Nemesis
) -> None:
    """After the kill above n2 is the writer. Its replication to n1 cut, rows it takes exist on its disk
    alone; then it is lost with that disk (`wipe`). The writer moves to n1, n2 returns empty and is
    seeded from n1 by the harness (an operator's dump): the cut-off rows are gone from both masters, the
    rest is on both, and replication runs both ways again — n2's own later writes reach n1."""
    run, system = mmm
    n1, n2 = run.nodes
    assert system.primary() == n2
    before = write_row(system)
    wait_until(lambda: has_row(system, n1, before), timeout=10, what="n1 has the row written before the cut")
    nemesis.link("n1-repl", {"kind": "down"})
    alone = [write_row(system) for _ in range(5)]
    assert all(has_row(system, n2, row) and not has_row(system, n1, row) for row in alone)

    event = nemesis.wipe("writer")
    assert tuple(event.target) == ("n2",) and event.end is not None
    assert (system.wiped_logs() / "n2-1.log").exists()
    reseed = next(e for e in nemesis.events.closed if e.name == "operator-reseed")
    assert reseed.target == "n2" and reseed.detail["by"] == "harness" and reseed.detail["source"] == "n1"
    assert system.primary() == n1  # the monitor moved the writer off the lost node before it was seeded
    nemesis.heal()  # the link back; both masters ONLINE and replicating

    for node in (n1, n2):
        assert has_row(system, node, before)
        assert not any(has_row(system, node, row) for row in alone)  # existed only on the lost disk
    after = write_row(system)  # through the writer, n1
    wait_until(lambda: has_row(system, n2, after), timeout=10, what="the seeded n2 replicates from n1")
    # n2 continues its own GTID domain where the cluster has it: once it is the writer again, n1 applies
    # what it writes (a node whose numbering restarted at 1 would be skipped as already applied)
    nemesis.kill("writer")
    wait_until(lambda: system.monitor_state(timeout=1.0)["writer"] == "n2", timeout=30, what="writer on n2")
    last = wait_until(lambda: write_row(system, timeout=1.0), timeout=30, what="a write through n2")
    nemesis.start("n1")
    wait_until(lambda: has_row(system, n1, last), timeout=15, what="n1 replicates what the seeded n2 wrote")
