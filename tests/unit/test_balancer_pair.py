"""The floating-address balancer pair: keepalived's rendering, the pair's place in MMM and async topologies
(addresses, daemon config, fault targets and their validation), and the isolate rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.plan import Source, check_pair
from harness.runtime import netfilter
from harness.runtime.fake import FakeRuntime
from harness.runtime.run import Run
from harness.specs import load_scenario, load_topology
from harness.systems import balancer_pair as bp
from harness.systems.mmm.cluster import MmmCluster
from harness.systems.replication.cluster import AsyncCluster

ROOT = Path(__file__).resolve().parents[2]


def run_of(name: str) -> Run:
    topology = load_topology(ROOT / "topologies" / f"{name}.yaml")
    return Run(id="t-abc123", topology=topology, slot=7, image="img", owner="me", secret="s3cret")


def test_each_balancer_advertises_to_the_other_by_unicast_with_its_own_priority() -> None:
    pair = bp.balancers({"lb1": "10.0.0.3", "lb2": "10.0.0.5"})
    confs = {b.name: bp.keepalived_conf(b, "10.0.0.9", bp.BalancerSettings(pair=True), "r", 7) for b in pair}
    assert "priority 150" in confs["lb1"] and "priority 100" in confs["lb2"]
    assert "unicast_src_ip 10.0.0.3" in confs["lb1"] and "unicast_peer {\n        10.0.0.5" in confs["lb1"]
    assert "unicast_src_ip 10.0.0.5" in confs["lb2"] and "unicast_peer {\n        10.0.0.3" in confs["lb2"]
    for conf in confs.values():
        assert "state BACKUP" in conf and "nopreempt" in conf and "vrrp_version 3" in conf
        assert "10.0.0.9/24 dev eth0" in conf and "virtual_router_id 7" in conf and "advert_int 1\n" in conf


def test_preempt_and_a_subsecond_interval() -> None:
    (lb1, _) = bp.balancers({"lb1": "a", "lb2": "b"})
    conf = bp.keepalived_conf(
        lb1, "v", bp.BalancerSettings(pair=True, advert_interval=0.25, preempt=True), "r", 1
    )
    assert "nopreempt" not in conf and "advert_int 0.25\n" in conf


@pytest.mark.parametrize("interval", [0.0, 0.001, 41.0])
def test_an_interval_vrrp3_cannot_advertise_is_refused(interval: float) -> None:
    with pytest.raises(ValidationError, match=r"VRRP v3 advertises every 0\.01 to 40\.95 s"):
        bp.BalancerSettings(pair=True, advert_interval=interval)


def test_holder_is_read_from_the_addresses_of_eth0() -> None:
    out = (
        "35: eth0    inet 10.213.1.5/24 brd 10.213.1.255 scope global eth0\\       valid_lft forever\n"
        "35: eth0    inet 10.213.1.9/24 scope global secondary eth0\\       valid_lft forever\n"
    )
    assert bp.holds(out, "10.213.1.9")
    assert not bp.holds(out.splitlines()[0], "10.213.1.9")
    assert not bp.holds(out, "10.213.1.90")


@pytest.mark.parametrize(
    ("name", "cls"), [("mmm-2-lb-pair", MmmCluster), ("mysql-async-3-lb-pair", AsyncCluster)]
)
def test_clients_and_daemon_reach_the_pair(name: str, cls: type, tmp_path: Path) -> None:
    system = cls(run_of(name), FakeRuntime())
    assert system.endpoint(system.run.nodes[0]) == ("10.213.7.9", 3306)  # the virtual address
    assert system.endpoint(system.run.nodes[0], "reader") == ("10.213.7.9", 3307)
    assert system.heartbeat_config()["host"] == "10.213.7.9"
    config = system.monitor_config() if cls is MmmCluster else system.manager_config()
    assert config["haproxy"] == [{"host": "10.213.7.3", "port": 9999}, {"host": "10.213.7.5", "port": 9999}]
    assert sorted(system.helper_targets()) == ["lb1", "lb2"]
    assert "lb1" in system.helper_names() and "haproxy" not in system.helper_names()
    system.render(tmp_path)
    for lb in ("lb1", "lb2"):
        assert (tmp_path / lb / "haproxy.cfg").read_text() == (tmp_path / "lb1" / "haproxy.cfg").read_text()
        assert "10.213.7.9/24" in (tmp_path / lb / "keepalived.conf").read_text()
        assert "exec keepalived" in (tmp_path / lb / "start.sh").read_text()
    assert not (tmp_path / "haproxy").exists()


def test_async_replicas_reach_the_source_through_the_pair() -> None:
    system = AsyncCluster(run_of("mysql-async-3-lb-pair"), FakeRuntime())
    assert {link.upstream for link in system.repl_links()} == {"10.213.7.9:3308"}


def test_a_single_haproxy_is_unchanged() -> None:
    system = MmmCluster(run_of("mmm-2"), FakeRuntime())
    assert system.endpoint(system.run.nodes[0]) == ("10.213.7.3", 3306)
    assert system.monitor_config()["haproxy"] == {"host": "10.213.7.3", "port": 9999}
    assert system.helper_targets() == {} and system.topology.helper_target_names == []


@pytest.mark.parametrize("scenario", ["balancer-kill", "balancer-pause", "balancer-isolate"])
def test_balancer_scenarios_fit_pair_topologies_only(scenario: str) -> None:
    loaded = load_scenario(ROOT / "scenarios" / f"{scenario}.yaml")
    source = Source.of(loaded, None)
    for name in ("mmm-2-lb-pair", "mysql-async-3-lb-pair"):
        assert check_pair(loaded, load_topology(ROOT / "topologies" / f"{name}.yaml"), source) == []
    problems = check_pair(loaded, load_topology(ROOT / "topologies" / "mmm-2.yaml"), source)
    assert problems and "is a balancer pair's, which topology mmm-2 does not have" in problems[0]


def test_isolating_a_helper_drops_the_run_network_both_ways_but_loopback() -> None:
    rules = netfilter.ruleset([], isolate="10.213.7.0/24")
    assert '-A INPUT ! -i lo -s 10.213.7.0/24 -m comment --comment "ha-harness" -j DROP' in rules
    assert '-A OUTPUT ! -o lo -d 10.213.7.0/24 -m comment --comment "ha-harness" -j DROP' in rules
    assert "OUTPUT ! -o lo" not in netfilter.ruleset(["10.213.7.11"])
