"""The reaper removes only what is truly orphaned: it must keep a handed-over run, a run whose owner
lives, and one whose owner's pid now belongs to another process — on the fake runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.runtime import labels as L
from harness.runtime.base import ContainerSpec
from harness.runtime.fake import FakeRuntime
from harness.runtime.reaper import orphan_run_ids, sweep_orphans


@pytest.fixture(autouse=True)
def own_namespace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HARNESS_NAMESPACE", "reaper-test")
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))


def dead_owner() -> str:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    token = L.owner_token(child.pid)
    child.wait()
    return token


def reused_pid_owner() -> str:
    """Our own (live) pid, with another process's start time: the pid was reused."""
    host, pid, _ = L.owner_token().rsplit(":", 2)
    return f"{host}:{pid}:1"


def add_run(runtime: FakeRuntime, run_id: str, owner: str, *, handed_over: bool = False) -> None:
    labels = {L.RUN_ID: run_id, L.NAMESPACE: L.namespace(), L.OWNER: owner, L.KIND: "node"}
    runtime.run(ContainerSpec(f"hh-{run_id}-n1", "img", ["sleep"], "n1", f"hh-{run_id}", "10.0.0.11", labels))
    runtime.create_network(f"hh-{run_id}", f"10.213.{len(runtime.networks_by_name) + 1}.0/24", "", labels)
    if handed_over:
        runtime.create_volume(f"hh-{run_id}-up", {**labels, L.KIND: "marker", L.STATE: "up"})


def test_only_runs_whose_owner_is_gone_and_never_handed_over_are_orphans() -> None:
    runtime = FakeRuntime()
    add_run(runtime, "dead", dead_owner())
    add_run(runtime, "reused", reused_pid_owner())
    add_run(runtime, "alive", L.owner_token(os.getpid()))
    add_run(runtime, "handed", dead_owner(), handed_over=True)
    add_run(runtime, "elsewhere", "another-host:1:1")
    assert orphan_run_ids(runtime) == {"dead", "reused"}
    assert sweep_orphans(runtime) == 4  # a container and a network each
    assert {r.labels[L.RUN_ID] for r in runtime.containers()} == {"alive", "handed", "elsewhere"}


def test_another_namespace_is_never_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = FakeRuntime()
    add_run(runtime, "theirs", dead_owner())
    monkeypatch.setenv("HARNESS_NAMESPACE", "someone-else")
    assert orphan_run_ids(runtime) == set()
    assert sweep_orphans(runtime) == 0
    monkeypatch.setenv("HARNESS_NAMESPACE", "reaper-test")
    assert orphan_run_ids(runtime) == {"theirs"}


def test_a_run_with_a_live_and_a_dead_owner_token_is_kept() -> None:
    """A resource created by a live process of the run keeps the whole run."""
    runtime = FakeRuntime()
    add_run(runtime, "mixed", dead_owner())
    labels = {L.RUN_ID: "mixed", L.NAMESPACE: L.namespace(), L.OWNER: L.owner_token(), L.KIND: "toxiproxy"}
    runtime.run(ContainerSpec("hh-mixed-toxiproxy", "img", ["x"], "t", "hh-mixed", "10.0.0.2", labels))
    assert orphan_run_ids(runtime) == set()
