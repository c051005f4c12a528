"""Faults on a real rabbitmq-3 (pause_minority): partitions show in cluster_status, kills rejoin.

What a fault did is checked from the system's side: RabbitMQ's own view (``cluster_status``,
``rabbitmq-diagnostics check_running``), its AMQP port, and packets sent across a cut from inside the
nodes, not only from the harness's account of the rules it applied.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.runtime import netfilter
from harness.runtime.wait import wait_until
from harness.systems.rabbitmq.cluster import node_name

ROOT = Path(__file__).resolve().parents[2]
DIST_PORT = 25672  # Erlang distribution: every node listens on it
PROBE_PORT = 47123  # free in every node: the UDP probes' port

# Run inside a node with python3 (the node image has it): argv = host port timeout.
TCP_CONNECT = """import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("connected")
except OSError as exc:
    print("failed", type(exc).__name__)
"""
UDP_RECEIVE = """import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
try:
    print("received", s.recvfrom(64)[1][0])
except OSError:
    print("nothing")
"""
UDP_SEND = """import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    s.sendto(b"probe", (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.05)
"""


def running_seen_by(system, node):  # type: ignore[no-untyped-def]
    try:
        return set(system.cluster_status(node, timeout=8)["running_nodes"])
    except Exception:
        return None


def app_running(system, node) -> bool:  # type: ignore[no-untyped-def]
    """RabbitMQ's own word: is the rabbit application running on ``node``?"""
    done = system.runtime.exec(node.container, ["rabbitmq-diagnostics", "-q", "check_running"], timeout=30)
    return done.exit_code == 0


def amqp_refused(node) -> bool:  # type: ignore[no-untyped-def]
    """The node's AMQP port refuses clients (its listener is closed; the node itself is reachable)."""
    try:
        socket.create_connection((node.ip, 5672), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def py_in(system, node, script: str, *args: object) -> str:  # type: ignore[no-untyped-def]
    done = system.runtime.exec(node.container, ["python3", "-c", script, *map(str, args)], timeout=15)
    assert done.exit_code == 0, done.output
    return done.output.strip()


def probe_cut(system, a, b, timeout: float = 1.5) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Across the a–b link, from inside the nodes, all at once: TCP connects both ways (to the
    distribution port) and UDP datagrams both ways (a listener on each end, the other end sending)."""
    jobs = {
        "tcp a->b": (a, TCP_CONNECT, b.ip, DIST_PORT, timeout),
        "tcp b->a": (b, TCP_CONNECT, a.ip, DIST_PORT, timeout),
        "udp a->b": (b, UDP_RECEIVE, PROBE_PORT, timeout),
        "udp b->a": (a, UDP_RECEIVE, PROBE_PORT, timeout),
        "send a": (a, UDP_SEND, b.ip, PROBE_PORT, timeout - 0.2),
        "send b": (b, UDP_SEND, a.ip, PROBE_PORT, timeout - 0.2),
    }
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {k: pool.submit(py_in, system, node, *rest) for k, (node, *rest) in jobs.items()}
        return {k: f.result() for k, f in futures.items() if not k.startswith("send")}


def test_isolated_node_is_paused_by_pause_minority_and_rejoins(rabbit, rabbit_nemesis) -> None:  # type: ignore[no-untyped-def]
    run, system = rabbit
    n1, n2, n3 = run.nodes
    ticktime = run.topology.settings.net_ticktime
    assert run.topology.settings.partition_handling == "pause_minority"
    assert not amqp_refused(n3)
    rabbit_nemesis.partition("isolate", node="n3")
    # Erlang declares a silent peer down within 0.75-1.25 net ticks; then pause_minority stops the
    # minority's rabbit app. Generous margin for a loaded host.
    deadline = 1.25 * ticktime + 30
    majority = {node_name(n1), node_name(n2)}
    wait_until(lambda: running_seen_by(system, n1) == majority, timeout=deadline, interval=1,
               what="n1's cluster_status to drop n3 from running_nodes")  # fmt: skip
    assert running_seen_by(system, n2) == majority
    # n3 paused itself: its AMQP listener is closed to clients and RabbitMQ says its app is not running.
    wait_until(lambda: amqp_refused(n3), timeout=deadline, interval=0.5,
               what="n3's AMQP port to refuse clients (pause_minority)")  # fmt: skip
    assert not app_running(system, n3), "n3's rabbit app still runs in a minority"
    assert not amqp_refused(n1) and not amqp_refused(n2), "the majority must keep serving"
    rabbit_nemesis.heal()  # waits until all three are running and see each other
    for node in run.nodes:
        assert running_seen_by(system, node) == {node_name(n) for n in run.nodes}
    assert app_running(system, n3) and not amqp_refused(n3), "n3 did not resume after the heal"
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


def test_cli_one_way_partition_cuts_one_direction(rabbit) -> None:  # type: ignore[no-untyped-def]
    run, system = rabbit
    n1, n2, _ = run.nodes

    def harness(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)  # fmt: skip

    whole = {"tcp a->b": "connected", "tcp b->a": "connected",
             "udp a->b": f"received {n1.ip}", "udp b->a": f"received {n2.ip}"}  # fmt: skip
    # Kept short: well under 0.75 net ticks, so that RabbitMQ never sees n1 and n2 lose each other.
    done = harness("fault", run.id, "partition", "--one-way", "n1:n2")
    try:
        assert done.returncode == 0, done.stderr
        assert "partition on n1-x->n2 via iptables" in done.stdout
        cut = probe_cut(system, n1, n2)
    finally:
        healed = harness("heal", run.id)
    assert healed.returncode == 0, healed.stderr
    # n1's packets do not reach n2; n2's packets reach n1.
    assert cut["udp a->b"] == "nothing", cut
    assert cut["udp b->a"] == f"received {n2.ip}", cut
    assert cut["tcp a->b"] == "failed TimeoutError", cut  # the SYN vanishes: no refusal comes back
    after = probe_cut(system, n1, n2)
    assert after == whole, after  # the same probes see the link whole again after the heal
    assert all(netfilter.current(system.runtime, n.container) == [] for n in run.nodes)
    bad = harness("fault", run.id, "kill", "n9")
    assert bad.returncode == 2 and "unknown node or role 'n9'" in bad.stderr
    # As the README documents: the cut drops every packet from n1 at n2, the SYN-ACKs of n2's own
    # connections to n1 included (no conntrack exemption), so n2 reaches n1 with datagrams, not with TCP.
    assert cut["tcp b->a"].startswith("failed"), cut


def test_wiped_nodes_return_empty_and_rejoin_the_quorum_queue(rabbit, rabbit_nemesis) -> None:  # type: ignore[no-untyped-def]
    """``wipe``: the node's disk is gone (a marker file in its data directory with it); it comes back as a
    fresh node the cluster was told to forget, joins, and the quorum queue grows back onto it, holding
    every message confirmed before. n1 (the seed, at once) and n3 (``return: false``, back at the heal)."""
    import json
    import uuid

    import pika

    run, system = rabbit
    n1, n2, n3 = run.nodes
    queue = f"wipe-{uuid.uuid4().hex[:8]}"
    user, password = system.client_credentials()
    params = pika.ConnectionParameters(host=n2.ip, credentials=pika.PlainCredentials(user, password),
                                       connection_attempts=3, retry_delay=0.5, socket_timeout=5)  # fmt: skip
    conn = pika.BlockingConnection(params)
    channel = conn.channel()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.confirm_delivery()
    for i in range(50):
        channel.basic_publish(
            "", queue, str(i).encode(), pika.BasicProperties(delivery_mode=2), mandatory=True
        )
    conn.close()

    def members() -> set[str]:
        done = system.runtime.exec(n2.container, ["rabbitmq-queues", "-q", "quorum_status", queue,
                                                  "--formatter", "json"], timeout=30)  # fmt: skip
        assert done.exit_code == 0, done.output
        return {row["Node Name"] for row in json.loads(done.output)}

    assert members() == {node_name(n) for n in run.nodes}
    for node in (n1, n3):
        marker = system.runtime.exec(node.container, ["touch", "/var/lib/rabbitmq/hh-marker"], timeout=10)
        assert marker.exit_code == 0
    ev = rabbit_nemesis.wipe("n1")  # back at once
    assert ev.end is not None
    ev3 = rabbit_nemesis.wipe("n3", returns=False)
    assert ev3.end is None and system.container_state(n3) == "missing"
    assert node_name(n3) in members()  # still a member (down) until an operator forgets it at its return
    rabbit_nemesis.heal()
    for node in (n1, n3):
        gone = system.runtime.exec(node.container, ["test", "-e", "/var/lib/rabbitmq/hh-marker"], timeout=10)
        assert gone.exit_code == 1, f"{node.name}'s data directory survived the wipe"
        assert running_seen_by(system, node) == {node_name(n) for n in run.nodes}
    assert members() == {node_name(n) for n in run.nodes}
    reseeds = [e for e in rabbit_nemesis.events.closed if e.name == "operator-reseed"]
    assert sorted(e.target for e in reseeds) == ["n1", "n3"]
    assert all(e.detail["by"] == "harness" for e in reseeds)
    conn = pika.BlockingConnection(params)
    channel = conn.channel()
    got = []
    while (message := channel.basic_get(queue, auto_ack=True))[0] is not None:
        got.append(int(message[2]))
    channel.queue_delete(queue)
    conn.close()
    assert sorted(got) == list(range(50))
