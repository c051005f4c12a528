"""A stored run read back from its directory, for a verdict without a cluster: ``load_stored_run``.

A run directory (``reports/<run-id>/``, written by the runner) holds:

* required: ``history.jsonl`` (ops), ``events.jsonl`` (fault windows; empty when no fault ran),
  ``scenario.json`` and ``topology.json``. A run missing one cannot be judged: ``IncompleteRunError``
  (exit code 3, unknown), never a verdict. A missing events.jsonl in particular must not read as "no fault
  happened";
* optional: ``samples.jsonl`` (probe readings) and ``checksums.json`` (final table checksums). Absent means
  no probes ran, no checksums were taken.

A corrupt file is an ``InputError`` ``FILE:LINE: what is wrong`` (``history.jsonl:60465: not JSON: ...``,
``events.jsonl:3: event: missing field 'start'``), never a traceback and never data loss.

This module only reads files: scenario.json and topology.json come back as plain dicts for the runner to
validate into its models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import IncompleteRunError, InputError
from harness.model.history import Event, History, Sample, read_events, read_history, read_samples
from harness.model.history.jsonl import json_problem

__all__ = ["OPTIONAL_FILES", "REQUIRED_FILES", "StoredRun", "load_stored_run"]

HISTORY, EVENTS, SCENARIO, TOPOLOGY = "history.jsonl", "events.jsonl", "scenario.json", "topology.json"
SAMPLES, CHECKSUMS = "samples.jsonl", "checksums.json"
REQUIRED_FILES: tuple[str, ...] = (HISTORY, EVENTS, SCENARIO, TOPOLOGY)
OPTIONAL_FILES: tuple[str, ...] = (SAMPLES, CHECKSUMS)
_RUN_MARKERS = (*REQUIRED_FILES, *OPTIONAL_FILES, "result.json")


@dataclass(frozen=True)
class StoredRun:
    """Everything a verdict reads from a run directory.

    ``topology_doc`` and ``scenario_doc`` are the JSON objects as stored (not validated); ``events`` in
    (start, id) order with the last line per id winning; ``samples`` in file order (empty when the run has
    no samples.jsonl); ``checksums`` None when the run has no checksums.json.
    """

    directory: Path
    topology_doc: dict[str, Any]
    scenario_doc: dict[str, Any]
    history: History
    events: tuple[Event, ...]
    samples: tuple[Sample, ...]
    checksums: dict[str, Any] | None


def load_stored_run(directory: Path) -> StoredRun:
    """Read the run stored in ``directory``.

    Raises ``InputError`` when ``directory`` is not a run directory (missing, a file, or holding none of a
    run's files) or one of its files is corrupt (``FILE:LINE: what is wrong``); ``IncompleteRunError``
    naming every missing required file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = "no such directory" if not directory.exists() else "not a directory"
        raise InputError(f"{directory}: not a run directory ({what})")
    if not any((directory / name).exists() for name in _RUN_MARKERS):
        raise InputError(f"{directory}: not a run directory (expected {', '.join(REQUIRED_FILES)})")
    missing = [name for name in REQUIRED_FILES if not (directory / name).exists()]
    if missing:
        raise IncompleteRunError(
            f"{directory}: incomplete run: missing {', '.join(missing)} (a verdict needs "
            f"{', '.join(REQUIRED_FILES)}); the verdict is unknown"
        )
    checksums_path = directory / CHECKSUMS
    samples_path = directory / SAMPLES
    return StoredRun(
        directory=directory,
        topology_doc=_read_json_object(directory / TOPOLOGY),
        scenario_doc=_read_json_object(directory / SCENARIO),
        history=read_history(directory / HISTORY),
        events=tuple(read_events(directory / EVENTS)),
        samples=tuple(read_samples(samples_path)) if samples_path.exists() else (),
        checksums=_read_json_object(checksums_path) if checksums_path.exists() else None,
    )


def _read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``InputError`` ``FILE:LINE: ...`` when it is unreadable or not one."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        lineno = raw.count(b"\n", 0, e.start) + 1
        raise InputError(f"{path}:{lineno}: not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: {json_problem(e)}") from None
    except RecursionError:
        raise InputError(f"{path}: not JSON: nested too deeply") from None
    if type(doc) is not dict:
        raise InputError(f"{path}: expected a JSON object, not {type(doc).__name__}")
    return doc
