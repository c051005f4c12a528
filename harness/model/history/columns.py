"""The in-memory history: ``History`` (numpy columns plus interned names) and ``HistoryBuilder``.

Columnar so that checkers handle 10^7 ops in seconds; ``History.op(row)`` and iteration give ``Op`` objects
back.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from harness.model.history.fields import is_int64
from harness.model.history.ops import INFO, INVOKE, TYPE_CODE, TYPES, Op, OpType, op_fields

__all__ = ["History", "HistoryBuilder"]


class _Interner:
    __slots__ = ("codes", "names")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names: list[str] = []
        self.codes: dict[str, int] = {}
        for n in names:
            self.code(n)

    def code(self, name: str | None) -> int:
        if name is None:
            return -1
        c = self.codes.get(name)
        if c is None:
            c = self.codes[name] = len(self.names)
            self.names.append(name)
        return c


class HistoryBuilder:
    """Accumulates ops into compact columns, then ``build()`` a ``History``. Not thread-safe."""

    def __init__(self) -> None:
        self._index = array("q")
        self._process = array("q")
        self._type = array("b")
        self._f = array("i")
        self._time = array("q")
        self._node = array("i")
        self._ival = array("q")
        self._has = array("b")
        self._err = array("i")
        self._fs = _Interner()
        self._nodes = _Interner()
        self._errors = _Interner()
        self._obj: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._index)

    def append(
        self,
        index: int,
        process: int,
        type: str,
        f: str,
        value: Any = None,
        time: int = 0,
        node: str | None = None,
        error: str | None = None,
    ) -> None:
        code = TYPE_CODE.get(type)
        if code is None:
            raise ValueError(f"bad op type {type!r}")
        row = len(self._index)
        self._index.append(index)
        self._process.append(process)
        self._type.append(code)
        self._f.append(self._fs.code(f))
        self._time.append(time)
        self._node.append(self._nodes.code(node))
        self._err.append(self._errors.code(None if error is None else str(error)))
        if is_int64(value):
            self._ival.append(value)
            self._has.append(1)
        else:
            self._ival.append(0)
            self._has.append(0)
            if value is not None:
                self._obj[row] = value

    def append_op(self, op: Op) -> None:
        self.append(op.index, op.process, op.type, op.f, op.value, op.time, op.node, op.error)

    def append_dict(self, d: Mapping[str, Any]) -> None:
        """Append an op record (a decoded JSONL line); ``RecordError`` (a ValueError) if it is malformed."""
        self.append(*op_fields(d))

    def build(self) -> History:
        return History(
            index=np.frombuffer(self._index, dtype=np.int64).copy(),
            process=np.frombuffer(self._process, dtype=np.int64).copy(),
            type=np.frombuffer(self._type, dtype=np.int8).copy(),
            f=np.frombuffer(self._f, dtype=np.int32).copy(),
            time=np.frombuffer(self._time, dtype=np.int64).copy(),
            node=np.frombuffer(self._node, dtype=np.int32).copy(),
            ival=np.frombuffer(self._ival, dtype=np.int64).copy(),
            has_ival=np.frombuffer(self._has, dtype=np.int8).astype(bool),
            error=np.frombuffer(self._err, dtype=np.int32).copy(),
            f_names=tuple(self._fs.names),
            node_names=tuple(self._nodes.names),
            error_names=tuple(self._errors.names),
            objvals=self._obj,
        )


def _as_codes(names: str | Iterable[str] | None, table: Sequence[str]) -> list[int] | None:
    if names is None:
        return None
    if isinstance(names, str):
        names = (names,)
    lookup = {n: i for i, n in enumerate(table)}
    return [lookup[n] for n in names if n in lookup]


def _in_codes(col: np.ndarray, codes: list[int]) -> np.ndarray:
    out: np.ndarray = col == codes[0] if len(codes) == 1 else np.isin(col, np.asarray(codes, dtype=col.dtype))
    return out


class History:
    """A columnar, immutable op history.

    Columns (numpy arrays, one entry per op, in history order):

    * ``index``, ``process``, ``time`` (int64); ``type`` (int8: ``INVOKE``/``OK``/``FAIL``/``INFO``);
    * ``f``, ``node``, ``error`` (int32 codes into ``f_names``, ``node_names``, ``error_names``; -1 = None);
    * ``ival`` (int64) with ``has_ival`` (bool): the value when it is a plain integer;
    * ``objvals``: ``{row: value}`` for every other non-null value (lists, dicts, strings, floats, bools).

    Use ``value(row)`` or ``op(row)`` to get Python objects back; iterate for ``Op`` objects.
    """

    __slots__ = (
        "_completion_of",
        "_has_obj",
        "_invoke_of",
        "error",
        "error_names",
        "f",
        "f_names",
        "has_ival",
        "index",
        "ival",
        "node",
        "node_names",
        "objvals",
        "process",
        "time",
        "type",
    )

    def __init__(
        self,
        *,
        index: np.ndarray,
        process: np.ndarray,
        type: np.ndarray,
        f: np.ndarray,
        time: np.ndarray,
        node: np.ndarray,
        ival: np.ndarray,
        has_ival: np.ndarray,
        error: np.ndarray | None = None,
        f_names: Sequence[str],
        node_names: Sequence[str] = (),
        error_names: Sequence[str] = (),
        objvals: Mapping[int, Any] | None = None,
    ) -> None:
        n = len(index)
        self.index = np.asarray(index, dtype=np.int64)
        self.process = np.asarray(process, dtype=np.int64)
        self.type = np.asarray(type, dtype=np.int8)
        self.f = np.asarray(f, dtype=np.int32)
        self.time = np.asarray(time, dtype=np.int64)
        self.node = np.asarray(node, dtype=np.int32)
        self.ival = np.asarray(ival, dtype=np.int64)
        self.has_ival = np.asarray(has_ival, dtype=bool)
        self.error = np.full(n, -1, dtype=np.int32) if error is None else np.asarray(error, dtype=np.int32)
        for name in ("process", "type", "f", "time", "node", "ival", "has_ival", "error"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"column {name} has {len(getattr(self, name))} entries, expected {n}")
        self.f_names: tuple[str, ...] = tuple(f_names)
        self.node_names: tuple[str, ...] = tuple(node_names)
        self.error_names: tuple[str, ...] = tuple(error_names)
        self.objvals: dict[int, Any] = dict(objvals or {})
        self._invoke_of: np.ndarray | None = None
        self._completion_of: np.ndarray | None = None
        self._has_obj: np.ndarray | None = None

    # -- construction
    @classmethod
    def from_ops(cls, ops: Iterable[Op | Mapping[str, Any]]) -> History:
        b = HistoryBuilder()
        for op in ops:
            if isinstance(op, Op):
                b.append_op(op)
            else:
                b.append_dict(op)
        return b.build()

    @classmethod
    def empty(cls) -> History:
        return HistoryBuilder().build()

    # -- basic access
    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self) -> Iterator[Op]:
        for row in range(len(self)):
            yield self.op(row)

    def __getitem__(self, row: int) -> Op:
        return self.op(row)

    def __repr__(self) -> str:
        return f"History({len(self)} ops, f={list(self.f_names)}, nodes={list(self.node_names)})"

    def value(self, row: int) -> Any:
        if self.has_ival[row]:
            return int(self.ival[row])
        return self.objvals.get(int(row))

    def op(self, row: int) -> Op:
        row = int(row)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(row)
        n, e = int(self.node[row]), int(self.error[row])
        return Op(
            index=int(self.index[row]),
            process=int(self.process[row]),
            type=TYPES[int(self.type[row])],
            f=self.f_names[int(self.f[row])],
            value=self.value(row),
            time=int(self.time[row]),
            node=None if n < 0 else self.node_names[n],
            error=None if e < 0 else self.error_names[e],
        )

    def node_name(self, code: int) -> str | None:
        return None if code < 0 else self.node_names[code]

    def mask(
        self, f: str | Iterable[str] | None = None, type: OpType | Iterable[OpType] | None = None
    ) -> np.ndarray:
        """Boolean row mask selecting ops with one of the given ``f`` names and ``type``\\ s."""
        m = np.ones(len(self), dtype=bool)
        fcodes = _as_codes(f, self.f_names)
        if fcodes is not None:
            m &= _in_codes(self.f, fcodes)
        tcodes = _as_codes(type, TYPES)
        if tcodes is not None:
            m &= _in_codes(self.type, tcodes)
        return m

    def rows(
        self, f: str | Iterable[str] | None = None, type: OpType | Iterable[OpType] | None = None
    ) -> np.ndarray:
        """Row numbers (int64) of the ops ``mask`` selects."""
        return np.flatnonzero(self.mask(f, type))

    def drop_caches(self) -> None:
        """Forget the lazily computed pairing and object mask (benchmarks; after mutating columns)."""
        self._invoke_of = self._completion_of = self._has_obj = None

    @property
    def has_obj(self) -> np.ndarray:
        """Bool column: the row's value is a non-integer, non-null object (in ``objvals``)."""
        if self._has_obj is None:
            m = np.zeros(len(self), dtype=bool)
            if self.objvals:
                m[np.fromiter(self.objvals.keys(), dtype=np.int64, count=len(self.objvals))] = True
            self._has_obj = m
        return self._has_obj

    # -- pairing
    def _pair(self) -> None:
        n = len(self)
        invoke_of = np.full(n, -1, dtype=np.int64)
        completion_of = np.full(n, -1, dtype=np.int64)
        if n:
            proc = self.process - self.process.min()
            shift = max(int(n - 1).bit_length(), 1)
            if int(proc.max()) < (1 << (62 - shift)):
                # one sort of (process, row) packed in an int64; bit ops instead of division
                keys = np.sort((proc << shift) | np.arange(n, dtype=np.int64))
                order = keys & ((1 << shift) - 1)
                sp = keys >> shift
            else:
                order = np.argsort(proc, kind="stable")
                sp = proc[order]
            t = self.type[order]
            pos = np.flatnonzero((sp[1:] == sp[:-1]) & (t[:-1] == INVOKE) & (t[1:] != INVOKE))
            inv, comp = order[pos], order[pos + 1]
            invoke_of[comp] = inv
            completion_of[inv] = comp
        invoke_of.flags.writeable = False
        completion_of.flags.writeable = False
        self._invoke_of, self._completion_of = invoke_of, completion_of

    @property
    def invoke_of(self) -> np.ndarray:
        """For each completion row, the row of its invoke (same process, directly before it); else -1."""
        if self._invoke_of is None:
            self._pair()
        assert self._invoke_of is not None
        return self._invoke_of

    @property
    def completion_of(self) -> np.ndarray:
        """For each invoke row, the row of its completion; -1 for completions and never-completed invokes."""
        if self._completion_of is None:
            self._pair()
        assert self._completion_of is not None
        return self._completion_of

    def pairs(self) -> Iterator[tuple[Op, Op | None]]:
        """(invoke, completion or None) for every invoke, in invoke order."""
        comp = self.completion_of
        for row in np.flatnonzero(self.type == INVOKE):
            c = int(comp[row])
            yield self.op(int(row)), (None if c < 0 else self.op(c))

    def int_values(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer values of ``rows`` as ``(values, present)``.

        A completion without a value of its own (null) takes its invoke's value, as in Jepsen.
        """
        rows = np.asarray(rows, dtype=np.int64)
        vals = self.ival[rows]
        present = self.has_ival[rows].copy()
        missing = ~present & (self.type[rows] != INVOKE)
        if missing.any():
            missing &= ~self.has_obj[rows]
            mrows = rows[missing]
            inv = self.invoke_of[mrows]
            ok = inv >= 0
            src = np.where(ok, inv, 0)
            ok &= self.has_ival[src]
            idx = np.flatnonzero(missing)[ok]
            vals = vals.copy()
            vals[idx] = self.ival[src[ok]]
            present[idx] = True
        return vals, present

    # -- subsets and checks
    def select(self, rows_or_mask: np.ndarray) -> History:
        """A new history with only the given rows (bool mask or row numbers), names kept."""
        sel = np.asarray(rows_or_mask)
        rows = np.flatnonzero(sel) if sel.dtype == bool else np.sort(sel.astype(np.int64))
        obj: dict[int, Any] = {}
        if self.objvals:
            keys = np.fromiter(self.objvals.keys(), dtype=np.int64, count=len(self.objvals))
            pos = np.searchsorted(rows, keys)
            pos_c = np.minimum(pos, max(len(rows) - 1, 0))
            hit = (pos < len(rows)) & (rows[pos_c] == keys) if len(rows) else np.zeros(len(keys), bool)
            for k, p in zip(keys[hit].tolist(), pos[hit].tolist(), strict=True):
                obj[p] = self.objvals[k]
        return History(
            index=self.index[rows],
            process=self.process[rows],
            type=self.type[rows],
            f=self.f[rows],
            time=self.time[rows],
            node=self.node[rows],
            ival=self.ival[rows],
            has_ival=self.has_ival[rows],
            error=self.error[rows],
            f_names=self.f_names,
            node_names=self.node_names,
            error_names=self.error_names,
            objvals=obj,
        )

    def validate(self) -> list[str]:
        """Well-formedness problems (empty list when fine): index order, time order, pairing."""
        problems: list[str] = []
        if len(self) > 1:
            if (np.diff(self.index) <= 0).any():
                problems.append("index is not strictly increasing")
            if (np.diff(self.time) < 0).any():
                problems.append("time goes backwards")
        comp = self.type != INVOKE
        orphans = np.flatnonzero(comp & (self.invoke_of < 0))
        if len(orphans):
            first = int(self.index[orphans[0]])
            problems.append(f"{len(orphans)} completion(s) without an invoke, first index {first}")
        inv = self.type == INVOKE
        bad_f = np.flatnonzero(comp & (self.invoke_of >= 0))
        if len(bad_f):
            io_ = self.invoke_of[bad_f]
            mism = bad_f[self.f[io_] != self.f[bad_f]]
            if len(mism):
                problems.append(f"{len(mism)} completion(s) with a different f than their invoke")
        # a process reused after an info completion
        info_rows = np.flatnonzero(self.type == INFO)
        if len(info_rows) and inv.any():
            last_inv: dict[int, int] = {}
            for r in np.flatnonzero(inv).tolist():
                last_inv[int(self.process[r])] = r
            reused = [r for r in info_rows.tolist() if last_inv.get(int(self.process[r]), -1) > r]
            if reused:
                problems.append(f"{len(reused)} process(es) reused after an info completion")
        return problems

    # -- output
    def iter_dicts(self) -> Iterator[dict[str, Any]]:
        for op in self:
            yield op.to_dict()
