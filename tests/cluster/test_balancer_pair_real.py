"""The floating-address balancer pair on real clusters: keepalived moves the virtual address when the
balancer holding it is cut off or killed, clients write through it again, a balancer back does not take
the address back (nopreempt), and both HAProxies route the writer alike after each fault."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.faults.nemesis import Nemesis
from harness.lifecycle import down, system_for, up
from harness.runner import run_scenarios
from harness.runtime.wait import wait_until
from harness.specs import load_scenario, load_topology

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pair(runtime) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    run = up(load_topology(ROOT / "topologies" / "mmm-2-lb-pair.yaml"), runtime)
    try:
        yield system_for(run, runtime)
    finally:
        down(run.id, runtime)


def holders(system: Any) -> list[str]:
    return [b.name for b in system.address_holders()]


def test_the_address_moves_off_a_cut_or_killed_balancer_and_stays_where_it_went(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    system = pair
    assert holders(system) == ["lb1"]  # the higher priority takes the address first
    system.balancers_route_alike()
    nemesis = Nemesis(system, events=tmp_path / "events.jsonl")
    try:
        # cut off both ways: lb2 hears no adverts and takes the address; lb1 still holds it too (a split)
        nemesis.partition("isolate", node="balancer")
        wait_until(lambda: holders(system) == ["lb1", "lb2"], timeout=20, interval=0.2,
                   what="lb2 taking the address while the cut-off lb1 keeps it")  # fmt: skip
        writer = system.primary().name
        wait_until(lambda: system.writer_serves() == writer, timeout=10, interval=0.2,
                   what="clients reaching the writer through lb2")  # fmt: skip
        nemesis.heal()  # waits until one balancer holds it and both route alike
        assert len(holders(system)) == 1

        before = holders(system)[0]
        survivor = "lb2" if before == "lb1" else "lb1"
        nemesis.kill("balancer")
        wait_until(lambda: holders(system) == [survivor], timeout=20, interval=0.2,
                   what=f"{survivor} taking the address from the killed {before}")  # fmt: skip
        wait_until(lambda: system.writer_serves() == writer, timeout=10, interval=0.2,
                   what=f"clients reaching the writer through {survivor}")  # fmt: skip
        nemesis.heal()  # starts the killed balancer again
        assert system.container_state(system.helper_targets()[before]) == "running"
        assert holders(system) == [survivor]  # nopreempt: it does not take the address back
        system.balancers_route_alike()  # the restarted HAProxy was brought in step by the monitor
    finally:
        nemesis.heal()


def test_balancer_faults_on_async_lose_nothing_and_clients_come_back(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    names = ["balancer-kill", "balancer-isolate"]
    outcomes = run_scenarios(load_topology(ROOT / "topologies" / "mysql-async-3-lb-pair.yaml"),
                             [load_scenario(ROOT / "scenarios" / f"{n}.yaml") for n in names],
                             runtime=runtime, reports=tmp_path)  # fmt: skip
    assert [o.reused for o in outcomes] == [False, True]
    for outcome in outcomes:
        result = json.loads((outcome.report_dir / "result.json").read_text())
        children = result["children"]
        assert children["set"]["figures"]["lost"] == 0, children["set"]["figures"]
        outage = children["availability"]["figures"]["longest_outage_s"]
        assert 0 < outage <= 10, outage  # the address moved: writes stopped, then came back
        assert children["guarantees"]["valid"] is True, children["guarantees"]
        events = [json.loads(line) for line in (outcome.report_dir / "events.jsonl").open()]
        faults = [e for e in events if e["name"] in ("kill", "partition")]
        named = {name for e in faults for name in re.findall(r"lb\d|n\d", str(e["target"]))}
        assert named and named <= {"lb1", "lb2"}, faults  # the balancer holding the address, no node


def test_galera_behind_the_pair_moves_clients_off_a_cut_or_killed_writer(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # OpenStack's layout: every client on the one node clustercheck calls synced (sticky); the node cut off
    # or killed, HAProxy moves them all to a backup; the balancer holding the address killed, the other one
    names = ["partition-isolate-primary", "kill-primary", "balancer-kill"]
    outcomes = run_scenarios(load_topology(ROOT / "topologies" / "galera-3-lb-pair.yaml"),
                             [load_scenario(ROOT / "scenarios" / f"{n}.yaml") for n in names],
                             runtime=runtime, reports=tmp_path)  # fmt: skip
    assert [o.reused for o in outcomes] == [False, True, True]
    for name, outcome in zip(names, outcomes, strict=True):
        result = json.loads((outcome.report_dir / "result.json").read_text())
        children = result["children"]
        assert result["valid"] is True, (name, {k: v["valid"] for k, v in children.items()})
        figures = children["availability"]["figures"]
        assert children["set"]["figures"]["lost"] == 0
        # every client goes through one writer: when it goes, all of them stop, then all come back
        assert 0 < figures["longest_outage_s"] <= 15, (name, figures["outages"])
        assert figures["availability_all_nodes"] > 0.5, figures
        events = [json.loads(line) for line in (outcome.report_dir / "events.jsonl").open()]
        fault = next(e for e in events if e["name"] in ("partition", "kill"))
        named = set(re.findall(r"lb\d|n\d", str(fault["target"])))
        assert named <= ({"lb1", "lb2"} if name == "balancer-kill" else {"n1", "n2", "n3"}), fault
