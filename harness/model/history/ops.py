"""One history entry: ``Op``, the four op types and their codes, and checking an op record's fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast

from harness.model.history.fields import INT64_MAX, INT64_MIN, RecordError, field, is_int64, is_str

__all__ = ["FAIL", "INFO", "INVOKE", "OK", "TYPES", "TYPE_CODE", "Op", "OpType", "op_fields"]

OpType: TypeAlias = Literal["invoke", "ok", "fail", "info"]
TYPES: tuple[OpType, ...] = ("invoke", "ok", "fail", "info")
INVOKE, OK, FAIL, INFO = 0, 1, 2, 3
TYPE_CODE: dict[str, int] = {t: i for i, t in enumerate(TYPES)}

OpFields: TypeAlias = tuple[int, int, OpType, str, Any, int, "str | None", "str | None"]


@dataclass(frozen=True, slots=True)
class Op:
    """One history entry. ``value`` must be JSON-serialisable; ``time`` is ns since run start."""

    index: int
    process: int
    type: OpType
    f: str
    value: Any = None
    time: int = 0
    node: str | None = None
    error: str | None = None

    @property
    def is_completion(self) -> bool:
        return self.type != "invoke"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "process": self.process,
            "type": self.type,
            "f": self.f,
            "value": self.value,
            "time": self.time,
        }
        if self.node is not None:
            d["node"] = self.node
        if self.error is not None:
            d["error"] = self.error
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Op:
        """The op of a record (``RecordError``, a ValueError, when a field is missing or of the wrong type)."""
        return cls(*op_fields(d))


def op_fields(d: Mapping[str, Any]) -> OpFields:
    """``(index, process, type, f, value, time, node, error)`` of an op record, checked.

    Required: ``index``, ``process`` (int64), ``type`` (one of ``TYPES``), ``f`` (string). Optional:
    ``value`` (any JSON), ``time`` (int64, default 0), ``node`` and ``error`` (string or null).
    Raises ``RecordError`` naming the first bad field.
    """
    try:
        index, process, type_, f = d["index"], d["process"], d["type"], d["f"]
    except KeyError as e:
        raise RecordError(f"missing field {e.args[0]!r}") from None
    time = d.get("time", 0)
    node = d.get("node")
    error = d.get("error")
    # the common case in one expression: reading 10^7 ops must not pay for a helper call per field
    if (
        type(index) is int
        and type(process) is int
        and type(time) is int
        and type(f) is str
        and type(type_) is str
        and type_ in TYPE_CODE
        and (node is None or type(node) is str)
        and (error is None or type(error) is str)
        and INT64_MIN <= index <= INT64_MAX
        and INT64_MIN <= process <= INT64_MAX
        and INT64_MIN <= time <= INT64_MAX
    ):
        return index, process, cast(OpType, type_), f, d.get("value"), time, node, error
    _op_problem(d)
    raise AssertionError("unreachable: _op_problem found nothing wrong")  # pragma: no cover


def _op_problem(d: Mapping[str, Any]) -> None:
    """Raise the ``RecordError`` for the first bad field of ``d`` (the slow path of ``op_fields``)."""
    int64 = "an integer (int64)"
    field(d, "index", is_int64, int64)
    field(d, "process", is_int64, int64)
    t = d["type"]
    if not (type(t) is str and t in TYPE_CODE):
        raise RecordError(f"field 'type' must be one of {', '.join(TYPES)}, not {t!r}")
    field(d, "f", is_str, "a string")
    field(d, "time", is_int64, int64, 0)
    field(d, "node", is_str, "a string", None, nullable=True)
    field(d, "error", is_str, "a string", None, nullable=True)
