"""openstack-boot on a real OpenStack control plane (``system: openstack``: Galera n1-n3 and RabbitMQ n4-n6 in
one run), a broker partition and then a database partition on the same reused deployment.

What the designs imply, and so what is asserted:

* the two clusters are one run: one network, one label, the broker's nodes numbered after the database's,
  and a partition of one cluster's nodes leaves the other whole (the event says so);
* Galera certifies a row on the Primary component before acknowledging it, and a quorum queue confirms only
  what a Raft majority holds, so under either partition no committed row is lost and every accepted request
  (row committed, cast confirmed) ends ACTIVE: ``lost`` and ``stuck`` are 0, the verdict valid;
* the fault is felt where it is: the broker partition makes casts fail or end unknown (a worker on the
  cut-off broker node loses its connection and reconnects to another), the database partition makes
  inserts fail (the isolated Galera node is non-Primary: 1047) — and requests still go through on the other
  side in both (some accepted after the fault began).

Run: ``.venv/bin/python -m pytest -q tests/cluster/test_openstack_boot.py``.
"""

from __future__ import annotations

from pathlib import Path

from harness.model.history import read_events, read_history
from harness.model.scenario import load_scenario
from harness.runner import run_scenarios
from harness.runtime.docker import DockerRuntime
from harness.specs import load_topology

ROOT = Path(__file__).resolve().parents[2]


def test_boot_requests_survive_a_broker_partition_and_a_database_partition(
    runtime: DockerRuntime, tmp_path: Path
) -> None:
    topology = load_topology(ROOT / "topologies" / "openstack-galera-rabbitmq.yaml")
    assert topology.node_names == ["n1", "n2", "n3", "n4", "n5", "n6"]
    scenarios = [
        load_scenario(ROOT / "scenarios" / f"boot-{name}-partition.yaml") for name in ("broker", "db")
    ]
    outcomes = run_scenarios(topology, scenarios, runtime=runtime, reports=tmp_path)
    assert [o.reused for o in outcomes] == [False, True]

    for outcome, (cut, whole, failed_f) in zip(
        outcomes, [({"n4"}, {"n1", "n2", "n3"}, "cast"), ({"n1"}, {"n4", "n5", "n6"}, "insert")], strict=True
    ):
        boot = outcome.result.children["boot"]
        f = boot.figures
        assert boot.valid is True, (outcome.report_dir, boot.notes, f)
        assert (f["lost"], f["stuck"], f["unexpected"]) == (0, 0, 0), f
        assert f["accepted"] > 0 and f["active"] >= f["accepted"], f

        (partition,) = [
            ev for ev in read_events(outcome.report_dir / "events.jsonl") if ev.name == "partition"
        ]
        components = [set(c) for c in partition.detail["components"]]
        assert cut in components and whole in components, components  # the other cluster stays whole

        history = read_history(outcome.report_dir / "history.jsonl")
        start, end = partition.start, partition.end
        assert end is not None
        not_ok = [
            op for op in history if op.f == failed_f and op.type in ("fail", "info") and op.time >= start
        ]
        assert not_ok, f"no {failed_f} failed during the partition: {f}"
        through = [op for op in history if op.f == "cast" and op.type == "ok" and start <= op.time <= end]
        assert through, f"no request went through during the partition: {f}"
        if failed_f == "insert":  # the isolated Galera node refuses as non-Primary: a definite abort
            assert any(op.error and "1047" in op.error for op in not_ok if op.type == "fail"), not_ok[:5]
