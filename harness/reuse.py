"""One running cluster lent to scenario after scenario: healed and health-checked in between, replaced when
it cannot be brought back.

Between two scenarios on one cluster the harness heals every fault mechanism (no partition, no toxics,
nothing paused, every node started — after every node crashed, the system's own recovery), waits until
every node is healthy again within the topology's ``timeouts.heal`` (Synced; clustered; roles settled), and
the next scenario's workload ``setup()`` resets its tables or queues. A cluster that does not come back in
time is removed and a new one brought up; the next scenario's result says so (``replaced``).

Used by :func:`harness.runner.run_scenarios` (``harness run TOPOLOGY SCENARIO...``) and by the pytest
plugin's cluster pool.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

from harness import progress
from harness.faults.nemesis import Nemesis
from harness.lifecycle import down, system_for, up
from harness.model.topology import TopologyBase
from harness.runtime.base import Runtime
from harness.runtime.run import Run
from harness.runtime.signals import no_interrupts

log = logging.getLogger(__name__)

__all__ = ["Lease", "ReusedCluster", "restore"]


def restore(run: Run, runtime: Runtime) -> str | None:
    """Heal everything on ``run`` and wait until it is healthy: None when it is, else why the cluster must
    be replaced (it did not come back within ``timeouts.heal``, or healing itself failed)."""
    try:
        Nemesis(system_for(run, runtime)).heal(wait=True)
    except Exception as exc:
        return f"not healthy within {run.topology.timeouts.heal:g}s after healing: " + _first_line(exc)
    return None


@dataclass(frozen=True)
class Lease:
    """The cluster a scenario runs on, and how it got it."""

    run: Run
    index: int  # 1 for the first scenario on this cluster, 2 for the next…
    reused: bool  # an earlier scenario ran on it (healed, checked healthy, reset by the workload)
    replaced: str | None = None  # why the previous cluster was replaced, if it was
    acquire_s: float = 0.0  # wall time getting it: the bring-up, or the heal and health check

    @property
    def report_id(self) -> str:
        """The scenario's run directory name: the cluster's id, then ``<id>-2``, ``<id>-3``…"""
        return self.run.id if self.index == 1 else f"{self.run.id}-{self.index}"


class ReusedCluster:
    """A topology's cluster for a sequence of scenarios: ``acquire()`` before each, ``close()`` after all.

    ``hand_over``: the last cluster outlives the process (``--keep``), as ``harness up`` leaves one.
    """

    def __init__(self, topology: TopologyBase, runtime: Runtime, *, hand_over: bool = False) -> None:
        self.topology = topology
        self.runtime = runtime
        self.hand_over = hand_over
        self.run: Run | None = None
        self.used = 0  # scenarios lent the current cluster

    def acquire(self) -> Lease:
        started = time.monotonic()
        lease = self._acquire()
        return dataclasses.replace(lease, acquire_s=time.monotonic() - started)

    def _acquire(self) -> Lease:
        if self.run is None:
            self.run = up(self.topology, self.runtime, hand_over=self.hand_over)
            self.used = 1
            return Lease(self.run, 1, reused=False)
        log.info(f"reusing cluster {self.run.id}: healing and waiting for every node to be healthy")
        with progress.phase("cluster reuse") as shown:
            shown.update("healing, then every node healthy")
            reason = restore(self.run, self.runtime)
        if reason is not None:
            log.warning(f"cluster {self.run.id} replaced: {reason}")
            self._remove()
            self.run = up(self.topology, self.runtime, hand_over=self.hand_over)
            self.used = 1
            return Lease(self.run, 1, reused=False, replaced=reason)
        self.used += 1
        return Lease(self.run, self.used, reused=True)

    def close(self) -> None:
        """The cluster removed (unless handed over); idempotent."""
        if self.run is not None and not self.hand_over:
            self._remove()

    def _remove(self) -> None:
        assert self.run is not None
        run_id, self.run = self.run.id, None
        with no_interrupts():  # a second Ctrl-C must not leave half a cluster behind
            down(run_id, self.runtime)
        log.info(f"run {run_id} removed")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
