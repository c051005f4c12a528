"""Where a long phase is (image build, bring-up, the timeline, final reads and checks): a tiny seam.

The layers below the CLI say what they are doing through the current :class:`Reporter`, without knowing
how (or whether) it is shown::

    with progress.phase("bring-up", total=3) as bar:
        bar.update("network", advance=1)
        bar.row("n1", "started", completed=1, total=2)   # a row of its own under the phase
    progress.note("waiting for n2 answering")            # the innermost phase of this thread, for now

By default every call is a no-op. The CLI installs a live display (``harness.report.progress``) only when
its output is an interactive terminal; the log lines stay the record either way, this only shows where a
phase is. ``disabled()`` turns it off for a block (``--json`` output). Nothing here imports anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

__all__ = ["NULL", "Phase", "Reporter", "active", "disabled", "enabled", "installed", "note", "phase"]


class Phase(Protocol):
    def update(
        self,
        detail: str | None = None,
        *,
        advance: float = 0.0,
        completed: float | None = None,
        until: float | None = None,
    ) -> None:
        """A new ``detail`` (the current step), ``advance`` or set ``completed``; ``until``: from now on
        ``completed`` runs with the wall clock (one unit a second) up to ``until`` (a timeline's wait)."""
        ...

    def row(
        self, key: str, state: str, *, completed: float | None = None, total: float | None = None
    ) -> None:
        """A row of its own under the phase (a node), shown until the phase ends."""
        ...


class Reporter(Protocol):
    enabled: bool

    def open(self, name: str, *, total: float | None, clock: bool) -> Phase:
        """A phase begins: a spinner (``total`` None), a bar over ``total`` items, or over ``total``
        seconds with the time left (``clock``)."""
        ...

    def close(self, phase: Phase) -> None: ...

    def note(self, text: str | None) -> None:
        """What the innermost phase opened by the calling thread is doing now (None: nothing special)."""
        ...


class _NullPhase:
    def update(
        self,
        detail: str | None = None,
        *,
        advance: float = 0.0,
        completed: float | None = None,
        until: float | None = None,
    ) -> None:
        return None

    def row(
        self, key: str, state: str, *, completed: float | None = None, total: float | None = None
    ) -> None:
        return None


class _NullReporter:
    enabled = False

    def open(self, name: str, *, total: float | None, clock: bool) -> Phase:
        return _NullPhase()

    def close(self, phase: Phase) -> None:
        return None

    def note(self, text: str | None) -> None:
        return None


NULL: Reporter = _NullReporter()
_current: Reporter = NULL


def active() -> Reporter:
    return _current


def enabled() -> bool:
    """A display is on (callers may skip work done only for it)."""
    return _current.enabled


@contextlib.contextmanager
def phase(name: str, *, total: float | None = None, clock: bool = False) -> Iterator[Phase]:
    """One phase, shown while the block runs (and gone when it ends, however it ends)."""
    reporter = _current
    shown = reporter.open(name, total=total, clock=clock)
    try:
        yield shown
    finally:
        reporter.close(shown)


def note(text: str | None) -> None:
    _current.note(text)


@contextlib.contextmanager
def installed(reporter: Reporter) -> Iterator[Reporter]:
    """``reporter`` is the current one while the block runs (the CLI's live display)."""
    global _current
    previous, _current = _current, reporter
    try:
        yield reporter
    finally:
        _current = previous


def disabled() -> contextlib.AbstractContextManager[Reporter]:
    """No display while the block runs (``--json``: stdout holds one document and nothing else)."""
    return installed(NULL)
