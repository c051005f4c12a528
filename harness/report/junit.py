"""``junit.xml``: a run's verdict in the JUnit XML format CI servers read (Jenkins, GitLab, GitHub
actions that publish test reports), written beside ``report.html``.

One ``<testsuite>`` per run (inside ``<testsuites>``), named "SCENARIO on TOPOLOGY"; one ``<testcase>``
per check (each child of the result) and one per guarantee bound. An invalid check or a broken bound is a
``<failure>`` (its notes as the message); an unknown verdict is ``<skipped>`` (the run could not tell, so
it proves nothing either way); a checker that crashed is an ``<error>`` with its traceback. The figures are
the suite's ``<properties>`` (``check.figure`` = value; the Ant/Jenkins schema allows properties only on a
suite) and also each case's ``<system-out>``, one ``figure = value`` per line.

The layout follows the Ant/Jenkins JUnit schema (``tests/data/junit.xsd``, against which the tests check
every file written here).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.checkers.base import Result
from harness.stored_run import StoredRun

__all__ = ["junit_xml", "write_junit"]

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # not allowed in XML 1.0
MAX_VALUE = 2000  # characters of one property value


def _clean(text: object) -> str:
    return _CONTROL.sub("?", str(text))


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, int | float | str):
        return _clean(v)
    text = json.dumps(v, separators=(",", ":"), default=str)
    return _clean(text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "...")


def _flat(figures: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in figures.items():
        if isinstance(value, Mapping) and value:
            out.extend(_flat(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _bound_text(b: Mapping[str, Any]) -> str:
    where = f"{b.get('check')}." if b.get("check") else ""
    return f"{where}{b.get('figure', b.get('name', '?'))} {b.get('op', '')} {_value(b.get('bound'))}"


def junit_xml(result: Result, *, suite: str, classname: str, properties: Mapping[str, Any] | None = None,
              time_s: float = 0.0, timestamp: dt.datetime | None = None) -> bytes:  # fmt: skip
    """The JUnit XML document of ``result`` (UTF-8 bytes, with its declaration)."""
    cases: list[ET.Element] = []
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def case(name: str, valid: object, message: str, out_lines: list[str], error: str | None = None,
             detail: str = "") -> None:  # fmt: skip
        el = ET.Element("testcase", {"name": _clean(name), "classname": _clean(classname), "time": "0"})
        counts["tests"] += 1
        if error is not None:
            ET.SubElement(el, "error", {"message": _clean(error), "type": "checker-error"}).text = _clean(
                detail
            )
            counts["errors"] += 1
        elif valid is False:
            ET.SubElement(
                el, "failure", {"message": _clean(message or "invalid"), "type": "invalid"}
            ).text = _clean(detail or message)
            counts["failures"] += 1
        elif valid is not True:
            ET.SubElement(el, "skipped", {"message": _clean(f"verdict unknown: {message}" if message
                                                             else "verdict unknown")})  # fmt: skip
            counts["skipped"] += 1
        if out_lines:
            ET.SubElement(el, "system-out").text = _clean("\n".join(out_lines))
        cases.append(el)

    props: list[tuple[str, str]] = [(k, _value(v)) for k, v in (properties or {}).items()]
    props.append(("verdict", _value(result.valid)))
    children = dict(result.children) or {"result": result}
    for name, child in children.items():
        bounds = (
            child.details.get("bounds")
            if name == "guarantees" and isinstance(child.details, Mapping)
            else None
        )
        lines = [f"{k} = {_value(v)}" for k, v in _flat(child.figures)]
        props.extend((f"{name}.{k}", _value(v)) for k, v in _flat(child.figures))
        if isinstance(bounds, list) and bounds:
            for b in bounds:
                if not isinstance(b, Mapping):
                    continue
                passed = b.get("passed")
                text = _bound_text(b)
                message = f"{b.get('name', '?')}: {text}, value {_value(b.get('value'))}"
                case(f"guarantee {b.get('name', '?')}: {text}", passed if passed in (True, False) else "unknown",
                     message if passed is not True else "", [f"value = {_value(b.get('value'))}", f"bound = {text}"])  # fmt: skip
            continue
        notes = "; ".join(child.notes)
        detail = "\n".join(child.notes)
        if child.error is not None:
            tb = child.details.get("traceback") if isinstance(child.details, Mapping) else None
            case(f"check {name}", child.valid, notes, lines, error=child.error, detail=str(tb or child.error))
        else:
            case(f"check {name}", child.valid, notes, lines, detail=detail)

    stamp = (timestamp or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None, microsecond=0)
    time_text = f"{max(time_s, 0.0):.3f}"
    root = ET.Element("testsuites", {"name": "ha-harness", **{k: str(v) for k, v in counts.items()},
                                     "time": time_text})  # fmt: skip
    attrs = {"name": _clean(suite), **{k: str(v) for k, v in counts.items()}, "time": time_text,
             "timestamp": stamp.isoformat(), "id": "0", "package": "ha-harness"}  # fmt: skip
    suite_el = ET.SubElement(root, "testsuite", attrs)
    props_el = ET.SubElement(suite_el, "properties")
    for k, v in props:
        ET.SubElement(props_el, "property", {"name": _clean(k), "value": v})
    suite_el.extend(cases)
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"


def write_junit(path: Path, result: Result, stored: StoredRun) -> Path:
    """``junit.xml`` of a run at ``path``: suite "SCENARIO on TOPOLOGY", classname "TOPOLOGY.SCENARIO", the
    run id and seed among the properties, the run's duration (last recorded op) as the suite's time."""
    scenario = str(stored.scenario_doc.get("name", "scenario"))
    topology = str(stored.topology_doc.get("name", "topology"))
    meta: dict[str, Any] = {}
    try:
        doc = json.loads((stored.directory / "meta.json").read_text(encoding="utf-8"))
        meta = doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        pass
    h = stored.history
    span_s = float(h.time.max()) / 1e9 if len(h) else 0.0
    history = stored.directory / "history.jsonl"
    try:
        end = dt.datetime.fromtimestamp(history.stat().st_mtime, dt.UTC)
        start: dt.datetime | None = end - dt.timedelta(seconds=span_s)
    except OSError:
        start = None
    properties = {"run_id": meta.get("run_id", stored.directory.name), "seed": meta.get("seed", "not recorded"),
                  "topology": topology, "scenario": scenario, "system": stored.topology_doc.get("system", "?")}  # fmt: skip
    data = junit_xml(result, suite=f"{scenario} on {topology}", classname=f"{topology}.{scenario}",
                     properties=properties, time_s=span_s, timestamp=start)  # fmt: skip
    path.write_bytes(data)
    return path
