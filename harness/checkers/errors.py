"""How ops ended badly, counted by class: definite aborts by MySQL code, indeterminate ends by reason.

The SQL workloads record an error as ``"<ExceptionClass>: <exception>"`` (``sql_common.describe``); a
pymysql error prints as ``(code, 'message')``, so a server's or the client library's code is the number
after ``: (``. A business refusal is ``"refused: …"``, a transfer out of retries ``"gave up after …"``.

``error_class(type, error)`` names one op's class:

* a ``fail`` with a MySQL code: the code (``"1213"``: deadlock / certification failure, ``"1205"``,
  ``"1047"``, …); ``"refused"``; ``"cas-miss"`` (a compare-and-set UPDATE matched no row); ``"gave-up"``
  (out of retries; ``"gave-up:1213"`` / ``"gave-up:cas-miss"`` when the last attempt's cause is known); ``"no-code"`` (any other exception, e.g. a client timeout
  before the COMMIT);
* an ``info``: ``"lost-connection"`` (2013, 2006, 2055 without a timeout), ``"timeout"`` (a client-side
  timeout: Python's ``TimeoutError`` or pymysql's ``(2013, '… (timed out)')``), ``"server:<code>"`` (a
  server code not known as definite, from a COMMIT), ``"client:<code>"`` (another client-library code),
  ``"<ExceptionClass>"`` (any other exception), ``"no-error"`` (none recorded).

``error_summary(history, fs)`` counts the completions of the ops named ``fs``. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from harness.model.history import FAIL, INFO, History

__all__ = ["LOST_CONNECTION", "error_class", "error_code_of", "error_summary"]

LOST_CONNECTION = frozenset({2013, 2006, 2055})
CLIENT_ERRORS_FROM = 2000
_CODE = re.compile(r"^[\w.]+: \((\d+),")
_CLASS = re.compile(r"^([\w.]+): ")


def error_code_of(error: str | None) -> int | None:
    """The MySQL code an op's error text carries (``"OperationalError: (1213, '…')"`` → 1213), else None."""
    if not error:
        return None
    m = _CODE.match(error)
    return int(m.group(1)) if m else None


def error_class(type_: str, error: str | None) -> str:
    """The class of one ``fail`` or ``info`` completion's error (see the module docstring)."""
    if type_ == "fail":
        if error is None:
            return "no-error"
        if error.startswith("refused: compare-and-set miss"):
            return "cas-miss"
        if error.startswith("refused:"):
            return "refused"
        if error.startswith("gave up"):
            rest = error.split(": ", 1)[1] if ": " in error else ""
            inner = error_class("fail", rest) if rest else ""
            return f"gave-up:{inner}" if inner and inner != "no-code" else "gave-up"
        code = error_code_of(error)
        return "no-code" if code is None else str(code)
    if error is None:
        return "no-error"
    code = error_code_of(error)
    if error.startswith(("TimeoutError:", "socket.timeout:", "timeout:")) or (
        code in LOST_CONNECTION and "timed out" in error
    ):
        return "timeout"
    if code in LOST_CONNECTION:
        return "lost-connection"
    if code is not None:
        return f"server:{code}" if 0 < code < CLIENT_ERRORS_FROM else f"client:{code}"
    m = _CLASS.match(error)
    return m.group(1) if m else "other"


def _counts(history: History, rows: np.ndarray, type_: str) -> dict[str, int]:
    codes = history.error[rows].astype(np.int64)
    if len(codes) == 0:
        return {}
    counts = np.bincount(codes + 1)
    out: dict[str, int] = {}
    for c in np.flatnonzero(counts).tolist():
        error = None if c == 0 else history.error_names[c - 1]
        key = error_class(type_, error)
        out[key] = out.get(key, 0) + int(counts[c])
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def error_summary(history: History, fs: str | Iterable[str]) -> dict[str, Any]:
    """Of the ops named ``fs``: ``aborts_by_code`` (``fail`` completions carrying a MySQL code: definite
    aborts and refusals by the server), ``failed_by_reason`` (every ``fail``, by class) and
    ``indeterminate_by_reason`` (every ``info``, by class); each {class: count}, most frequent first."""
    m = history.mask(fs if isinstance(fs, str) else tuple(fs))
    failed = _counts(history, np.flatnonzero(m & (history.type == FAIL)), "fail")
    return {
        "aborts_by_code": {k: v for k, v in failed.items() if k.isdigit()},
        "failed_by_reason": failed,
        "indeterminate_by_reason": _counts(history, np.flatnonzero(m & (history.type == INFO)), "info"),
    }
