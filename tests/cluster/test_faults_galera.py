"""Each fault really does what it says on a real galera-3, and its heal undoes it."""

from __future__ import annotations

import socket
import statistics
import time

import pymysql
import pytest

from harness.errors import InputError
from harness.runtime import netfilter
from harness.model.history import read_events
from harness.runtime.wait import wait_until
from harness.systems.mysql import PASSWORD, USER


def wsrep_or_none(system, node):  # type: ignore[no-untyped-def]
    try:
        return system.wsrep(node, timeout=1.0)
    except Exception:
        return None


def test_isolated_node_goes_non_primary_and_rejoins(galera, galera_nemesis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run, system = galera
    n1, n2, n3 = run.nodes
    t0 = time.monotonic()
    event = galera_nemesis.partition("isolate", node="n3")
    assert event.mechanism.startswith("iptables")
    assert netfilter.current(system.runtime, n3.container) == [n1.ip, n2.ip]
    wait_until(lambda: (wsrep_or_none(system, n3) or {}).get("wsrep_cluster_status") == "non-Primary",
               timeout=30, what="n3 non-Primary")  # fmt: skip
    detected = time.monotonic() - t0
    for node in (n1, n2):
        wait_until(lambda n=node: (wsrep_or_none(system, n) or {}).get("wsrep_cluster_size") == "2",
                   timeout=30, what=f"{node.name} in a Primary component of 2")  # fmt: skip
        assert system.wsrep(node)["wsrep_cluster_status"] == "Primary"
    conn = system.connect(n3, database="harness")
    with pytest.raises(pymysql.MySQLError) as refused, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS refused (id INT PRIMARY KEY)")
    assert refused.value.args[0] in (1047, 1180), refused.value  # WSREP has not yet prepared node
    conn.close()

    galera_nemesis.heal()  # waits until every node is Primary/Synced with size 3
    assert netfilter.current(system.runtime, n3.container) == []
    assert all(s.healthy for s in system.status())
    events = read_events(tmp_path / "events.jsonl")
    assert [(e.name, e.target) for e in events] == [("partition", "[n3] | [n1,n2]")]
    assert events[0].end is not None and events[0].end > events[0].start
    print(f"n3 non-Primary {detected:.1f}s after the partition")


def test_isolate_primary_by_role(galera, galera_nemesis) -> None:  # type: ignore[no-untyped-def]
    _run, system = galera
    primary = system.primary()
    event = galera_nemesis.partition("isolate", node="primary")
    assert event.detail["components"][0] == [primary.name]


def _round_trip_ms(endpoint: tuple[str, int], samples: int = 7) -> float:
    conn = pymysql.connect(
        host=endpoint[0], port=endpoint[1], user=USER, password=PASSWORD, connect_timeout=5
    )
    times = []
    with conn.cursor() as cur:
        for _ in range(samples):
            t = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchall()
            times.append((time.perf_counter() - t) * 1000)
    conn.close()
    return statistics.median(times)


def test_latency_toxic_raises_round_trip(galera, galera_nemesis) -> None:  # type: ignore[no-untyped-def]
    run, system = galera
    endpoint = system.endpoint(run.nodes[0])
    base = _round_trip_ms(endpoint)
    galera_nemesis.link("n1", {"kind": "latency", "latency_ms": 200, "direction": "downstream"})
    slowed = _round_trip_ms(endpoint)
    assert 160 <= slowed - base <= 240, (base, slowed)
    galera_nemesis.heal_links()
    assert _round_trip_ms(endpoint) - base < 50


def test_down_link_refuses_connections(galera, galera_nemesis) -> None:  # type: ignore[no-untyped-def]
    run, system = galera
    endpoint = system.endpoint(run.nodes[1])
    galera_nemesis.link("n2", {"kind": "down"})
    with pytest.raises(OSError):
        socket.create_connection(endpoint, timeout=2).recv(1)  # refused, or closed before the greeting
    galera_nemesis.heal_links()
    wait_until(lambda: _round_trip_ms(endpoint, 1) > 0, timeout=10, what="n2 link back")


def test_paused_node_stops_answering_and_resumes(galera, galera_nemesis) -> None:  # type: ignore[no-untyped-def]
    run, system = galera
    n2 = run.nodes[1]
    galera_nemesis.pause("n2")
    assert system.container_state(n2) == "paused"
    with pytest.raises(pymysql.MySQLError):
        system.wsrep(n2, timeout=1.0)
    galera_nemesis.resume("n2")
    wait_until(lambda: wsrep_or_none(system, n2), timeout=30, what="n2 answers again")


def test_killed_node_is_gone_and_comes_back(galera, galera_nemesis) -> None:  # type: ignore[no-untyped-def]
    run, system = galera
    n3 = run.nodes[2]
    galera_nemesis.kill("n3")
    assert system.container_state(n3) == "exited"
    wait_until(lambda: (wsrep_or_none(system, run.nodes[0]) or {}).get("wsrep_cluster_size") == "2",
               timeout=30, what="survivors form a Primary component of 2")  # fmt: skip
    galera_nemesis.start("n3")  # waits until every node is healthy again
    assert system.wsrep(n3)["wsrep_cluster_size"] == "3"


def test_crash_all_recovers_from_highest_seqno(galera, galera_nemesis) -> None:  # type: ignore[no-untyped-def]
    run, system = galera
    conn = system.connect(run.nodes[0], database="harness")
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS crash (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO crash (v) VALUES (1)")
    conn.close()
    galera_nemesis.crash_all(window_s=0.5)
    assert {system.container_state(n) for n in run.nodes} == {"exited"}
    galera_nemesis.start("all")  # recovery: --wsrep-recover everywhere, bootstrap the most advanced
    assert all(s.healthy for s in system.status())
    conn = system.connect(run.nodes[2], database="harness")
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM crash")
        assert cur.fetchone()[0] >= 1  # the acknowledged row survived
    conn.close()


def test_impossible_faults_refused_before_anything_changes(galera, galera_nemesis) -> None:  # type: ignore[no-untyped-def]
    run, system = galera
    with pytest.raises(InputError, match="majorities_ring needs at least 4 nodes"):
        galera_nemesis.partition("majorities_ring")
    with pytest.raises(InputError, match="unknown node or role 'n7'"):
        galera_nemesis.kill("n7")
    assert all(netfilter.current(system.runtime, n.container) == [] for n in run.nodes)
    assert {system.container_state(n) for n in run.nodes} == {"running"}
