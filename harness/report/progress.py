"""The live display of ``harness.progress`` on a terminal: one line per open phase (and one per node of a
bring-up) kept at the bottom, the log lines printed above it through the same Console.

Shown only when the Console is an interactive terminal; ``--no-progress`` or ``HARNESS_PROGRESS=0`` turn
it off, and off a terminal (CI logs, pipes) the output is the plain log lines and nothing else.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TaskID
from rich.text import Text

from harness import progress

__all__ = ["ENV", "LiveReporter", "live_display", "wanted"]

ENV = "HARNESS_PROGRESS"  # 0 / false / no / off: no live display
_OFF = {"0", "false", "no", "off"}


def wanted(flag_off: bool = False) -> bool:
    """Whether the user wants a live display (``--no-progress`` not given, ``HARNESS_PROGRESS`` not off)."""
    return not flag_off and os.environ.get(ENV, "1").strip().lower() not in _OFF


@contextlib.contextmanager
def live_display(console: Console, *, enabled: bool = True) -> Iterator[progress.Reporter]:
    """The live display installed as the current reporter while the block runs, if ``enabled`` and
    ``console`` is an interactive terminal; otherwise the no-op reporter (nothing printed)."""
    if not enabled or not console.is_terminal or console.is_dumb_terminal:
        yield progress.NULL
        return
    reporter = LiveReporter(console)
    try:
        with progress.installed(reporter):
            yield reporter
    finally:
        reporter.stop()


def _is_tty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


def _seconds(value: float, *, up: bool = False) -> str:
    """Whole seconds (rounded down, or ``up``), as minutes and seconds from 2 minutes on."""
    whole = max(0, math.ceil(value) if up else math.floor(value))
    return f"{whole}s" if whole < 120 else f"{whole // 60}m{whole % 60:02d}s"


class _Lead(ProgressColumn):
    """A spinner for a phase; nothing for a node's row (its name says)."""

    def __init__(self) -> None:
        super().__init__()
        self.spinner = SpinnerColumn("dots")

    def render(self, task: Task) -> RenderableType:
        return Text(" ") if task.fields.get("row") else self.spinner.render(task)


class _Name(ProgressColumn):
    """The phase's name; a node's, indented, with a mark once it is done."""

    def render(self, task: Task) -> RenderableType:
        if not task.fields.get("row"):
            return Text(task.description, style="bold")
        done = task.total is not None and task.completed >= task.total
        return Text.assemble(("✓ " if done else "· ", "green" if done else "dim"), task.description)


class _Bar(ProgressColumn):
    """A bar when the phase (or row) has a total; nothing for a spinner."""

    def __init__(self, width: int = 30) -> None:
        super().__init__()
        self.bar = BarColumn(bar_width=width)

    def render(self, task: Task) -> RenderableType:
        return Text("") if task.total is None else self.bar.render(task)


class _Figures(ProgressColumn):
    """Seconds of a timeline and the time left; items done of a bar; time spent in a spinner."""

    max_refresh = 0.5

    def render(self, task: Task) -> RenderableType:
        if task.fields.get("row"):
            return Text("")
        if task.fields.get("is_clock") and task.total is not None:
            left = task.total - task.completed
            figures = (
                f"{_seconds(task.completed)}/{_seconds(round(task.total))}, {_seconds(left, up=True)} left"
            )
            return Text(figures, style="cyan")
        if task.total is not None:
            return Text(f"{task.completed:g}/{task.total:g}  {_seconds(task.elapsed or 0)}", style="cyan")
        return Text(_seconds(task.elapsed or 0), style="cyan")


class _Detail(ProgressColumn):
    def render(self, task: Task) -> RenderableType:
        detail, note = task.fields.get("detail", ""), task.fields.get("note", "")
        text = Text(detail)
        if note:
            text.append(("; " if detail else "") + note, style="dim")
        return text


class _Progress(Progress):
    """Progress whose timeline tasks run with the wall clock between updates (a wait step)."""

    def get_renderables(self) -> Iterable[RenderableType]:
        now = time.monotonic()
        for task in self.tasks:
            running = task.fields.get("clock")
            if running is not None:
                started, base, until = running
                task.completed = min(until, base + (now - started))
        yield from super().get_renderables()


@dataclass(eq=False)
class _LivePhase:
    owner: LiveReporter
    task: TaskID
    thread: int
    rows: dict[str, TaskID] = field(default_factory=dict)

    def update(
        self,
        detail: str | None = None,
        *,
        advance: float = 0.0,
        completed: float | None = None,
        until: float | None = None,
    ) -> None:
        bar = self.owner.bar
        with self.owner.lock:
            current = next((t for t in bar.tasks if t.id == self.task), None)
            if current is None:
                return  # closed meanwhile
            done = (current.completed if completed is None else completed) + advance
            clock = None if until is None else (time.monotonic(), done, until)
            shown = current.fields.get("detail", "") if detail is None else detail
            changed = shown != current.fields.get("detail", "")
            bar.update(self.task, completed=done, clock=clock, detail=shown, refresh=changed)

    def row(
        self, key: str, state: str, *, completed: float | None = None, total: float | None = None
    ) -> None:
        bar = self.owner.bar
        with self.owner.lock:
            if self not in self.owner.phases:
                return
            if key not in self.rows:
                self.rows[key] = bar.add_task(key, total=total, detail=state, row=True)
            bar.update(self.rows[key], completed=completed, total=total, detail=state, refresh=True)


class LiveReporter:
    """``harness.progress.Reporter`` on a rich Console: started with the first open phase, stopped (and
    erased) when the last one ends."""

    enabled = True

    def __init__(self, console: Console, *, refresh_per_second: float = 4.0) -> None:
        self.bar = _Progress(
            _Lead(), _Name(), _Bar(30), _Figures(), _Detail(),
            console=console, transient=True, refresh_per_second=refresh_per_second,
            redirect_stderr=_is_tty(sys.stderr),  # else what goes to a redirected stderr would stay there
        )  # fmt: skip
        self.lock = threading.RLock()
        self.phases: list[_LivePhase] = []
        self._started = False

    def open(self, name: str, *, total: float | None, clock: bool) -> progress.Phase:
        with self.lock:
            if not self._started:
                self.bar.start()
                self._started = True
            task = self.bar.add_task(name, total=total, detail="", note="", is_clock=clock, clock=None)
            phase = _LivePhase(self, task, threading.get_ident())
            self.phases.append(phase)
            self.bar.refresh()  # every phase is seen, however short
            return phase

    def close(self, phase: progress.Phase) -> None:
        with self.lock:
            if not isinstance(phase, _LivePhase) or phase not in self.phases:
                return
            self.phases.remove(phase)
            for task in [*phase.rows.values(), phase.task]:
                self.bar.remove_task(task)
            if not self.phases:
                self.stop()

    def note(self, text: str | None) -> None:
        ident = threading.get_ident()
        with self.lock:
            for phase in reversed(self.phases):
                if phase.thread == ident:
                    self.bar.update(phase.task, note=text or "", refresh=True)
                    return

    def stop(self) -> None:
        with self.lock:
            if self._started:
                self.bar.stop()
                self._started = False
