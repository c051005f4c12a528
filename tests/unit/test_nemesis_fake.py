"""The nemesis's own logic on the fake runtime: targets, claims, capability checks, events, idempotent heal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.faults.nemesis import FaultConflict, Nemesis
from harness.lifecycle import down, system_for, up
from harness.model.history import read_events
from harness.runtime.fake import FakeRuntime
from harness.systems import registry
from harness.systems.capabilities import Capability
from tests.support import fake_system
from tests.support.fake_system import fake_topology

pytestmark = pytest.mark.usefixtures("fake_system")


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
def nemesis(runtime: FakeRuntime, tmp_path: Path) -> Iterator[Nemesis]:
    run = up(fake_topology(), runtime)
    yield Nemesis(system_for(run, runtime), events=tmp_path / "events.jsonl")
    down(run.id, runtime)


def status(runtime: FakeRuntime, node: str) -> str:
    (name,) = [n for n in runtime.containers_by_name if n.endswith(f"-{node}")]
    return runtime.state(name).status


def test_targets_resolve_to_nodes(nemesis: Nemesis) -> None:
    assert [n.name for n in nemesis.resolve("n2")] == ["n2"]
    assert [n.name for n in nemesis.resolve("primary")] == ["n1"]
    assert [n.name for n in nemesis.resolve("all")] == ["n1", "n2", "n3"]
    assert len(nemesis.resolve("minority")) == 1
    with pytest.raises(InputError, match="unknown node or role 'n7'"):
        nemesis.resolve("n7")


def test_the_same_target_and_mechanism_twice_is_refused_before_any_change(
    nemesis: Nemesis, runtime: FakeRuntime
) -> None:
    nemesis.kill("n1")
    kills = len(runtime.verbs("kill"))
    with pytest.raises(FaultConflict, match="n1 is already under process"):
        nemesis.kill("n1")
    with pytest.raises(FaultConflict):
        nemesis.apply({"crash_all": {"window": "0s"}})  # n1 is among every node
    assert len(runtime.verbs("kill")) == kills
    nemesis.pause("n2")  # another target: fine
    nemesis.start("n1", wait=False)
    nemesis.kill("n1")  # started again, so it may be killed again
    nemesis.partition("isolate", node="n3")
    with pytest.raises(FaultConflict, match="iptables"):
        nemesis.partition("halves")  # a second partition while the first is in effect
    nemesis.heal_partition()
    nemesis.partition("halves")
    with pytest.raises(InputError, match=r"partition\.shape: input should be 'halves'"):
        nemesis.partition("zigzag")


def test_a_fault_the_system_cannot_take_is_refused(nemesis: Nemesis, monkeypatch: pytest.MonkeyPatch) -> None:
    info = registry.SYSTEMS["fake"]
    without_mesh = type(info)(**{**info.__dict__, "capabilities": info.capabilities - {Capability.PEER_MESH}})
    monkeypatch.setattr(nemesis, "info", without_mesh)
    with pytest.raises(
        InputError, match="partition: needs a peer mesh to partition, which fake does not have"
    ):
        nemesis.partition("isolate", node="n1")


def test_heal_restores_everything_and_is_idempotent(
    nemesis: Nemesis, runtime: FakeRuntime, tmp_path: Path
) -> None:
    nemesis.kill("n1")
    nemesis.pause("n2")
    nemesis.partition("isolate", node="n3")
    assert (status(runtime, "n1"), status(runtime, "n2")) == ("exited", "paused")
    ended = nemesis.heal(wait=True)
    assert sorted(e.name for e in ended) == ["kill", "partition", "pause"]
    assert all(status(runtime, n) == "running" for n in ("n1", "n2", "n3"))
    assert nemesis.open == {}
    assert nemesis.heal(wait=True) == []  # nothing left to heal
    events = read_events(tmp_path / "events.jsonl")
    faults = [e for e in events if e.detail.get("by") != "harness"]
    assert len(faults) == 3 and all(e.end is not None for e in events)
    assert fake_system.FakeCluster.recoveries == 2  # after_heal ran on each heal(wait=True)


def test_start_ends_the_process_faults_of_the_nodes_it_starts(nemesis: Nemesis, runtime: FakeRuntime) -> None:
    kill = nemesis.kill("all")
    assert kill.target == ("n1", "n2", "n3")
    ended = nemesis.start("n2", wait=False)
    assert ended == [] or all(e.id == kill.id for e in ended)
    assert status(runtime, "n2") == "running"


def test_crash_all_kills_every_node_within_the_window(nemesis: Nemesis, runtime: FakeRuntime) -> None:
    ev = nemesis.crash_all(0.05)
    assert sorted(ev.target) == ["n1", "n2", "n3"] and ev.detail["window_s"] == 0.05
    assert all(status(runtime, n) == "exited" for n in ("n1", "n2", "n3"))
    nemesis.start("all")
    assert all(status(runtime, n) == "running" for n in ("n1", "n2", "n3"))
    assert "crash-all" not in {e.name for e in nemesis.open.values()}


def container_of(runtime: FakeRuntime, node: str) -> str:
    return next(n for n in runtime.containers_by_name if n.endswith(f"-{node}"))


def test_wipe_replaces_the_container_at_once_or_at_the_heal(nemesis: Nemesis, runtime: FakeRuntime) -> None:
    name = container_of(runtime, "n2")
    pid = runtime.state(name).pid
    ev = nemesis.wipe("n2")
    assert ev.name == "wipe" and ev.end is not None and ev.detail["return"] is True
    assert runtime.verbs("remove") == [(name,)]  # the container (its data directory) is gone…
    assert runtime.state(name).status == "running" and runtime.state(name).pid != pid  # …and a new one runs
    assert (nemesis.system.wiped_logs() / "n2-1.log").exists()  # the old one's log is kept
    nemesis.kill("n2")  # back, so it may be faulted again

    name3 = container_of(runtime, "n3")
    ev = nemesis.wipe("n3", returns=False)
    assert ev.end is None and runtime.state(name3).status == "missing"
    with pytest.raises(FaultConflict, match="n3 is already under process"):
        nemesis.kill("n3")
    ended = nemesis.heal(wait=False)
    assert ev.id in {e.id for e in ended} and runtime.state(name3).status == "running"
    assert "wipe" not in {e.name for e in nemesis.open.values()}
    assert nemesis.heal(wait=False) == []  # idempotent: nothing wiped is left to return


def test_wipe_needs_a_way_to_reseed(nemesis: Nemesis, monkeypatch: pytest.MonkeyPatch) -> None:
    info = registry.SYSTEMS["fake"]
    without = type(info)(**{**info.__dict__, "capabilities": info.capabilities - {Capability.RESEED}})
    monkeypatch.setattr(nemesis, "info", without)
    with pytest.raises(InputError, match="wipe: needs a way to re-seed a node that lost its data"):
        nemesis.wipe("n1")


def test_link_faults_need_a_link(nemesis: Nemesis) -> None:
    with pytest.raises(InputError, match="unknown link 'n1'"):
        nemesis.link("n1", {"kind": "latency", "latency_ms": 5})  # the fake system has no client links
