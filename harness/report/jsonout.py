"""Machine-readable output of the ``--json`` flags: one JSON document on stdout, nothing else there.

While a command prints JSON, the harness's progress lines go to stderr instead of stdout (``logs_on_stderr``),
so ``harness check RUN --json | jq .valid`` always reads a whole document; no live progress display is
shown meanwhile (``harness.progress.disabled``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from harness import progress
from harness.checkers.base import jsonable
from harness.report.console import ProgressHandler
from harness.systems.base import NodeStatus

__all__ = ["logs_on_stderr", "print_json", "status_doc"]


def print_json(doc: Any) -> None:
    """``doc`` as indented JSON on stdout (numpy values and tuples made plain)."""
    sys.stdout.write(json.dumps(jsonable(doc), indent=2) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def logs_on_stderr() -> Iterator[None]:
    """The ``harness`` loggers' terminal lines on stderr (plain text) until the block ends."""
    root = logging.getLogger("harness")
    moved = [h for h in root.handlers if isinstance(h, ProgressHandler)]
    for h in moved:
        root.removeHandler(h)
    plain = logging.StreamHandler(sys.stderr)
    plain.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(plain)
    try:
        with progress.disabled():  # no live display either: stderr holds plain lines, stdout the document
            yield
    finally:
        root.removeHandler(plain)
        for h in moved:
            root.addHandler(h)


def status_doc(run_id: str, system: str, statuses: list[NodeStatus]) -> dict[str, Any]:
    """What ``status_table`` shows, as data."""
    nodes = [asdict(s) for s in statuses]
    return {"run": run_id, "system": system, "healthy": sum(s.healthy for s in statuses), "nodes": nodes}
