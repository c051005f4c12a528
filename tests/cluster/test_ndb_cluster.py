"""NDB Cluster for real: ndb-2x2 brought up on the official image and kill-primary run on it (the
president data node killed, its node-group peer carrying on). Skipped, saying why, where the image is
absent: NDB's binaries are in no registry reachable from this machine, so this has never run here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.runtime.docker import DockerRuntime
from harness.systems.ndb import IMAGE

ROOT = Path(__file__).resolve().parents[2]
REASON = f"NDB needs the image {IMAGE}, not present here (no registry reachable)"


@pytest.fixture(scope="module")
def ndb_image(runtime: DockerRuntime) -> None:
    if not runtime.image_exists(IMAGE):
        pytest.skip(REASON)


def test_kill_primary_on_ndb_2x2(ndb_image: None, runtime: DockerRuntime, tmp_path: Path) -> None:
    from harness.model.loading import read_yaml
    from harness.model.scenario import Scenario
    from harness.plan import validate_pair
    from harness.runner import run_scenario
    from harness.specs import load_topology

    topology = load_topology(ROOT / "topologies" / "ndb-2x2.yaml")
    doc = read_yaml(ROOT / "scenarios" / "kill-primary.yaml")
    doc["systems"] = [*doc["systems"], "ndb"]  # the shipped scenario names the systems it was run on
    doc["workload"]["ndb"] = doc["workload"]["galera"]
    doc["expect"]["ndb"] = {"lost": 0, "duplicated": 0}  # a commit is in both replicas of its node group
    scenario = Scenario.model_validate(doc)
    validate_pair(scenario, topology)
    outcome = run_scenario(topology, scenario, runtime=runtime, reports=tmp_path)
    stored = json.loads((outcome.report_dir / "result.json").read_text())
    loss = stored["children"]["set"]
    assert loss["figures"]["acknowledged"] > 0
    assert loss["figures"]["lost"] == 0 and loss["valid"] is True, (loss.get("notes"), loss["figures"])
