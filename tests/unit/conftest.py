"""Shared fixtures of the unit tests."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.support.fake_system import fake_system  # noqa: F401 - the fixture, for every unit test

GUARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@pytest.fixture(autouse=True)
def restore_signal_handlers() -> Iterator[None]:
    """Leave pytest's SIGINT/SIGTERM handlers as they were: ``harness.cli.main`` installs a SIGTERM
    handler, and the signal tests install their own."""
    saved = {sig: signal.getsignal(sig) for sig in GUARDED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:  # None: installed outside Python, cannot be re-installed from here
                signal.signal(sig, handler)
