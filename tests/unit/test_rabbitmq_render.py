"""rabbitmq rendering and settings: peer discovery lists (the seed at bring-up, a node joining a running
cluster), the mirroring policy and queue settings, and what they refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.model.scenario import Scenario
from harness.plan import Source, check_pair
from harness.runtime.fake import FakeRuntime
from harness.runtime.run import Run
from harness.specs import load_topology
from harness.systems.rabbitmq.cluster import RabbitCluster
from harness.systems.rabbitmq.settings import RabbitTopology

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


def test_mirroring_policies_as_set_policy_takes_them() -> None:
    from harness.systems.rabbitmq.settings import Mirroring

    assert Mirroring().policy() == {"ha-mode": "all", "ha-sync-mode": "automatic",
                                    "ha-promote-on-shutdown": "when-synced", "ha-promote-on-failure": "always"}  # fmt: skip
    two = load_topology(ROOT / "topologies" / "rabbitmq-3-exactly2.yaml").settings.mirroring  # type: ignore[attr-defined]
    assert two.policy() == {"ha-mode": "exactly", "ha-params": 2, "ha-sync-mode": "manual",
                            "ha-promote-on-shutdown": "when-synced", "ha-promote-on-failure": "when-synced"}  # fmt: skip
    named = Mirroring(mode="nodes", nodes=["n1", "n3"]).policy()
    assert named["ha-params"] == ["rabbit@n1", "rabbit@n3"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mirroring": {"mode": "exactly"}}, "mode exactly needs it"),
        (
            {"queue_type": "classic-mirrored", "mirroring": {"mode": "all", "count": 2}},
            "count is for mode exactly",
        ),
        (
            {"mirroring": {"mode": "exactly", "count": 2}},
            "settings.mirroring is for queue_type classic-mirrored",
        ),
        ({"queue_type": "classic-mirrored", "quorum_size": 2}, "quorum_size is for queue_type quorum"),
        ({"quorum_size": 4}, "settings.quorum_size: 4 is more than the 3 nodes"),
        (
            {"queue_type": "classic-mirrored", "mirroring": {"mode": "nodes", "nodes": ["n7"]}},
            "unknown node n7",
        ),
    ],
)
def test_queue_settings_that_do_not_fit_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RabbitTopology.model_validate({"name": "r", "system": "rabbitmq", "nodes": 3, "settings": settings})


def test_a_transient_quorum_queue_is_refused_before_anything_starts() -> None:
    scenario = Scenario.model_validate({
        "name": "s", "systems": ["rabbitmq"], "steps": [{"wait": "1s"}],
        "workload": {"rabbitmq": {"type": "amqp-queue", "durable": False}},
    })  # fmt: skip
    quorum = load_topology(ROOT / "topologies" / "rabbitmq-3.yaml")
    (problem,) = check_pair(scenario, quorum, Source.of(scenario, None))
    assert "a quorum queue is always durable" in problem
    assert check_pair(scenario, load_topology(ROOT / "topologies" / "rabbitmq-3-mirrored.yaml"),
                      Source.of(scenario, None)) == []  # fmt: skip
