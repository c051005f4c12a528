"""galera-3 comes up for real and replicates a write to every node."""

from __future__ import annotations

import uuid

from harness.runtime.wait import wait_until
from harness.systems.galera.cluster import GaleraCluster


def test_every_node_primary_synced(galera) -> None:  # type: ignore[no-untyped-def]
    run, system = galera
    statuses = system.status()
    assert [s.node for s in statuses] == ["n1", "n2", "n3"]
    assert all(s.healthy for s in statuses), statuses
    for node in run.nodes:
        wsrep = system.wsrep(node)
        assert wsrep["wsrep_cluster_status"] == "Primary"
        assert wsrep["wsrep_cluster_size"] == "3"
        assert wsrep["wsrep_ready"] == "ON"


def test_insert_replicates_to_every_node(galera) -> None:  # type: ignore[no-untyped-def]
    run, system = galera
    assert isinstance(system, GaleraCluster)
    marker = uuid.uuid4().hex
    conn = system.connect(run.nodes[0], database="harness")
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS smoke (id VARCHAR(64) PRIMARY KEY)")
        cur.execute("INSERT INTO smoke VALUES (%s)", (marker,))
    conn.close()

    def seen_on(node) -> bool:  # type: ignore[no-untyped-def]
        c = system.connect(node, database="harness")
        try:
            with c.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM smoke WHERE id = %s", (marker,))
                return cur.fetchone()[0] == 1
        finally:
            c.close()

    for node in run.nodes:
        wait_until(lambda n=node: seen_on(n), timeout=10, what=f"row replicated to {node.name}")


def test_containers_and_network_labelled(galera, runtime) -> None:  # type: ignore[no-untyped-def]
    run, _ = galera
    containers = runtime.containers(run.id)
    assert sorted(c.name for c in containers) == [
        *(f"hh-{run.id}-n{i}" for i in (1, 2, 3)),
        f"hh-{run.id}-toxiproxy",
    ]
    assert {c.labels["io.ha-harness.kind"] for c in containers} == {"node", "toxiproxy"}
    nets = runtime.networks(run.id)
    assert len(nets) == 1
    attrs = runtime.client.networks.get(run.network).attrs  # the engine's own view of it
    assert attrs["Internal"] is True
    assert attrs["IPAM"]["Config"][0]["Subnet"] == run.subnet
