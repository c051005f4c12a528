"""What a workload is: real clients that record every operation in the run's history.

A workload is built from its spec and the cluster system, then driven by the runner:
``setup()`` (schema, queues) → ``run(history, stop)`` in the background while the scenario's faults
happen → ``final_read(history)`` after heal and quiescence. Clients reconnect after errors the way real
applications do; a reconnect is recorded as an op (f ``connect``) so it shows in the history.

Recording rules (Jepsen's): ``ok`` — it happened; ``fail`` — it certainly did not (refused before it
was sent, or the server rejected it); ``info`` — unknown (timeout, connection lost after sending). A process
whose op ended ``info`` is retired and the client continues under ``history.next_process(p)``.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from abc import ABC, abstractmethod
from typing import ClassVar

from harness.model.history import HistoryWriter
from harness.model.scenario import WorkloadSpec
from harness.systems.base import ClusterSystem


class Workload(ABC):
    """What it requires of a system and which checkers read its history: its ``WorkloadInfo`` in the
    registry (``harness.workloads``)."""

    name: ClassVar[str]

    def __init__(self, system: ClusterSystem, spec: WorkloadSpec, rng: random.Random) -> None:
        self.system = system
        self.spec = spec
        self.rng = rng
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()

    def next_id(self) -> int:
        with self._ids_lock:
            return next(self._ids)

    @abstractmethod
    def setup(self) -> None:
        """Create what the clients need (tables, queues); before the clock of faults starts."""

    @abstractmethod
    def client(self, worker: int, history: HistoryWriter, stop: threading.Event) -> None:
        """One client thread's loop: run ops at the spec's rate until ``stop`` is set."""

    @abstractmethod
    def final_read(self, history: HistoryWriter) -> None:
        """After heal: read the final state (every node's rows, a drain of every queue) into the history."""

    def run(self, history: HistoryWriter, stop: threading.Event) -> list[threading.Thread]:
        """Start ``spec.clients`` client threads; they stop when ``stop`` is set."""
        threads = [
            threading.Thread(
                target=self.client, args=(w, history, stop), name=f"{self.name}-{w}", daemon=True
            )
            for w in range(self.spec.clients)
        ]
        for thread in threads:
            thread.start()
        return threads

    def pace(self, stop: threading.Event, next_at: float) -> float:
        """Wait until the client's next op is due (rate per client); returns the following due time.

        This paces offered load; it is not synchronisation with the system under test.
        """
        interval = self.spec.clients / self.spec.rate
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        return max(next_at + interval, time.monotonic())

    def node_for(self, worker: int) -> int:
        """Index of the node a worker talks to: spread over the spec's target nodes."""
        targets = self.targets()
        return targets[worker % len(targets)]

    def targets(self) -> list[int]:
        """Indexes into ``system.data_nodes`` of the nodes the spec names (default: all of them)."""
        names = [n.name for n in self.system.data_nodes]
        wanted = self.spec.nodes or names
        return [names.index(n) for n in wanted]
