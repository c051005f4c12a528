"""Probe readings: ``Sample`` records in samples.jsonl, written by ``SampleWriter``."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.model.clock import Clock, RunClock
from harness.model.history.fields import INT64_MAX, INT64_MIN, field, is_int64, is_number, is_str
from harness.model.history.jsonl import (
    JsonlAppender,
    PathLike,
    fast_lines,
    msgspec,
    read_bytes,
    read_records,
    write_jsonl,
)

__all__ = ["Sample", "SampleWriter", "read_samples", "write_samples"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One probe reading: ``metric`` of ``node`` at ``time`` (ns since run start)."""

    time: int
    node: str
    metric: str
    value: float | str

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "node": self.node, "metric": self.metric, "value": self.value}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Sample:
        """The sample of a record: ``time`` (int64), ``node``, ``metric`` (strings), ``value`` (a number,
        read as a float, or a string such as "unreachable"). ``RecordError`` (a ValueError) names a missing or
        mistyped field."""
        time = field(d, "time", is_int64, "an integer (int64)")
        node = field(d, "node", is_str, "a string")
        metric = field(d, "metric", is_str, "a string")
        v = field(d, "value", lambda v: is_str(v) or is_number(v), "a number or a string")
        return cls(time=time, node=node, metric=metric, value=v if isinstance(v, str) else float(v))


class SampleWriter:
    """Records probe samples (samples.jsonl). Thread-safe."""

    def __init__(self, path: PathLike, clock: Clock | None = None, **flush: Any) -> None:
        self.clock: Clock = clock if clock is not None else RunClock()
        self._out = JsonlAppender(path, **flush)

    def record(self, node: str, metric: str, value: float | str, *, time: int | None = None) -> Sample:
        s = Sample(self.clock.now() if time is None else time, node, metric, value)
        self._out.write(s.to_dict())
        return s

    def close(self) -> None:
        self._out.close()

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_samples(path: PathLike, samples: Iterable[Sample]) -> None:
    write_jsonl(path, (s.to_dict() for s in samples))


def read_samples(path: PathLike) -> list[Sample]:
    """Samples from samples.jsonl, in file order.

    Raises ``InputError`` ``FILE:LINE: ...`` for a line that is not JSON or not a well-formed sample.

    A plainly well-formed file is decoded in one typed msgspec call (any file it refuses goes through the
    exact reader, which says which line is wrong); reading the same bytes again in the same process (a
    run's checks, then its report) returns the samples already built.
    """
    data = read_bytes(path)
    key = os.path.realpath(path)
    with _LAST_LOCK:
        if _LAST and _LAST[0][0] == key and _LAST[0][1] == data:
            return list(_LAST[0][2])
    samples = _read_fast(data)
    if samples is None:
        samples = list(read_records(path, "sample", Sample.from_dict))
    with _LAST_LOCK:
        _LAST[:] = [(key, data, tuple(samples))]
    return samples


_LAST: list[tuple[str, bytes, tuple[Sample, ...]]] = []
_LAST_LOCK = threading.Lock()

if msgspec is not None:

    class _SampleRecord(msgspec.Struct, gc=False):
        """A sample line as ``Sample.from_dict`` takes it: a number (int or float, not bool) becomes a
        float, unknown fields are ignored."""

        time: int
        node: str
        metric: str
        value: float | str

    _DECODER: Any = msgspec.json.Decoder(_SampleRecord)


def _read_fast(data: bytes) -> list[Sample] | None:
    if msgspec is None:
        return None
    records = fast_lines(data, _DECODER)
    if records is None:
        return None
    out = [Sample(r.time, r.node, r.metric, r.value) for r in records]
    if out and not INT64_MIN <= min(s.time for s in out) <= max(s.time for s in out) <= INT64_MAX:
        return None  # a time beyond int64: the exact reader says which line
    return out
