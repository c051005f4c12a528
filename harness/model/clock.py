"""The run clock: one time base for workload ops, fault events and probe samples.

Every timestamp the harness records is an ``int`` of nanoseconds since the run started, read from
``time.monotonic_ns()`` so that wall-clock steps (NTP) cannot reorder a history. Host wall time is kept
once, at the start, so that values stamped by the host clock (replication heartbeats written by a node;
all containers share the host kernel clock) can be mapped onto the run's time axis and back.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "RunClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the run time: int nanoseconds since run start."""

    def now(self) -> int: ...


class RunClock:
    """The real run clock. ``now()`` is monotonic ns since construction (or since ``start_ns``).

    ``wall_start_ns`` is the host wall time (``time.time_ns()``) at the same instant, so
    ``to_wall_ns(t)`` and ``from_wall_ns(w)`` map between run time and host wall time.
    """

    __slots__ = ("_mono0", "_wall0")

    def __init__(self, *, mono_start_ns: int | None = None, wall_start_ns: int | None = None) -> None:
        self._mono0 = time.monotonic_ns() if mono_start_ns is None else mono_start_ns
        self._wall0 = time.time_ns() if wall_start_ns is None else wall_start_ns

    @property
    def wall_start_ns(self) -> int:
        """Host wall time (ns since the epoch) at run start."""
        return self._wall0

    def now(self) -> int:
        """Nanoseconds since the run started (monotonic)."""
        return time.monotonic_ns() - self._mono0

    def wall_now_ns(self) -> int:
        """Current host wall time, ns since the epoch (what a heartbeat row would be stamped with)."""
        return time.time_ns()

    def to_wall_ns(self, run_ns: int) -> int:
        """Run time → host wall time (ns since the epoch)."""
        return self._wall0 + run_ns

    def from_wall_ns(self, wall_ns: int) -> int:
        """Host wall time (ns since the epoch) → run time (may be negative: before run start)."""
        return wall_ns - self._wall0

    def lag_s(self, heartbeat_wall_ns: int, *, at_wall_ns: int | None = None) -> float:
        """Seconds between a heartbeat stamped with host wall time and now (or ``at_wall_ns``)."""
        now = time.time_ns() if at_wall_ns is None else at_wall_ns
        return (now - heartbeat_wall_ns) / 1e9


class ManualClock:
    """A clock for tests and replays: time only moves when told to. Thread-safe."""

    __slots__ = ("_lock", "_t")

    def __init__(self, start_ns: int = 0) -> None:
        self._t = start_ns
        self._lock = threading.Lock()

    def now(self) -> int:
        with self._lock:
            return self._t

    def set(self, t_ns: int) -> None:
        with self._lock:
            if t_ns < self._t:
                raise ValueError(f"clock cannot go backwards: {t_ns} < {self._t}")
            self._t = t_ns

    def advance(self, dt_ns: int) -> int:
        if dt_ns < 0:
            raise ValueError("clock cannot go backwards")
        with self._lock:
            self._t += dt_ns
            return self._t
