"""Small vectorised helpers shared by the checkers: id sets, compact ranges, fault attribution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.model.history import Event

__all__ = [
    "MAX_RANGES",
    "as_id_array",
    "attribute",
    "compact_ranges",
    "event_index",
    "isin",
    "pct",
    "setdiff",
    "small_unique",
    "unique_sorted",
]

MAX_RANGES = 50
_EMPTY = np.empty(0, dtype=np.int64)


def unique_sorted(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique without its slow paths)."""
    if len(a) == 0:
        return _EMPTY
    s = np.sort(np.asarray(a, dtype=np.int64))
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def small_unique(codes: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an array of small codes >= -1 (e.g. interned node codes)."""
    if len(codes) == 0:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(np.bincount(np.asarray(codes, dtype=np.int64) + 1)) - 1


def isin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0:
        return np.zeros(0, dtype=bool)
    if len(b) == 0:
        return np.zeros(len(a), dtype=bool)
    return np.isin(a, b)


def setdiff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elements of the sorted-unique ``a`` not in ``b`` (stays sorted-unique)."""
    out: np.ndarray = a[~isin(a, b)]
    return out


def duplicated(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values occurring more than once in ``a``, their counts), sorted by value."""
    if len(a) == 0:
        return _EMPTY, _EMPTY
    s = np.sort(np.asarray(a, dtype=np.int64))
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    counts = np.diff(np.append(starts, len(s)))
    many = counts > 1
    return s[starts[many]], counts[many]


def compact_ranges(ids: np.ndarray, max_ranges: int = MAX_RANGES) -> str:
    """Sorted distinct ids as "1-5,9,12-13"; after ``max_ranges`` ranges, "... (+N more)"."""
    n = len(ids)
    if n == 0:
        return ""
    ids = np.asarray(ids, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(ids) != 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [n - 1]))
    total = len(starts)
    shown = min(total, max_ranges)
    lo = ids[starts[:shown]].tolist()
    hi = ids[ends[:shown]].tolist()
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in zip(lo, hi, strict=True)]
    if total > shown:
        parts.append(f"... (+{total - shown} more)")
    return ",".join(parts)


def as_id_array(value: Any, what: str) -> np.ndarray:
    """A list of integer ids (or a numpy int array) as int64; anything else is an error."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iu":
            raise ValueError(f"{what}: ids must be integers")
        return value.astype(np.int64, copy=False)
    if not isinstance(value, list | tuple):
        raise ValueError(f"{what}: expected a list of ids, got {type(value).__name__}")
    if len(value) == 0:
        return _EMPTY
    try:
        a = np.asarray(value)
    except ValueError:  # ragged nesting
        raise ValueError(f"{what}: ids must be integers") from None
    if a.ndim != 1 or a.dtype.kind not in "iu" or (a.dtype.kind == "u" and a.dtype.itemsize >= 8):
        raise ValueError(f"{what}: ids must be integers")
    return a.astype(np.int64, copy=False)


def event_index(times: np.ndarray, events: Sequence[Event]) -> np.ndarray:
    """For each time, the position in ``events`` (sorted by start) of the last event with start <= time;
    -1 when none."""
    if not events:
        return np.full(len(times), -1, dtype=np.int64)
    starts = np.fromiter((e.start for e in events), dtype=np.int64, count=len(events))
    return np.searchsorted(starts, np.asarray(times, dtype=np.int64), side="right") - 1


def attribute(times: np.ndarray, events: Sequence[Event]) -> dict[str, int]:
    """Count ``times`` per fault window: the last event (sorted by start) whose start <= time, else "none".

    Keys are in event order, "none" last; only non-zero counts appear.
    """
    if len(times) == 0:
        return {}
    idx = event_index(times, events)
    counts = np.bincount(idx + 1, minlength=len(events) + 1)
    out = {events[i].id: int(counts[i + 1]) for i in range(len(events)) if counts[i + 1]}
    if counts[0]:
        out["none"] = int(counts[0])
    return out


def pct(part: int, whole: int) -> float:
    """``part`` as a percentage of ``whole``, rounded to 4 decimals (0.0 when whole is 0)."""
    return round(100.0 * part / whole, 4) if whole else 0.0
