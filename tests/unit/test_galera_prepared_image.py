"""The prepared Galera image: derived once from the node image, reused, and what marks a run as using it."""

from __future__ import annotations

from pathlib import Path

from harness.runtime.fake import FakeRuntime
from harness.runtime.run import Run
from harness.specs import load_topology
from harness.systems.galera.cluster import PREPARE_SH, PREPARED_UUID, GaleraCluster

ROOT = Path(__file__).resolve().parents[2]
BASE = "ha-harness/node:abc123"


def test_the_prepared_image_is_derived_once_and_then_reused() -> None:
    runtime = FakeRuntime(images=[BASE])
    topology = load_topology(ROOT / "topologies" / "galera-3.yaml")
    tag = GaleraCluster.node_image(runtime, BASE, topology)  # type: ignore[arg-type]
    assert tag == f"{BASE}-galera-prepared"
    assert GaleraCluster.node_image(runtime, BASE, topology) == tag  # type: ignore[arg-type]
    assert runtime.verbs("derive_image") == [(BASE, tag)]


def test_a_run_on_the_prepared_image_joins_by_ist_and_one_on_another_by_sst() -> None:
    topology = load_topology(ROOT / "topologies" / "galera-3.yaml")
    prepared = Run(
        id="t-1", topology=topology, slot=7, image=f"{BASE}-galera-prepared", owner="me", secret="s"
    )
    plain = Run(id="t-2", topology=topology, slot=8, image=BASE, owner="me", secret="s")
    assert GaleraCluster(prepared, FakeRuntime()).prepared  # type: ignore[arg-type]
    assert not GaleraCluster(plain, FakeRuntime()).prepared  # type: ignore[arg-type]


def test_the_preparation_founds_one_fixed_history_and_checks_its_clean_shutdown() -> None:
    assert "--wsrep-new-cluster" in PREPARE_SH and "mariadb-admin shutdown" in PREPARE_SH
    assert f"uuid:    {PREPARED_UUID}" in PREPARE_SH
    assert "grep -q 'safe_to_bootstrap: 1'" in PREPARE_SH  # a clean shutdown leaves it safe to bootstrap
