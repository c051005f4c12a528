"""Pieces the benchmarks share (run them as ``python bench/<name>.py``: this directory is on sys.path)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def no_sigint() -> Iterator[None]:
    """Let cleanup finish even if Ctrl-C is pressed again (children inherit the ignore)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler: unwind like Ctrl-C so ``finally`` blocks clean up."""
    raise KeyboardInterrupt
