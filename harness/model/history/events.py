"""Fault windows: ``Event`` records in events.jsonl, written by ``EventWriter`` as faults open and close."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.model.clock import Clock, RunClock
from harness.model.history.fields import RecordError, field, is_int64, is_str
from harness.model.history.jsonl import JsonlAppender, PathLike, read_records, write_jsonl

__all__ = ["Event", "EventWriter", "read_events", "write_events"]


def _is_target(v: Any) -> bool:
    return type(v) is str or (type(v) is list and all(type(t) is str for t in v))


@dataclass(frozen=True, slots=True)
class Event:
    """A fault window: the fault was in effect from ``start`` until ``end`` (ns since run start).

    ``end`` is None when the fault was never healed. ``mechanism`` names what applied it
    ("iptables", "toxiproxy", "signal", "docker"); ``target`` the node(s) or link(s).
    """

    id: str
    name: str
    mechanism: str
    target: str | tuple[str, ...]
    detail: Mapping[str, Any]
    start: int
    end: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.target, list):
            object.__setattr__(self, "target", tuple(self.target))
        if self.end is not None and self.end < self.start:
            raise ValueError(f"event {self.id}: end {self.end} before start {self.start}")

    @property
    def healed(self) -> bool:
        return self.end is not None

    def active_at(self, t: int) -> bool:
        return self.start <= t and (self.end is None or t < self.end)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "mechanism": self.mechanism,
            "target": self.target if isinstance(self.target, str) else list(self.target),
            "detail": dict(self.detail),
            "start": self.start,
            "end": self.end,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Event:
        """The event of a record; ``RecordError`` (a ValueError) names a missing or mistyped field.

        Required: ``id``, ``name`` (strings), ``start`` (int64). Optional: ``mechanism`` (string, ""),
        ``target`` (a string or a list of strings, ""), ``detail`` (object or null), ``end`` (int64 or null,
        not before ``start``).
        """
        id_ = field(d, "id", is_str, "a string")
        name = field(d, "name", is_str, "a string")
        mechanism = field(d, "mechanism", is_str, "a string", "")
        target = field(d, "target", _is_target, "a string or a list of strings", "")
        detail = field(d, "detail", lambda v: type(v) is dict, "an object", None, nullable=True)
        start = field(d, "start", is_int64, "an integer (int64)")
        end = field(d, "end", is_int64, "an integer (int64)", None, nullable=True)
        if end is not None and end < start:
            raise RecordError(f"end {end} before start {start}")
        return cls(
            id=id_,
            name=name,
            mechanism=mechanism,
            target=target if isinstance(target, str) else tuple(target),
            detail=dict(detail or {}),
            start=start,
            end=end,
        )


class EventWriter:
    """Records fault windows as they open and close (events.jsonl). Thread-safe.

    ``start`` writes the event with ``end: null``; ``end`` writes it again with its end. ``read_events`` keeps
    the last line per id, so a crash mid-fault leaves an unhealed event on disk rather than nothing.
    """

    def __init__(self, path: PathLike, clock: Clock | None = None) -> None:
        self.clock: Clock = clock if clock is not None else RunClock()
        self._out = JsonlAppender(path, flush_lines=1)
        self._seq = 0

    def start(
        self,
        name: str,
        mechanism: str,
        target: str | Sequence[str],
        detail: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        time: int | None = None,
    ) -> Event:
        with self._out.lock:
            self._seq += 1
            ev = Event(
                id=id if id is not None else f"{name}-{self._seq}",
                name=name,
                mechanism=mechanism,
                target=target if isinstance(target, str) else tuple(target),
                detail=dict(detail or {}),
                start=self.clock.now() if time is None else time,
                end=None,
            )
            self._out.write(ev.to_dict())
            return ev

    def end(self, event: Event, *, time: int | None = None) -> Event:
        with self._out.lock:
            ev = Event(
                event.id,
                event.name,
                event.mechanism,
                event.target,
                event.detail,
                event.start,
                self.clock.now() if time is None else time,
            )
            self._out.write(ev.to_dict())
            return ev

    def close(self) -> None:
        self._out.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_events(path: PathLike, events: Iterable[Event]) -> None:
    write_jsonl(path, (ev.to_dict() for ev in events))


def read_events(path: PathLike) -> list[Event]:
    """Events from events.jsonl, the last line per id winning, sorted by (start, id).

    Raises ``InputError`` ``FILE:LINE: ...`` for a line that is not JSON or not a well-formed event.
    """
    by_id: dict[str, Event] = {}
    for ev in read_records(path, "event", Event.from_dict):
        by_id[ev.id] = ev
    return sorted(by_id.values(), key=lambda e: (e.start, e.id))
