"""Galera variants as rendered and validated: garbd as the last node, pc.weight, wsrep_sync_wait."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.model.scenario import Scenario
from harness.plan import Source, check_pair
from harness.runtime.fake import FakeRuntime
from harness.runtime.run import Run
from harness.specs import load_topology
from harness.systems.galera.cluster import GaleraCluster
from harness.systems.galera.settings import GaleraTopology

ROOT = Path(__file__).resolve().parents[2]


def cluster(name: str) -> GaleraCluster:
    topology = load_topology(ROOT / "topologies" / f"{name}.yaml")
    run = Run(id="t-abc123", topology=topology, slot=7, image="img", owner="me", secret="s3cret")
    return GaleraCluster(run, FakeRuntime())  # type: ignore[arg-type]


def test_garbd_is_the_last_node_and_no_data_node(tmp_path: Path) -> None:
    system = cluster("galera-3-garbd")
    assert system.arbitrator is not None and system.arbitrator.name == "n3"
    assert [n.name for n in system.data_nodes] == ["n1", "n2"]
    system.render(tmp_path)
    assert not (tmp_path / "n3" / "galera.cnf").exists() and (tmp_path / "n1" / "galera.cnf").exists()
    env = (tmp_path / "n3" / "garbd.env").read_text()
    assert "ADDRESS='gcomm://10.213.7.11,10.213.7.12,10.213.7.13'" in env
    assert f"GROUP='{system.cluster_name}'" in env and "gmcast.listen_addr=tcp://0.0.0.0:4567" in env
    assert system.container_spec(system.run.node("n3")).command == ["sh", "/etc/harness/garbd.sh"]
    # every data node lists garbd among its peers: it is a member of the group
    assert "gcomm://10.213.7.11,10.213.7.12,10.213.7.13\n" in (tmp_path / "n1" / "galera.cnf").read_text()


def test_a_plain_topology_has_every_node_as_data_node() -> None:
    system = cluster("galera-3")
    assert system.arbitrator is None and len(system.data_nodes) == 3
    cnf = system.galera_cnf(system.run.nodes[0])
    assert "pc.weight" not in cnf and "wsrep_sync_wait=0\n" in cnf


def test_weights_and_sync_wait_are_rendered_per_node() -> None:
    system = cluster("galera-2-weighted")
    n1, n2 = system.run.nodes
    assert "pc.weight=2" in system.galera_cnf(n1) and "pc.weight" not in system.galera_cnf(n2)
    doc = system.topology.model_dump()
    doc["settings"]["sync_wait"] = 1
    strict = GaleraCluster(
        Run(id="t-x", topology=GaleraTopology.model_validate(doc), slot=7, image="i", owner="o", secret="s"),
        FakeRuntime(),  # type: ignore[arg-type]
    )
    assert "wsrep_sync_wait=1\n" in strict.galera_cnf(n1)


@pytest.mark.parametrize(
    ("settings", "nodes", "message"),
    [
        ({"arbitrator": True}, 2, "needs nodes >= 3"),
        ({"weights": {"n4": 2}}, 3, "settings.weights: unknown node n4"),
        ({"weights": {"n1": 300}}, 3, "pc.weight must be 0-255"),
        ({"sync_wait": 16}, 3, "less than or equal to 15"),
    ],
)
def test_variants_that_do_not_fit_are_refused(settings: dict[str, object], nodes: int, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GaleraTopology.model_validate({"name": "g", "system": "galera", "nodes": nodes, "settings": settings})


def test_a_workload_may_not_target_the_arbitrator() -> None:
    topology = load_topology(ROOT / "topologies" / "galera-3-garbd.yaml")
    scenario = Scenario.model_validate({
        "name": "s", "systems": ["galera"], "steps": [{"kill": "n3"}, {"wait": "1s"}],
        "workload": {"galera": {"type": "sql-set", "nodes": ["n1", "n3"]}},
    })  # fmt: skip
    problems = check_pair(scenario, topology, Source.of(scenario, None))
    assert len(problems) == 1 and "n3 is the arbitrator (garbd): it serves no clients" in problems[0]
