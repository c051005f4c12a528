"""rabbitmq-3 comes up for real, clustered by peer discovery; a message crosses nodes."""

from __future__ import annotations

import uuid

import pika

from harness.runtime.wait import wait_until
from harness.systems.rabbitmq.cluster import RabbitCluster


def _channel(system: RabbitCluster, ip: str):  # type: ignore[no-untyped-def]
    user, password = system.client_credentials()  # the run's own client account
    params = pika.ConnectionParameters(host=ip, credentials=pika.PlainCredentials(user, password),
                                       connection_attempts=3, retry_delay=0.5, socket_timeout=5)  # fmt: skip
    conn = pika.BlockingConnection(params)
    return conn, conn.channel()


def test_every_node_sees_every_node(rabbit) -> None:  # type: ignore[no-untyped-def]
    run, system = rabbit
    assert isinstance(system, RabbitCluster)
    want = {f"rabbit@{n.name}" for n in run.nodes}
    for node in run.nodes:
        status = system.cluster_status(node)
        assert set(status["running_nodes"]) == want
        assert not status.get("partitions")
    assert all(s.healthy for s in system.status())


def test_publish_on_one_node_consume_on_another(rabbit) -> None:  # type: ignore[no-untyped-def]
    run, system = rabbit
    queue = f"smoke-{uuid.uuid4().hex[:8]}"
    body = uuid.uuid4().bytes
    conn1, ch1 = _channel(system, run.nodes[0].ip)
    ch1.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    ch1.confirm_delivery()
    ch1.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2), mandatory=True)
    conn1.close()

    conn2, ch2 = _channel(system, run.nodes[1].ip)

    def get() -> bytes | None:
        method, _, got = ch2.basic_get(queue, auto_ack=True)
        return got if method else None

    assert wait_until(get, timeout=10, what="message on n2") == body
    ch2.queue_delete(queue)
    conn2.close()
