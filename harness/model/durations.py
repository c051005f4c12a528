"""Durations as users write them in YAML: ``10s``, ``500ms``, ``2m``, ``1.5`` (seconds)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from ``10s``/``500ms``/``2m``/``1h`` or a bare number of seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 10s, 500ms or 2m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _PATTERN.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"expected a duration like 10s, 500ms or 2m, got {value!r}")
    if seconds < 0:
        raise ValueError(f"expected a duration >= 0, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
