"""Probes: sample the cluster while a scenario runs, into ``samples.jsonl`` (metric per node over time).

A probe is one loop per node, run in its own thread so that a paused or partitioned node only makes its
own samples sparse. Each loop ticks at the probe's interval until the run's stop event is set; a tick
that cannot reach its node records the string ``"unreachable"`` (a non-numeric sample) for its main metric
rather than nothing, so gaps in a series are visible as such.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from harness.model.history import SampleWriter
from harness.runtime.run import Node
from harness.systems.base import ClusterSystem


class Probe(ABC):
    name: ClassVar[str]
    interval: float = 1.0

    def __init__(self, system: ClusterSystem, samples: SampleWriter) -> None:
        self.system = system
        self.samples = samples

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Prepare what the loops need (a table, a connection pool); before the first tick."""

    @abstractmethod
    def tick(self, node: Node, state: dict[str, object]) -> None:
        """One sample of ``node``; ``state`` is this node loop's own scratch space (connections)."""

    def connection(self, state: dict[str, object], open_: Callable[[], Any]) -> Any:
        """The node loop's connection, opened with ``open_`` on first use (and again after ``close``)."""
        conn = state.get("conn")
        if conn is None:
            conn = state["conn"] = open_()
        return conn

    def every(self, state: dict[str, object], interval: float, what: str = "every") -> bool:
        """True on the first tick and then once ``interval`` seconds have passed (slower metrics); one
        cadence per ``what``."""
        now = time.monotonic()
        key = f"{what}_at"
        if now - float(state.get(key, float("-inf"))) < interval:  # type: ignore[arg-type]
            return False
        state[key] = now
        return True

    def close(self, state: dict[str, object]) -> None:
        """Release the node loop's connection (a tick that failed calls this, so the next one reconnects)."""
        conn = state.pop("conn", None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()  # type: ignore[attr-defined]

    def loop(self, node: Node, stop: threading.Event) -> None:
        state: dict[str, object] = {}
        due = time.monotonic()
        try:
            while not stop.is_set():
                self.tick(node, state)
                due = max(due + self.interval, time.monotonic())
                stop.wait(due - time.monotonic())  # the probe's cadence, not synchronisation
        finally:
            self.close(state)


class Probes:
    """Run a set of probes on every node: ``with Probes([...]) as probes: ...`` (stops and joins on exit)."""

    def __init__(self, probes: list[Probe]) -> None:
        self.probes = probes
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Probes:
        for probe in self.probes:
            probe.setup()
            for node in probe.system.data_nodes:
                thread = threading.Thread(target=probe.loop, args=(node, self._stop),
                                          name=f"probe-{probe.name}-{node.name}", daemon=True)  # fmt: skip
                thread.start()
                self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Probes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
