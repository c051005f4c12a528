"""The run's events as they happen: faults the scenario applies and actions the harness takes by itself.

An ``EventLog`` opens and closes ``Event``s on the run's clock (start = in effect, end = healed or done),
writes them through an ``EventWriter`` when it has one, keeps the ones still open, and logs each. The
nemesis records faults with it; a system records the actions it takes on the cluster on its own — an
operator's recovery after a partition, the bootstrap after every node crashed — with ``action``, so the
result says when the harness stepped in.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from harness.model.clock import Clock, RunClock
from harness.model.history import Event, EventWriter

log = logging.getLogger("harness.events")


class EventLog:
    def __init__(self, writer: EventWriter | None = None, clock: Clock | None = None) -> None:
        self.writer = writer
        self.clock: Clock = clock if clock is not None else (writer.clock if writer else RunClock())
        self.open_events: dict[str, Event] = {}
        self.closed: list[Event] = []
        self._lock = threading.Lock()

    def open(
        self,
        name: str,
        mechanism: str,
        target: str | Sequence[str],
        detail: Mapping[str, Any] | None = None,
        *,
        at: int | None = None,
    ) -> Event:
        """Open an event; ``at``: when it began to act, if before now (a signal's moment, say)."""
        ev_id = f"{name}-{uuid.uuid4().hex[:6]}"
        tgt = target if isinstance(target, str) else tuple(target)
        if self.writer is not None:
            ev = self.writer.start(name, mechanism, tgt, detail, id=ev_id, time=at)
        else:
            ev = Event(
                ev_id, name, mechanism, tgt, dict(detail or {}), self.clock.now() if at is None else at
            )
        with self._lock:
            self.open_events[ev.id] = ev
        shown = tgt if isinstance(tgt, str) else ",".join(tgt)
        log.info("%s on %s via %s", name, shown or "-", mechanism)
        return ev

    def close(self, ev: Event, *, at: int | None = None) -> Event:
        """End an event; ``at``: when it ended, if before now."""
        with self._lock:
            self.open_events.pop(ev.id, None)
        if self.writer is not None:
            ended = self.writer.end(ev, time=at)
        else:
            end = self.clock.now() if at is None else at
            ended = Event(ev.id, ev.name, ev.mechanism, ev.target, ev.detail, ev.start, end)
        with self._lock:
            self.closed.append(ended)
        return ended

    @contextlib.contextmanager
    def action(
        self, name: str, mechanism: str, target: str | Sequence[str], detail: Mapping[str, Any] | None = None
    ) -> Iterator[Event]:
        """An action of the harness on the cluster, as one event from its start to its end."""
        ev = self.open(name, mechanism, target, {"by": "harness", **dict(detail or {})})
        try:
            yield ev
        finally:
            self.close(ev)
