"""Transactions out of a history: pair each ``txn`` invoke with its completion (Jepsen's ``:txn`` ops).

A txn's value is a list of micro-ops ``["append", k, v]`` and ``["r", k, list-or-null]``. An ``ok``
completion carries what the reads saw; ``fail`` means it certainly did not happen; ``info`` (or no
completion at all) means it may or may not have happened, its reads unknown. Txns are numbered 0..n-1 in
invoke order: that number is the id every other module works with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.model.history import FAIL, OK, History

__all__ = ["FAILED", "INDETERMINATE", "STATUS_NAMES", "SUCCEEDED", "Txns", "parse_txns"]

SUCCEEDED, INDETERMINATE, FAILED = 0, 1, 2
STATUS_NAMES = ("ok", "info", "fail")


@dataclass(frozen=True, slots=True)
class Txns:
    """Columns per txn id: plain lists for what the hot loops index one by one (``status``, ``mops``),
    int64 arrays for the rest (whole-column numpy work, and a few lookups to explain a cycle).

    * ``status``: ``SUCCEEDED`` / ``INDETERMINATE`` / ``FAILED``;
    * ``mops``: the micro-ops (the completion's for ``ok``, else the invoke's); ``[]`` when malformed;
    * ``index``: op index of the completion (the invoke's when none); ``invoke_index``; ``process``;
    * ``invoke_row`` / ``complete_row``: history rows (``complete_row`` -1 unless ``ok``), for real time;
      ``end_row``: the completion's row whatever its type (the invoke's when none).
    """

    status: list[int]
    mops: list[list[Any]]
    index: np.ndarray
    invoke_index: np.ndarray
    process: np.ndarray
    invoke_row: np.ndarray
    complete_row: np.ndarray
    end_row: np.ndarray
    malformed: list[int]

    def __len__(self) -> int:
        return len(self.status)

    def counts(self) -> dict[str, int]:
        c = (
            np.bincount(np.asarray(self.status, dtype=np.int64), minlength=3).tolist()
            if self.status
            else [0] * 3
        )
        return {"ok": c[SUCCEEDED], "info": c[INDETERMINATE], "fail": c[FAILED]}


def parse_txns(history: History, f: str = "txn") -> Txns:
    """Every ``f`` invoke of ``history`` as a txn; a malformed value makes the txn ``malformed`` (listed by
    id, its micro-ops dropped, so it takes part in nothing)."""
    inv = history.rows(f, "invoke")
    comp = history.completion_of[inv]
    ctype = np.where(comp >= 0, history.type[np.maximum(comp, 0)], -1)
    status_a = np.where(ctype == OK, SUCCEEDED, np.where(ctype == FAIL, FAILED, INDETERMINATE))
    status = status_a.tolist()
    mops, malformed = _parse_mops(history.objvals, inv.tolist(), comp.tolist(), status)
    index_col = history.index
    return Txns(
        status=status,
        mops=mops,
        index=np.where(comp >= 0, index_col[np.maximum(comp, 0)], index_col[inv]),
        invoke_index=index_col[inv],
        process=history.process[inv].astype(np.int64),
        invoke_row=inv,
        complete_row=np.where(status_a == SUCCEEDED, comp, -1),
        end_row=np.where(comp >= 0, comp, inv),
        malformed=malformed,
    )


def _parse_mops(
    objvals: dict[int, Any], inv: list[int], comp: list[int], status: list[int]
) -> tuple[list[list[Any]], list[int]]:
    """Each txn's micro-ops (``[]`` when malformed) and the malformed txn ids."""
    mops: list[list[Any]] = []
    malformed: list[int] = []
    get = objvals.get
    for t, (ir, cr, s) in enumerate(zip(inv, comp, status, strict=True)):
        v = get(cr) if s == SUCCEEDED else None
        if v is None:
            v = get(ir)
            if v is None:
                mops.append([])
                continue
        if type(v) is list:  # well formed: a list of ["append", k, int] / ["r", k, list or null]
            for m in v:
                if type(m) is not list or len(m) != 3:
                    break
                f, k, x = m
                tk = type(k)
                if tk is not int and tk is not str:
                    break
                if f == "append":
                    if type(x) is not int:
                        break
                elif f != "r" or (x is not None and type(x) is not list):
                    break
            else:
                mops.append(v)
                continue
        malformed.append(t)
        mops.append([])
    return mops, malformed
