"""Checking the fields of one decoded JSONL record (an op, an event, a sample).

A parser raises ``RecordError`` saying what is wrong with the record ("missing field 'process'",
"field 'time' must be an integer, not str '12'"); the file reader adds the file and line
(``harness.model.history.jsonl.read_records``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "RecordError",
    "describe",
    "field",
    "is_int64",
    "is_number",
    "is_str",
]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_REQUIRED: Any = object()


class RecordError(ValueError):
    """A decoded record is not the shape its reader expects (no file position: the reader adds it)."""


def is_int64(v: Any) -> bool:
    """A plain integer (not a bool) that fits int64."""
    return type(v) is int and INT64_MIN <= v <= INT64_MAX


def is_str(v: Any) -> bool:
    return type(v) is str


def is_number(v: Any) -> bool:
    """An int or float, not a bool."""
    return type(v) is float or type(v) is int


def describe(v: Any) -> str:
    """``str '12'``, ``bool True``, ``list [1, 2]``…: a wrong value for an error message."""
    text = repr(v)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(v).__name__} {text}"


def field(
    d: Mapping[str, Any],
    name: str,
    check: Callable[[Any], bool],
    kind: str,
    default: Any = _REQUIRED,
    *,
    nullable: bool = False,
) -> Any:
    """``d[name]`` if ``check`` accepts it (or it is null and ``nullable``), ``default`` when absent.

    Raises ``RecordError`` when the field is missing without a default or has the wrong type (``kind``
    says what it should be: "an integer", "a string"…).
    """
    v = d.get(name, _REQUIRED)
    if v is _REQUIRED:
        if default is _REQUIRED:
            raise RecordError(f"missing field {name!r}")
        return default
    if (v is None and nullable) or check(v):
        return v
    if v is None:
        raise RecordError(f"field {name!r} must be {kind}, not null")
    raise RecordError(f"field {name!r} must be {kind}{' or null' if nullable else ''}, not {describe(v)}")
