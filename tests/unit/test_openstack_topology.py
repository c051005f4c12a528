"""``system: openstack``: a database and a broker in one run — the topology file, node numbering, proxies,
partitions of one cluster, what validation refuses, and the composite system's delegation (no engine)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from harness.faults import partition as shapes
from harness.model.scenario import Scenario
from harness.plan import Source, check_pair
from harness.runtime.proxies import endpoint
from harness.runtime.run import Run
from harness.specs import load_topology
from harness.systems.registry import topology_adapter

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "topologies" / "openstack-galera-rabbitmq.yaml"


def composite(**over: Any) -> Any:
    doc = {"name": "os", "system": "openstack", "database": {"system": "galera", "nodes": 3},
           "broker": {"system": "rabbitmq", "nodes": 3}, **over}  # fmt: skip
    return topology_adapter().validate_python(doc)


def test_the_broker_s_nodes_follow_the_database_s_and_survive_a_round_trip() -> None:
    t = load_topology(TOPOLOGY)
    assert t.nodes == 6 and t.node_names == [f"n{i}" for i in range(1, 7)]
    assert [p.node_names for p in t.parts()] == [["n1", "n2", "n3"], ["n4", "n5", "n6"]]
    assert [p.name for p in t.parts()] == ["openstack-galera-rabbitmq-db", "openstack-galera-rabbitmq-mq"]
    again = topology_adapter().validate_json(t.model_dump_json())  # topology.json, the network's label
    assert again == t and again.parts()[1].node_names == ["n4", "n5", "n6"]
    mmm = composite(database={"system": "mmm", "nodes": 2}, broker={"system": "rabbitmq", "nodes": 1})
    assert mmm.broker.node_names == ["n3"]


def test_a_part_s_run_keeps_the_node_s_address_and_proxy_port() -> None:
    t = load_topology(TOPOLOGY)
    run = Run("r", t, 7, "img", "me", "s")
    broker = dataclasses.replace(run, topology=t.broker)
    (n4,) = [n for n in broker.nodes if n.name == "n4"]
    assert n4 == run.node("n4") and n4.ip == "10.213.7.14"
    assert endpoint(broker, n4, "amqp", {"amqp": 5672}) == ("10.213.7.2", 14672)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"nodes": 5}, "nodes is the database's plus the broker's (3 + 3)"),
        ({"storage": "lazyfs"}, "storage and clock are set per part"),
        (
            {"broker": {"system": "rabbitmq", "nodes": 3, "image": {"profile": "upstream", "name": "r:3"}}},
            "set image at the top level",
        ),
        ({"database": {"system": "rabbitmq", "nodes": 3}}, "galera"),  # not a database
        ({"broker": {"system": "rabbitmq", "nodes": 7}}, "less than or equal to 9"),
    ],
)
def test_bad_composites_are_refused(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        composite(**over)


def test_groups_of_one_cluster_leave_the_other_whole() -> None:
    nodes = [f"n{i}" for i in range(1, 7)]
    clusters = [nodes[:3], nodes[3:]]
    broker = shapes.plan("groups", nodes, groups=[["n4"], ["n5", "n6"]], clusters=clusters)
    assert set(broker.components) == {
        frozenset({"n4"}),
        frozenset({"n5", "n6"}),
        frozenset({"n1", "n2", "n3"}),
    }
    assert not any(a in clusters[0] and b in clusters[0] for a, b in broker.cuts)
    alone = shapes.plan("groups", nodes, groups=[["n4"], ["n5", "n6"]])  # one cluster: unnamed nodes alone
    assert frozenset({"n1"}) in alone.components
    both = shapes.plan("groups", nodes, groups=[["n1", "n4"], ["n2", "n3", "n5", "n6"]], clusters=clusters)
    assert ("n1", "n2") in both.cuts and ("n4", "n5") in both.cuts


def scenario(steps: list[dict[str, Any]], workload: str = "openstack-boot") -> Scenario:
    return Scenario.model_validate(
        {"name": "s", "systems": ["openstack"], "workload": {"openstack": {"type": workload}}, "steps": steps}
    )


def problems(s: Scenario, topology: Any = None) -> list[str]:
    return check_pair(s, topology or load_topology(TOPOLOGY), Source("s.yaml"))


def test_validation_knows_each_part_s_links_and_refuses_what_does_not_fit() -> None:
    ok = [{"link": {"target": "n4-amqp", "kind": "down"}}, {"heal": "all"},
          {"link": {"target": "primary-mysql", "kind": "down"}}, {"heal": "all"},
          {"partition": {"groups": [["n4"], ["n5", "n6"]]}}, {"heal": "all"}, {"kill": "writer"}]  # fmt: skip
    assert problems(scenario(ok)) == []
    (bad,) = problems(scenario([{"link": {"target": "n4-mysql", "kind": "down"}}]))
    assert "unknown link 'n4-mysql'" in bad and "n4-amqp" in bad
    (needs,) = problems(scenario([{"kill": "n1"}], workload="sql-set"))
    assert "sql-set cannot drive openstack" in needs
    galera = load_topology(ROOT / "topologies" / "galera-3.yaml")
    on_galera = Scenario.model_validate({"name": "s", "systems": ["galera"], "workload": {"galera": {
        "type": "openstack-boot"}}, "steps": [{"kill": "n1"}]})  # fmt: skip
    assert any("openstack-boot cannot drive galera" in p for p in problems(on_galera, galera))
    mmm = composite(database={"system": "mmm", "nodes": 2}, broker={"system": "rabbitmq", "nodes": 3})
    (meshless,) = problems(scenario([{"partition": {"groups": [["n1"], ["n2"]]}}]), mmm)
    assert "os-db (mmm), whose nodes do not talk to each other directly" in meshless
    assert problems(scenario([{"partition": {"groups": [["n3"], ["n4", "n5"]]}}]), mmm) == []


def test_the_composite_system_delegates_to_its_parts() -> None:
    from harness.model.eventlog import EventLog
    from harness.runtime.fake import FakeRuntime
    from harness.systems.openstack.cluster import OpenstackCluster

    t = load_topology(TOPOLOGY)
    system = OpenstackCluster(Run("r", t, 7, "img", "me", "s"), FakeRuntime())  # type: ignore[arg-type]
    assert [p.name for p in system.parts()] == ["galera", "rabbitmq"]
    assert system.part_of(system.run.node("n5")) is system.broker
    assert {link.name for link in system.client_links()} == {
        *(f"n{i}-mysql" for i in (1, 2, 3)), *(f"n{i}-amqp" for i in (4, 5, 6))}  # fmt: skip
    assert system.endpoint(system.run.node("n5")) == ("10.213.7.2", 15672)
    log = EventLog()
    system.events = log
    assert system.database.events is log and system.broker.events is log


def test_a_part_s_bad_setting_names_its_line_in_the_file(tmp_path: Path) -> None:
    from harness.model.loading import SpecError

    path = tmp_path / "os.yaml"
    path.write_text("name: os\nsystem: openstack\ndatabase:\n  system: galera\n  nodes: 3\n"
                    "  settings: {sst_method: foo}\nbroker:\n  system: rabbitmq\n  nodes: 3\n")  # fmt: skip
    with pytest.raises(SpecError) as err:
        load_topology(path)
    assert err.value.problems == [f"{path}:6: database.settings.sst_method: input should be 'rsync' or "
                                  "'mariabackup', got 'foo'"]  # fmt: skip
