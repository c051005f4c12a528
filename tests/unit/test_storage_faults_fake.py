"""Storage faults' control flow: the fake runtime for the containers, the harness's own storage layer (real
FUSE mounts) under them. What a power loss keeps, and when, is the storage layer's (test_lazyfs_*); what a
database does about it is claimed only by tests/cluster/test_storage_faults.py."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.faults.nemesis import FaultConflict, Nemesis
from harness.lifecycle import down, system_for, up
from harness.model.history import read_events
from harness.model.scenario import Scenario
from harness.paths import run_dir
from harness.plan import Source, check_pair
from harness.runtime import storage
from harness.runtime.fake import FakeRuntime
from harness.runtime.reaper import sweep_orphans
from harness.runtime.storage import NodeStorage
from harness.storage.mount import mounts_named
from tests.support.fake_system import fake_topology

pytestmark = pytest.mark.usefixtures("fake_system")


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
def nemesis(runtime: FakeRuntime, tmp_path: Path) -> Iterator[Nemesis]:
    run = up(fake_topology(storage="lazyfs"), runtime)
    try:
        yield Nemesis(system_for(run, runtime), events=tmp_path / "events.jsonl")
    finally:
        down(run.id, runtime)
        assert storage.mounted_run_ids() == set()


def status(runtime: FakeRuntime, node: str) -> str:
    (name,) = [n for n in runtime.containers_by_name if n.endswith(f"-{node}")]
    return runtime.state(name).status


def _write(path: Path, data: bytes, *, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def test_each_node_gets_its_own_named_mount_seeded_from_the_image_at_its_data_dir(
    nemesis: Nemesis, runtime: FakeRuntime
) -> None:
    run = nemesis.run
    assert sorted(storage.mounted_run_ids()) == [run.id]
    assert len(mounts_named(storage.mount_name(run.id, ""))) == 3
    seeded = runtime.verbs("copy_from_image")
    assert sorted(Path(dest).parent.name for _, _, dest in seeded) == ["n1", "n2", "n3"]
    assert {path for _, path, _ in seeded} == {"/data"}
    spec = runtime.containers_by_name[run.nodes[0].container].spec
    (data,) = [m for m in spec.mounts if m.target == "/data"]
    assert not data.read_only and data.source == str(NodeStorage(run.id, "n1").mountpoint)


def test_power_loss_kills_then_drops_what_was_not_fsynced_and_ends_when_the_nodes_start(
    nemesis: Nemesis, runtime: FakeRuntime, tmp_path: Path
) -> None:
    n1 = NodeStorage(nemesis.run.id, "n1")
    _write(n1.mountpoint / "synced", b"kept", fsync=True)
    _write(n1.mountpoint / "pending", b"gone", fsync=False)
    event = nemesis.power_loss("all")
    assert [status(runtime, n) for n in ("n1", "n2", "n3")] == ["exited"] * 3
    assert event.detail["dropped"]["n1"]["files"] >= 1 and event.detail["dropped"]["n1"]["bytes"] > 0
    assert (n1.mountpoint / "synced").read_bytes() == b"kept"
    assert (n1.mountpoint / "pending").read_bytes() == b""  # created durably, its content never fsynced
    with pytest.raises(FaultConflict, match="n2 is already under process"):
        nemesis.kill("n2")  # powered off: down until started
    nemesis.start("all", wait=False)
    assert [status(runtime, n) for n in ("n1", "n2", "n3")] == ["running"] * 3
    (stored,) = [e for e in read_events(tmp_path / "events.jsonl") if e.name == "power-loss"]
    assert stored.end is not None and stored.mechanism == "lazyfs"


def test_a_disk_fault_holds_until_healed_and_the_heal_clears_it_before_nodes_start(
    nemesis: Nemesis, runtime: FakeRuntime, tmp_path: Path
) -> None:
    n2 = NodeStorage(nemesis.run.id, "n2")
    nemesis.disk("n2", "eio", ["write"])
    with pytest.raises(OSError) as exc:
        _write(n2.mountpoint / "f", b"x", fsync=False)
    assert exc.value.errno == errno.EIO
    _write(NodeStorage(nemesis.run.id, "n1").mountpoint / "f", b"x", fsync=False)  # only n2's disk
    with pytest.raises(FaultConflict, match="n2 is already under disk"):
        nemesis.disk("n2", "slow", ["fsync"], latency_ms=100)
    runtime.kill(nemesis.run.node("n2").container)  # as a server does when its disk fails it
    nemesis.apply({"heal": "all"})
    assert "faults=none" in n2.status()
    assert status(runtime, "n2") == "running"
    _write(n2.mountpoint / "f", b"x", fsync=True)
    (stored,) = [e for e in read_events(tmp_path / "events.jsonl") if e.name == "disk"]
    assert stored.end is not None and stored.detail == {"kind": "eio", "ops": ["write"]}


def test_storage_faults_need_storage_lazyfs(runtime: FakeRuntime, tmp_path: Path) -> None:
    run = up(fake_topology(), runtime)
    try:
        nemesis = Nemesis(system_for(run, runtime), events=tmp_path / "events.jsonl")
        with pytest.raises(InputError, match="storage: lazyfs"):
            nemesis.power_loss("n1")
        assert runtime.verbs("kill") == []
        assert storage.mounted_run_ids() == set()
    finally:
        down(run.id, runtime)


def test_validation_refuses_storage_faults_on_plain_storage_and_unknown_targets() -> None:
    scenario = Scenario.model_validate({
        "name": "s", "systems": ["fake"], "workload": {"fake": {"type": "sql-set"}},
        "steps": [{"power_loss": "all"}, {"disk": {"target": "n9", "kind": "eio"}},
                  {"disk": {"target": "n1", "kind": "slow", "latency_ms": 5}},
                  {"disk": {"target": "n1", "kind": "enospc"}}],
    })  # fmt: skip
    plain = check_pair(scenario, fake_topology(), Source("s.yaml"))
    assert any("steps[0].power_loss: power_loss needs the nodes' data" in p and "storage: lazyfs" in p
               for p in plain), plain  # fmt: skip
    lazy = check_pair(scenario, fake_topology(storage="lazyfs"), Source("s.yaml"))
    assert any("steps[1].disk.target: unknown node or role 'n9'" in p for p in lazy), lazy
    assert any("steps[3].disk: n1 is already under disk since steps[2]" in p for p in lazy), lazy
    assert not any("steps[0]" in p for p in lazy), lazy


def test_the_reaper_unmounts_what_a_crashed_run_left_mounted(runtime: FakeRuntime) -> None:
    run = up(fake_topology(storage="lazyfs"), runtime)
    runtime.remove_run(run.id)  # the process died after removing the containers, before unmounting
    assert storage.mounted_run_ids() == {run.id}
    assert sweep_orphans(runtime) == 3
    assert storage.mounted_run_ids() == set() and not run_dir(run.id).exists()
