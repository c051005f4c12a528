"""Sweep what crashed runs left behind.

A run is an orphan when its owner process is gone (killed, crashed) and it was never handed over (the
marker volume that ``harness up`` creates once the cluster is ready). Labels are the only source of truth:
Python teardown cannot be relied on after SIGKILL or OOM.
"""

from __future__ import annotations

from collections import defaultdict

from harness.paths import run_dir
from harness.runtime import labels as L
from harness.runtime.base import Runtime


def orphan_run_ids(runtime: Runtime) -> set[str]:
    owners: dict[str, set[str]] = defaultdict(set)
    handed_over: set[str] = set()
    for resource in [*runtime.containers(), *runtime.networks(), *runtime.volumes()]:
        labels = resource.labels
        owners[labels.get(L.RUN_ID, "")].add(labels.get(L.OWNER, ""))
        if resource.kind == "volume" and labels.get(L.STATE) == "up":
            handed_over.add(labels.get(L.RUN_ID, ""))
    return {
        run_id
        for run_id, tokens in owners.items()
        if run_id and run_id not in handed_over and not any(L.owner_alive(t) for t in tokens if t)
    }


def sweep_orphans(runtime: Runtime) -> int:
    """Remove every orphan run's resources and rendered configs; returns how many resources went."""
    import shutil

    from harness.runtime import storage

    count = 0
    for run_id in sorted(orphan_run_ids(runtime)):
        count += runtime.remove_run(run_id)
        count += storage.unmount_run(run_id)
        shutil.rmtree(run_dir(run_id), ignore_errors=True)
    # Storage mounts of a run with no labelled resource left: its process died between removing the
    # containers and unmounting (a live run has its network from before its first mount to after its last).
    live = {r.labels.get(L.RUN_ID, "") for r in [*runtime.containers(), *runtime.networks()]}
    for run_id in sorted(storage.mounted_run_ids() - live):
        count += storage.unmount_run(run_id)
        shutil.rmtree(run_dir(run_id), ignore_errors=True)
    return count
