"""Probe readings: ``Sample`` records in samples.jsonl, written by ``SampleWriter``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.model.clock import Clock, RunClock
from harness.model.history.fields import field, is_int64, is_number, is_str
from harness.model.history.jsonl import JsonlAppender, PathLike, read_records, write_jsonl

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
    """
    return list(read_records(path, "sample", Sample.from_dict))
