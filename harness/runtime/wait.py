"""Wait for a condition with a deadline: the only way the harness synchronises with real systems."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from harness import progress
from harness.errors import InfraError

T = TypeVar("T")


class WaitTimeout(InfraError):
    """A condition did not hold before its deadline; the message says what and the last observation."""


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    max_interval: float = 1.0,
    details: Callable[[], str] | None = None,
) -> T:
    """Poll ``check`` until it returns a truthy value (returned) or ``timeout`` seconds pass.

    Exceptions raised by ``check`` count as "not yet" and the last one is quoted on timeout; the poll
    interval grows from ``interval`` to ``max_interval``.
    """
    progress.note(f"waiting for {what}")
    try:
        return _poll(check, timeout, what, interval, max_interval, details)
    finally:
        progress.note(None)


def _poll(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float,
    max_interval: float,
    details: Callable[[], str] | None,
) -> T:
    deadline = time.monotonic() + timeout
    last: str = "never checked"
    delay = interval
    while True:
        try:
            result = check()
            if result:
                return result
            last = f"last result: {result!r}"
        except Exception as exc:
            last = f"last error: {type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            extra = f"\n{details()}" if details else ""
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what} ({last}){extra}")
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(max_interval, delay * 1.5)
