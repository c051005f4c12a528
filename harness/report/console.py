"""Rich output for people: progress lines and status tables."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.systems.base import NodeStatus

console = Console(highlight=False, soft_wrap=True)  # a long line is one line, wrapped or not
err_console = Console(stderr=True, highlight=False)
_T0 = time.monotonic()


class ProgressHandler(logging.Handler):
    """The harness's log on the terminal: one progress line each, stamped with seconds since the command
    started (warnings and errors in colour)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = escape(record.getMessage())
            if record.levelno >= logging.WARNING:
                message = f"[{'red' if record.levelno >= logging.ERROR else 'yellow'}]{message}[/]"
            console.print(f"[dim]{time.monotonic() - _T0:6.1f}s[/dim] {message}")
        except Exception:
            self.handleError(record)


def log_to_console(level: int = logging.INFO) -> None:
    """Show the ``harness`` loggers' records on the terminal (once per process)."""
    root = logging.getLogger("harness")
    if not any(isinstance(h, ProgressHandler) for h in root.handlers):
        root.addHandler(ProgressHandler())
    root.setLevel(level)


def error(message: str) -> None:
    """One error line (or several, one per problem) on stderr, no traceback."""
    for line in message.splitlines() or [""]:
        err_console.print(line, style="red", markup=False, soft_wrap=True)
    sys.stderr.flush()


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def status_table(run_id: str, system: str, statuses: Sequence[NodeStatus]) -> Table:
    healthy = sum(s.healthy for s in statuses)
    table = Table(
        title=f"run {run_id} ({system}) — {healthy}/{len(statuses)} nodes healthy", title_justify="left"
    )
    for column in ("node", "role", "IP", "state", "uptime"):
        table.add_column(column)
    for s in statuses:
        colour = "green" if s.healthy else "red"
        state = s.state + (f" ({s.detail})" if s.detail else "")
        table.add_row(s.node, s.role, s.ip, f"[{colour}]{state}[/{colour}]", _uptime(s.uptime_s))
    return table


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _flat(figures: dict[str, object]) -> dict[str, object]:
    """Scalar figures, and those one level down in a dict of scalars (``overall.p99``)."""
    out: dict[str, object] = {}
    for key, value in figures.items():
        if isinstance(value, int | float | str | bool):
            out[key] = value
        elif isinstance(value, dict) and all(
            isinstance(v, int | float | str | bool | None) for v in value.values()
        ):
            out.update({f"{key}.{k}": v for k, v in value.items() if v is not None})
    return out


# Figures that answer "what did we lose, for how long, how far behind": shown first when a checker has them.
HEADLINE = (
    "acknowledged", "lost", "lost_pct", "duplicated", "unexpected", "recovered",
    "availability", "availability_all_nodes", "unavailable_s", "outage_count", "longest_outage_s",
    "wrong_total_reads", "negative_reads", "bad_reads", "lost_updates",
    "overall.p50", "overall.p99", "overall.max",
)  # fmt: skip


_PASSED = {True: "[green]pass[/green]", False: "[red]FAIL[/red]"}


def _bound_rows(table: Table, bounds: Sequence[dict[str, object]]) -> None:
    """One row per bound of the ``guarantees`` child: the bound, the figure it reads and its value."""
    for row in bounds:
        value = row.get("value")
        shown = "-" if value is None else _short(value)
        figure = f"{row.get('check')}.{row.get('figure')} = {shown}"
        table.add_row(
            escape(f"expect {row.get('name')} {row.get('op')} {row.get('bound')}"),
            _PASSED.get(row.get("passed"), "[yellow]unknown[/yellow]"),  # type: ignore[call-overload]
            escape(figure),
        )


def result_table(title: str, result: object) -> Table:
    """One row per checker: verdict and its scalar figures; then one per guarantee (``expect:``): the bound,
    pass/FAIL/unknown, and the figure it reads with its value."""
    table = Table(title=title, title_justify="left")
    for column in ("check", "verdict", "figures"):
        table.add_column(column)
    children = getattr(result, "children", {}) or {"result": result}
    for name, child in children.items():
        bounds = (child.details or {}).get("bounds") if name == "guarantees" else None
        if isinstance(bounds, list):
            _bound_rows(table, bounds)
            continue
        valid = child.valid
        verdict = {True: "[green]valid[/green]", False: "[red]INVALID[/red]"}.get(
            valid, "[yellow]unknown[/yellow]"
        )
        figures = child.figures or {}
        flat = _flat(figures)
        keys = [k for k in HEADLINE if k in flat] + [k for k in flat if k not in HEADLINE]
        scalars = [f"{k}={_short(flat[k])}" for k in keys]
        if child.error:
            scalars.insert(0, f"error={_short(child.error)}")
        table.add_row(name, verdict, ", ".join(scalars[:10]))
    return table
