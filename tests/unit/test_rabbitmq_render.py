"""rabbitmq rendering: peer discovery lists, the seed at bring-up and a node joining a running cluster."""

from __future__ import annotations

from pathlib import Path

from harness.runtime.fake import FakeRuntime
from harness.runtime.run import Run
from harness.specs import load_topology
from harness.systems.rabbitmq.cluster import RabbitCluster

ROOT = Path(__file__).resolve().parents[2]


def cluster() -> RabbitCluster:
    topology = load_topology(ROOT / "topologies" / "rabbitmq-3.yaml")
    run = Run(id="t-abc123", topology=topology, slot=7, image="img", owner="me", secret="s3cret")
    return RabbitCluster(run, FakeRuntime())  # type: ignore[arg-type]


def peers(conf: str) -> list[str]:
    return [line.split(" = ")[1] for line in conf.splitlines() if "classic_config.nodes." in line]


def test_the_seed_starts_alone_and_the_others_discover_it() -> None:
    system = cluster()
    n1, n2, _ = system.run.nodes
    assert peers(system.rabbitmq_conf(n1)) == ["rabbit@n1"]
    assert "discovery_retry_limit = 1\n" in system.rabbitmq_conf(n1)
    assert peers(system.rabbitmq_conf(n2)) == ["rabbit@n1", "rabbit@n2", "rabbit@n3"]
    assert "discovery_retry_limit = 120\n" in system.rabbitmq_conf(n2)


def test_a_seed_back_empty_after_a_wipe_looks_for_the_running_cluster() -> None:
    system = cluster()
    conf = system.rabbitmq_conf(system.run.nodes[0], joining=True)
    assert peers(conf) == ["rabbit@n1", "rabbit@n2", "rabbit@n3"]
    assert "discovery_retry_limit = 120\n" in conf
