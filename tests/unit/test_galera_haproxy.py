"""Galera behind HAProxy (one, or the keepalived pair), as OpenStack deploys it: the rendered HAProxy
config (sticky backups checked by clustercheck), clustercheck's rule, and where clients connect."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.runtime.fake import FakeRuntime
from harness.runtime.run import Run
from harness.specs import load_topology
from harness.systems.galera.cluster import GaleraCluster
from harness.systems.galera.clustercheck import verdict

ROOT = Path(__file__).resolve().parents[2]


def cluster(name: str) -> GaleraCluster:
    topology = load_topology(ROOT / "topologies" / f"{name}.yaml")
    run = Run(id="t-abc123", topology=topology, slot=7, image="img", owner="me", secret="s3cret")
    return GaleraCluster(run, FakeRuntime())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "ok"),
    [
        ({"wsrep_local_state": "4", "wsrep_cluster_status": "Primary"}, True),
        ({"wsrep_local_state": "2", "wsrep_cluster_status": "Primary"}, False),  # a donor
        ({"wsrep_local_state": "1", "wsrep_cluster_status": "Primary"}, False),  # a joiner
        ({"wsrep_local_state": "4", "wsrep_cluster_status": "non-Primary"}, False),
        ({}, False),  # the server does not answer
    ],
)
def test_clustercheck_calls_only_a_synced_primary_member_available(status: dict[str, str], ok: bool) -> None:
    assert verdict(status)[0] is ok


def test_writer_servers_are_sticky_backups_checked_by_clustercheck() -> None:
    cfg = cluster("galera-3-haproxy").haproxy_cfg()
    writer = cfg[cfg.index("backend writer") : cfg.index("frontend reader")]
    assert "stick on dst" in writer and "option httpchk" in writer
    for k in (1, 2, 3):
        line = next(x for x in writer.splitlines() if f"server n{k} " in x)
        assert f"10.213.7.2:{10000 + 1000 * k + 306}" in line  # through the node's client proxy
        assert f"check addr 10.213.7.{10 + k} port 9200" in line and line.endswith(" backup")
        assert "on-marked-down shutdown-sessions" in line
    reader = cfg[cfg.index("backend reader") :]
    assert "balance roundrobin" in reader and " backup" not in reader


def test_clients_reach_the_frontend_and_nodes_get_clustercheck(tmp_path: Path) -> None:
    single, pair = cluster("galera-3-haproxy"), cluster("galera-3-lb-pair")
    assert single.endpoint(single.run.nodes[1]) == ("10.213.7.3", 3306)
    assert pair.endpoint(pair.run.nodes[1]) == ("10.213.7.9", 3306)
    with pair.node_endpoints():
        assert pair.endpoint(pair.run.nodes[1]) == ("10.213.7.2", 12306)
    assert single.helper_targets() == {} and sorted(pair.helper_targets()) == ["lb1", "lb2"]
    assert pair.topology.helper_target_names == ["lb1", "lb2", "balancer"]
    pair.render(tmp_path)
    assert (tmp_path / "n1" / "clustercheck.py").exists()
    assert '"port": 9200' in (tmp_path / "n1" / "clustercheck.json").read_text()
    assert "clustercheck.py" in (tmp_path / "n1" / "start.sh").read_text()
    assert "stick on dst" in (tmp_path / "lb2" / "haproxy.cfg").read_text()


def test_galera_without_a_balancer_is_unchanged(tmp_path: Path) -> None:
    plain = cluster("galera-3")
    assert plain.endpoint(plain.run.nodes[1]) == ("10.213.7.2", 12306)
    assert plain.helper_targets() == {} and plain.helper_names() == ()
    plain.render(tmp_path)
    assert not (tmp_path / "n1" / "clustercheck.json").exists() and not (tmp_path / "haproxy").exists()
