"""Each fault really does what it says on a real galera-3, and its heal undoes it."""

from __future__ import annotations

import socket
import statistics
import time

import pymysql
import pytest

from harness.errors import InputError
from harness.model.history import read_events
from harness.runtime import netfilter
from harness.runtime.wait import wait_until


def wsrep_or_none(system, node):  # type: ignore[no-untyped-def]
    try:
        return system.wsrep(node, timeout=1.0)
    except Exception:
        return None


def wsrep_when(system, node, ok):  # type: ignore[no-untyped-def]
    """The node's wsrep status once ``ok(status)`` holds, else None (for ``wait_until``)."""
    status = wsrep_or_none(system, node)
    return status if status is not None and ok(status) else None


def provider_options(system, node) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """``wsrep_provider_options`` as the server reports it (``key = value; …``)."""
    conn = system.connect(node)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL VARIABLES LIKE 'wsrep_provider_options'")
            text = cur.fetchone()[1]
    finally:
        conn.close()
    pairs = (item.partition("=") for item in text.split(";"))
    return {k.strip(): v.strip() for k, _, v in pairs if k.strip()}


def detection_deadline(settings) -> float:  # type: ignore[no-untyped-def]
    """The longest a Galera node may take to leave a component it can no longer hear, by its EVS timers:
    peers are declared inactive after ``inactive_timeout`` at the latest (checked every
    ``inactive_check_period``), and the new view must be installed within ``install_timeout``; plus a
    generous allowance for polling and a loaded 2-core host."""
    return settings.inactive_timeout + settings.inactive_check_period + settings.install_timeout + 10.0


def test_isolated_node_goes_non_primary_and_rejoins(galera, galera_nemesis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run, system = galera
    n1, n2, n3 = run.nodes
    settings = run.topology.settings
    # The deadline below follows from the topology's EVS timers only if the servers really run with them.
    options = provider_options(system, n3)
    assert options["evs.suspect_timeout"] == f"PT{settings.suspect_timeout:g}S", options
    assert options["evs.inactive_timeout"] == f"PT{settings.inactive_timeout:g}S", options
    deadline = detection_deadline(settings)

    t0 = time.monotonic()
    event = galera_nemesis.partition("isolate", node="n3")
    assert event.mechanism.startswith("iptables")
    status = wait_until(lambda: wsrep_when(system, n3, lambda s: s["wsrep_cluster_status"] != "Primary"),
                        timeout=deadline, interval=0.1, max_interval=0.2,
                        what=f"n3 to leave the Primary component within {deadline:g}s (EVS timers)")  # fmt: skip
    detected = time.monotonic() - t0
    assert status["wsrep_cluster_status"] == "non-Primary", status
    assert status["wsrep_cluster_size"] == "1", status  # alone: it hears no peer at all
    # n3 cannot suspect its peers before suspect_timeout of silence (their last keepalive may predate the cut)
    assert detected >= settings.suspect_timeout - settings.keepalive_period, detected
    for node in (n1, n2):
        majority = wait_until(lambda n=node: wsrep_when(system, n, lambda s: s["wsrep_cluster_size"] == "2"),
                              timeout=max(deadline - (time.monotonic() - t0), 1.0),
                              what=f"{node.name} in a component of 2 within the same deadline")  # fmt: skip
        assert majority["wsrep_cluster_status"] == "Primary", majority
    conn = system.connect(n3, database="harness")
    with pytest.raises(pymysql.MySQLError) as refused, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS refused (id INT PRIMARY KEY)")
    assert refused.value.args[0] in (1047, 1180), refused.value  # WSREP has not yet prepared node
    conn.close()

    galera_nemesis.heal()  # waits until every node is Primary/Synced with size 3
    assert netfilter.current(system.runtime, n3.container) == []
    for node in run.nodes:
        healed = system.wsrep(node)
        assert (healed["wsrep_cluster_status"], healed["wsrep_cluster_size"]) == ("Primary", "3"), healed
    events = read_events(tmp_path / "events.jsonl")
    assert [(e.name, e.target) for e in events] == [("partition", "[n3] | [n1,n2]")]
    assert events[0].end is not None and events[0].end > events[0].start
    print(f"n3 non-Primary {detected:.1f}s after the partition (deadline {deadline:g}s)")


def test_isolate_primary_by_role(galera, galera_nemesis) -> None:  # type: ignore[no-untyped-def]
    """The role resolves against the live cluster (the first node wsrep reports Primary and Synced). Only
    planned here: applying a role-targeted partition for real is the galera partition-isolate-primary
    scenario's (test_scenarios), which also checks its consequences."""
    run, system = galera
    primary = system.primary()
    statuses = {n.name: system.wsrep(n) for n in run.nodes}
    synced = [name for name, s in statuses.items()
              if (s["wsrep_cluster_status"], s["wsrep_local_state_comment"]) == ("Primary", "Synced")]  # fmt: skip
    assert primary.name == synced[0], (primary, synced)
    plan = galera_nemesis.plan_partition("isolate", node="primary")
    assert plan.components[0] == frozenset({primary.name})
    assert plan.drops_at(primary.name) == {n.name for n in run.nodes} - {primary.name}
    assert galera_nemesis.open == {}, "planning changes nothing"


def _round_trip_ms(system, endpoint: tuple[str, int], samples: int = 7) -> float:  # type: ignore[no-untyped-def]
    user, password = system.client_credentials()  # the run's own client account
    conn = pymysql.connect(
        host=endpoint[0], port=endpoint[1], user=user, password=password, connect_timeout=5
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
    delay = 200
    base = _round_trip_ms(system, endpoint)  # measured here, on this host's load, right before the fault
    galera_nemesis.link("n1", {"kind": "latency", "latency_ms": delay, "direction": "downstream"})
    added = _round_trip_ms(system, endpoint) - base
    # every reply is held back by the toxic: at least most of the delay, and nowhere near several delays
    assert 0.8 * delay <= added <= 2.5 * delay, (base, added)
    galera_nemesis.heal_links()
    assert _round_trip_ms(system, endpoint) - base < 0.5 * delay


def test_down_link_refuses_connections(galera, galera_nemesis) -> None:  # type: ignore[no-untyped-def]
    run, system = galera
    endpoint = system.endpoint(run.nodes[1])
    galera_nemesis.link("n2", {"kind": "down"})
    with pytest.raises(OSError):
        socket.create_connection(endpoint, timeout=2).recv(1)  # refused, or closed before the greeting
    galera_nemesis.heal_links()
    wait_until(lambda: _round_trip_ms(system, endpoint, 1) > 0, timeout=10, what="n2 link back")


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


def _rows(system, node, *, dirty: bool = False) -> set[int]:  # type: ignore[no-untyped-def]
    """The ids in ``crash`` on ``node`` (``dirty``: also from a non-Primary node, which refuses plain reads)."""
    conn = system.connect(node, database="harness")
    try:
        with conn.cursor() as cur:
            if dirty:
                cur.execute("SET SESSION wsrep_dirty_reads = ON")
            cur.execute("SELECT id FROM crash")
            return {int(r[0]) for r in cur.fetchall()}
    finally:
        conn.close()


def _insert(system, node, ids: range) -> None:  # type: ignore[no-untyped-def]
    """One autocommit INSERT per id; each returns only once the cluster acknowledged (committed) it."""
    conn = system.connect(node, database="harness", timeout=5.0)
    try:
        with conn.cursor() as cur:
            for i in ids:
                cur.execute("INSERT INTO crash (id) VALUES (%s)", (i,))
    finally:
        conn.close()


def test_crash_all_recovers_from_highest_seqno(galera, galera_nemesis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Seqnos diverge before the crash: n3 is weighted (pc.weight=3 of 5) so that, cut off, it alone stays
    Primary and commits rows n1 and n2 never see. After crash-all only bootstrapping n3 keeps those rows;
    the tie-break (n1 first) would not."""
    run, system = galera
    n1, n2, n3 = run.nodes
    conn = system.connect(n1, database="harness")
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS crash")
        cur.execute("CREATE TABLE crash (id INT PRIMARY KEY)")
    conn.close()
    _insert(system, n1, range(1, 11))  # acknowledged by all three
    conn = system.connect(n3)
    with conn.cursor() as cur:
        cur.execute("SET GLOBAL wsrep_provider_options = 'pc.weight=3'")  # runtime only: gone after restart
    conn.close()
    assert provider_options(system, n3)["pc.weight"] == "3"

    galera_nemesis.partition("isolate", node="n3")
    deadline = detection_deadline(run.topology.settings)
    # n3 (weight 3 > 5/2) stays Primary alone, n1 and n2 (weight 2) lose quorum
    wait_until(lambda: (wsrep_or_none(system, n3) or {}).get("wsrep_cluster_size") == "1",
               timeout=deadline, what="n3 alone in its component")  # fmt: skip
    assert system.wsrep(n3)["wsrep_cluster_status"] == "Primary"
    for node in (n1, n2):
        wait_until(lambda n=node: (wsrep_or_none(system, n) or {}).get("wsrep_cluster_status") == "non-Primary",
                   timeout=deadline, what=f"{node.name} non-Primary")  # fmt: skip
    _insert(system, n3, range(11, 21))  # acknowledged by n3 only
    acknowledged = set(range(1, 21))
    assert _rows(system, n3) == acknowledged
    assert _rows(system, n1, dirty=True) == set(range(1, 11))  # n1 really misses them

    galera_nemesis.crash_all(window_s=0.5)
    assert {system.container_state(n) for n in run.nodes} == {"exited"}
    galera_nemesis.start("all")  # recovery: --wsrep-recover everywhere, bootstrap the most advanced
    assert all(s.healthy for s in system.status())

    (recovery,) = [e for e in galera_nemesis.events.closed if e.name == "full-cluster-recovery"]
    seqnos = recovery.detail["seqnos"]
    assert set(seqnos) == {"n1", "n2", "n3"}, seqnos
    assert all(isinstance(v, int) and v > 0 for v in seqnos.values()), f"unparsed/empty position: {seqnos}"
    # the divergence really happened: n3 is ahead by (at least) the 10 writesets only it committed
    assert seqnos["n3"] - max(seqnos["n1"], seqnos["n2"]) >= 10, seqnos
    assert recovery.detail["bootstrapped"] == "n3" and recovery.target == "n3", recovery
    assert recovery.detail["by"] == "harness" and recovery.end is not None and recovery.end >= recovery.start
    stored = {e.name: e for e in read_events(tmp_path / "events.jsonl")}
    assert stored["full-cluster-recovery"].detail["bootstrapped"] == "n3"  # in the run's events.jsonl too
    for node in run.nodes:  # no acknowledged row lost, on any node
        wait_until(lambda n=node: _rows(system, n) == acknowledged, timeout=10,
                   what=f"every acknowledged row on {node.name}")  # fmt: skip
    assert provider_options(system, n3)["pc.weight"] == "1"  # the weight did not outlive the crash


def test_impossible_faults_refused_before_anything_changes(galera, galera_nemesis) -> None:  # type: ignore[no-untyped-def]
    run, system = galera
    with pytest.raises(InputError, match="majorities_ring needs at least 4 nodes"):
        galera_nemesis.partition("majorities_ring")
    with pytest.raises(InputError, match="unknown node or role 'n7'"):
        galera_nemesis.kill("n7")
    assert all(netfilter.current(system.runtime, n.container) == [] for n in run.nodes)
    assert {system.container_state(n) for n in run.nodes} == {"running"}
