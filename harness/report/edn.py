"""Jepsen's EDN history format, for Elle and Knossos: ``write_edn``/``to_edn`` (and ``edn`` for one value).

One op map per line, e.g. ``{:index 0, :type :invoke, :process 0, :f :add, :value 1, :time 123}``. A ``txn``
op's micro-ops are written as Elle reads them: ``:value [[:append 5 3] [:r 5 [1 2 3]]]``.
``harness export RUN --edn`` writes it beside the run's other files.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import IO, Any, TypeAlias

import numpy as np

from harness.model.history import History, Op

__all__ = ["edn", "to_edn", "write_edn"]

PathLike: TypeAlias = str | os.PathLike[str]

_KEYWORD = re.compile(r"[A-Za-z*!_?<>=+\-][A-Za-z0-9*!_?<>=+\-.]*")
_INTKEY = re.compile(r"-?(0|[1-9][0-9]*)")
_EDN_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _edn_str(s: str) -> str:
    out = []
    for ch in s:
        esc = _EDN_ESC.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _edn_keyword(name: str) -> str:
    """``:name`` when ``name`` is a valid keyword, else an EDN string."""
    return ":" + name if _KEYWORD.fullmatch(name) and not name[:1].isdigit() else _edn_str(name)


def _edn_key(k: Any) -> str:
    if isinstance(k, str):
        if _INTKEY.fullmatch(k):
            return k  # JSON object keys are strings; "0" was an integer key (e.g. a bank account)
        return _edn_keyword(k)
    return edn(k)


def edn(value: Any) -> str:
    """Encode a JSON-like value as EDN: nil, true/false, numbers, strings, vectors, maps (string keys become
    keywords, or integers when they look like one)."""
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "##NaN"
        if math.isinf(v):
            return "##Inf" if v > 0 else "##-Inf"
        return repr(v)
    if isinstance(value, str):
        return _edn_str(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_edn_key(k)} {edn(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple | np.ndarray):
        return "[" + " ".join(edn(v) for v in value) + "]"
    if isinstance(value, set | frozenset):
        return "#{" + " ".join(sorted(edn(v) for v in value)) + "}"
    raise TypeError(f"cannot encode {type(value).__name__} as EDN")


def _txn_edn(value: Any) -> str | None:
    """A ``txn`` value in Elle's form, ``[[:append 5 3] [:r 5 [1 2 3]]]`` (micro-op names as keywords);
    None when ``value`` is not a list of ``[f, k, v]`` micro-ops."""
    if not isinstance(value, list) or not all(
        isinstance(m, list) and len(m) == 3 and isinstance(m[0], str) for m in value
    ):
        return None
    return "[" + " ".join(f"[{_edn_keyword(f)} {edn(k)} {edn(v)}]" for f, k, v in value) + "]"


def _op_edn(op: Op) -> str:
    value = (_txn_edn(op.value) if op.f == "txn" else None) or edn(op.value)
    parts = [
        f":index {op.index}",
        f":type :{op.type}",
        f":process {op.process}",
        f":f {_edn_keyword(op.f)}",
        f":value {value}",
        f":time {op.time}",
    ]
    if op.node is not None:
        parts.append(f":node {_edn_str(op.node)}")
    if op.error is not None:
        parts.append(f":error {_edn_str(op.error)}")
    return "{" + ", ".join(parts) + "}"


def write_edn(history: History | Iterable[Op], out: PathLike | IO[str]) -> None:
    """Write a Jepsen EDN history, one op map per line, e.g.
    ``{:index 0, :type :invoke, :process 0, :f :add, :value 1, :time 123}``."""
    if isinstance(out, str | os.PathLike):
        with open(out, "w", encoding="utf-8") as fh:
            write_edn(history, fh)
        return
    for op in history:
        out.write(_op_edn(op))
        out.write("\n")


def to_edn(history: History | Iterable[Op]) -> str:
    buf = io.StringIO()
    write_edn(history, buf)
    return buf.getvalue()
