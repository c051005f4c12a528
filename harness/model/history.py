"""Histories, fault events and probe samples: the data a run records and the checkers read.

An operation history follows Jepsen's model. A client process *invokes* an op, then *completes* it with the
same process id and one of three outcomes:

* ``ok``: it happened;
* ``fail``: it certainly did not happen (the client knows, e.g. a constraint violation before commit);
* ``info``: indeterminate (timeout, connection lost before the ack). The op may or may not have happened,
  and may still happen later. The process that issued it is *retired*: its next op uses a fresh process id
  (``HistoryWriter.next_process``), so each process has at most one op in flight.

All times are ``int`` nanoseconds since run start (see ``harness.model.clock``).

On disk a history is JSONL, one op per line::

    {"index": 0, "process": 0, "type": "invoke", "f": "add", "value": 1, "time": 123, "node": "n1"}
    {"index": 1, "process": 0, "type": "info", "f": "add", "value": 1, "time": 5123, "node": "n1",
     "error": "timeout"}

(``node`` and ``error`` are left out when null.) In memory it is a columnar ``History`` (numpy arrays plus
interned names) so that checkers handle 10^7 ops in seconds. ``to_edn``/``write_edn`` export Jepsen's EDN
history format for Elle and Knossos.

Fault windows are ``Event`` records (events.jsonl) and probe readings are ``Sample`` records (samples.jsonl).
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import re
import threading
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import monotonic_ns as _mono
from typing import IO, Any, Literal, TypeAlias

import numpy as np

from harness.model.clock import Clock, RunClock

__all__ = [
    "FAIL",
    "INFO",
    "INVOKE",
    "OK",
    "TYPES",
    "Event",
    "EventWriter",
    "History",
    "HistoryBuilder",
    "HistoryWriter",
    "JsonlAppender",
    "Op",
    "OpType",
    "Sample",
    "SampleWriter",
    "edn",
    "read_events",
    "read_history",
    "read_samples",
    "to_edn",
    "write_edn",
    "write_events",
    "write_history",
    "write_samples",
]

OpType: TypeAlias = Literal["invoke", "ok", "fail", "info"]
TYPES: tuple[OpType, ...] = ("invoke", "ok", "fail", "info")
INVOKE, OK, FAIL, INFO = 0, 1, 2, 3
_TYPE_CODE: dict[str, int] = {t: i for i, t in enumerate(TYPES)}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

PathLike: TypeAlias = str | os.PathLike[str]


# --------------------------------------------------------------------------------------------------- Op
@dataclass(frozen=True, slots=True)
class Op:
    """One history entry. ``value`` must be JSON-serialisable; ``time`` is ns since run start."""

    index: int
    process: int
    type: OpType
    f: str
    value: Any = None
    time: int = 0
    node: str | None = None
    error: str | None = None

    @property
    def is_invoke(self) -> bool:
        return self.type == "invoke"

    @property
    def is_completion(self) -> bool:
        return self.type != "invoke"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "process": self.process,
            "type": self.type,
            "f": self.f,
            "value": self.value,
            "time": self.time,
        }
        if self.node is not None:
            d["node"] = self.node
        if self.error is not None:
            d["error"] = self.error
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Op:
        t = d["type"]
        if t not in _TYPE_CODE:
            raise ValueError(f"bad op type {t!r}")
        return cls(
            index=int(d["index"]),
            process=int(d["process"]),
            type=t,
            f=str(d["f"]),
            value=d.get("value"),
            time=int(d.get("time", 0)),
            node=d.get("node"),
            error=d.get("error"),
        )


# ---------------------------------------------------------------------------------------------- History
def _is_int64(v: Any) -> bool:
    return type(v) is int and _INT64_MIN <= v <= _INT64_MAX


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
        code = _TYPE_CODE.get(type)
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
        if _is_int64(value):
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
        self.append(
            int(d["index"]),
            int(d["process"]),
            d["type"],
            str(d["f"]),
            d.get("value"),
            int(d.get("time", 0)),
            d.get("node"),
            d.get("error"),
        )

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

    def f_code(self, name: str) -> int:
        """The code of ``f`` name, or -1 if no op has that f."""
        try:
            return self.f_names.index(name)
        except ValueError:
            return -1

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


# ------------------------------------------------------------------------------------------------ JSONL
def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@functools.lru_cache(maxsize=4096)
def _json_str(s: str) -> str:
    return _dumps(s)


def _op_line(op: Op) -> str:
    """``_dumps(op.to_dict()) + "\\n"``, with a fast path for the common op (an int or no value, no error):
    a client records two lines per op, and the general encoder was most of the recording cost."""
    v = op.value
    if op.error is None and (v is None or type(v) is int):
        node = "" if op.node is None else f',"node":{_json_str(op.node)}'
        value = "null" if v is None else str(v)
        return (f'{{"index":{op.index},"process":{op.process},"type":"{op.type}","f":{_json_str(op.f)},'
                f'"value":{value},"time":{op.time}{node}}}\n')  # fmt: skip
    return _dumps(op.to_dict()) + "\n"


class JsonlAppender:
    """Thread-safe JSONL appender that loses little on a crash.

    Lines are buffered and flushed every ``flush_lines`` lines, whenever a write finds the last flush older
    than ``flush_interval_s``, by a background thread at that interval (``background=True``), and on
    ``close()``.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        flush_interval_s: float = 0.1,
        flush_lines: int = 1000,
        background: bool = True,
        append: bool = False,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = open(  # noqa: SIM115 - closed in close()
            self.path, "a" if append else "w", encoding="utf-8", buffering=1 << 20
        )
        self.lock = threading.RLock()
        self._interval_ns = int(flush_interval_s * 1e9)
        self._flush_lines = flush_lines
        self._pending = 0
        self._last_flush = _mono()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background and flush_interval_s > 0:
            self._thread = threading.Thread(
                target=self._flusher, name=f"jsonl-flush:{self.path.name}", daemon=True
            )
            self._thread.start()

    def _flusher(self) -> None:
        while not self._stop.wait(self._interval_ns / 1e9):
            with self.lock:
                if self._pending and self._fh is not None:
                    self._flush_locked()

    def _flush_locked(self) -> None:
        assert self._fh is not None
        self._fh.flush()
        self._pending = 0
        self._last_flush = _mono()

    def write(self, obj: Any) -> None:
        line = _dumps(obj) + "\n"
        with self.lock:
            self.write_line_locked(line)

    def write_line_locked(self, line: str) -> None:
        """Append a ready line (ending in ``\\n``); caller holds ``lock``."""
        if self._fh is None:
            raise ValueError(f"{self.path} is closed")
        self._fh.write(line)
        self._pending += 1
        if self._pending >= self._flush_lines or _mono() - self._last_flush >= self._interval_ns:
            self._flush_locked()

    def flush(self) -> None:
        with self.lock:
            if self._fh is not None:
                self._flush_locked()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self.lock:
            if self._fh is not None:
                self._fh.flush()
                self._fh.close()
                self._fh = None

    @property
    def closed(self) -> bool:
        return self._fh is None


def _iter_jsonl(path: PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line. A torn last line (crash mid-write) is skipped."""
    with open(path, encoding="utf-8") as fh:
        prev: tuple[int, str] | None = None
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if prev is not None:
                yield prev[0], _loads(prev[1], path, prev[0])
            prev = (lineno, line)
        if prev is not None:
            try:
                yield prev[0], _loads(prev[1], path, prev[0])
            except ValueError:
                if prev[1].endswith("\n"):
                    raise


def _loads(line: str, path: PathLike, lineno: int) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{lineno}: not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}:{lineno}: expected a JSON object")
    return obj


class _Unset:
    pass


_UNSET: Any = _Unset()


class HistoryWriter:
    """Records ops as they happen. Thread-safe; one instance per run.

    ``invoke`` and ``complete`` assign increasing ``index``, stamp ``time`` from ``clock`` and append a JSONL
    line, all under one lock, so file order = index order = time order. Nothing is kept in memory unless
    ``keep=True`` (then ``history()`` returns what was written).

    Process ids: a process has at most one op in flight; after an ``info`` completion it is retired and
    ``next_process(p)`` gives a fresh id to use instead. Fresh ids come from one counter, so they never
    collide: ``concurrency=N`` reserves 0..N-1 for the N workers (fresh ids start at N); otherwise take every
    id from ``new_process()``. An id passed to ``invoke`` beyond the counter moves the counter past it.
    """

    def __init__(
        self,
        path: PathLike,
        clock: Clock | None = None,
        *,
        concurrency: int = 0,
        keep: bool = False,
        flush_interval_s: float = 0.1,
        flush_lines: int = 1000,
        background_flush: bool = True,
    ) -> None:
        self.clock: Clock = clock if clock is not None else RunClock()
        self._out = JsonlAppender(
            path, flush_interval_s=flush_interval_s, flush_lines=flush_lines, background=background_flush
        )
        self.path = self._out.path
        self._lock = self._out.lock
        self._next_index = 0
        self._outstanding: dict[int, Op] = {}
        self._retired: set[int] = set()
        self._next_process = max(concurrency, 0)
        self._kept: list[Op] | None = [] if keep else None

    # -- process ids
    def retired(self, process: int) -> bool:
        with self._lock:
            return process in self._retired

    def next_process(self, process: int) -> int:
        """``process`` itself if it may invoke again, otherwise a fresh id (``new_process()``)."""
        with self._lock:
            return process if process not in self._retired else self.new_process()

    def new_process(self) -> int:
        """A process id never handed out or used before."""
        with self._lock:
            p = self._next_process
            self._next_process += 1
            return p

    @property
    def in_flight(self) -> dict[int, Op]:
        with self._lock:
            return dict(self._outstanding)

    # -- recording
    def _emit(self, op: Op, line: str) -> None:
        self._out.write_line_locked(line)
        if self._kept is not None:
            self._kept.append(op)

    def invoke(self, process: int, f: str, value: Any = None, node: str | None = None) -> Op:
        with self._lock:
            if process in self._retired:
                raise ValueError(f"process {process} is retired (an op of it ended info); use next_process()")
            if process in self._outstanding:
                raise ValueError(f"process {process} already has an op in flight")
            op = Op(self._next_index, process, "invoke", f, value, self.clock.now(), node, None)
            line = _op_line(op)  # may raise (value not JSON): before any state changes
            self._next_index += 1
            if process >= self._next_process:
                self._next_process = process + 1
            self._outstanding[process] = op
            self._emit(op, line)
            return op

    def complete(
        self,
        invoke_op: Op,
        type: Literal["ok", "fail", "info"],
        value: Any = _UNSET,
        error: str | None = None,
        node: str | None = _UNSET,
    ) -> Op:
        """Complete ``invoke_op``. ``value`` and ``node`` default to the invoke's."""
        if type not in ("ok", "fail", "info"):
            raise ValueError(f"completion type must be ok, fail or info, not {type!r}")
        with self._lock:
            p = invoke_op.process
            if self._outstanding.get(p) is not invoke_op:
                raise ValueError(f"op {invoke_op.index} of process {p} is not in flight")
            op = Op(
                self._next_index,
                p,
                type,
                invoke_op.f,
                invoke_op.value if value is _UNSET else value,
                self.clock.now(),
                invoke_op.node if node is _UNSET else node,
                None if error is None else str(error),
            )
            line = _op_line(op)  # may raise (value not JSON): the op stays in flight
            del self._outstanding[p]
            self._next_index += 1
            if type == "info":
                self._retired.add(p)
            self._emit(op, line)
            return op

    def ok(self, invoke_op: Op, value: Any = _UNSET) -> Op:
        return self.complete(invoke_op, "ok", value)

    def fail(self, invoke_op: Op, error: str | None = None, value: Any = _UNSET) -> Op:
        return self.complete(invoke_op, "fail", value, error)

    def info(self, invoke_op: Op, error: str | None = None, value: Any = _UNSET) -> Op:
        return self.complete(invoke_op, "info", value, error)

    def history(self) -> History:
        """What was written (needs ``keep=True``)."""
        if self._kept is None:
            raise ValueError("HistoryWriter(keep=False) keeps no ops; use read_history(path)")
        with self._lock:
            return History.from_ops(list(self._kept))

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        self._out.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_history(path: PathLike) -> History:
    """Load a JSONL history written by ``HistoryWriter`` (or ``write_history``)."""
    b = HistoryBuilder()
    for lineno, d in _iter_jsonl(path):
        try:
            b.append_dict(d)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}:{lineno}: bad op: {e!r}") from None
    return b.build()


def write_history(path: PathLike, history: History | Iterable[Op]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for op in history:
            fh.write(_dumps(op.to_dict()) + "\n")


# ------------------------------------------------------------------------------------- events & samples
@dataclass(frozen=True, slots=True)
class Event:
    """A fault window: the fault was in effect from ``start`` until ``end`` (ns since run start).

    ``end`` is None when the fault was never healed. ``mechanism`` names what applied it
    ("iptables", "toxiproxy", "signal", "docker"); ``target`` the node(s) or link(s).
    """

    id: str
    name: str
    mechanism: str
    target: str | tuple[str, ...]
    detail: Mapping[str, Any]
    start: int
    end: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.target, list):
            object.__setattr__(self, "target", tuple(self.target))
        if self.end is not None and self.end < self.start:
            raise ValueError(f"event {self.id}: end {self.end} before start {self.start}")

    @property
    def healed(self) -> bool:
        return self.end is not None

    def active_at(self, t: int) -> bool:
        return self.start <= t and (self.end is None or t < self.end)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "mechanism": self.mechanism,
            "target": self.target if isinstance(self.target, str) else list(self.target),
            "detail": dict(self.detail),
            "start": self.start,
            "end": self.end,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Event:
        target = d.get("target", "")
        return cls(
            id=str(d["id"]),
            name=str(d["name"]),
            mechanism=str(d.get("mechanism", "")),
            target=target if isinstance(target, str) else tuple(target),
            detail=dict(d.get("detail") or {}),
            start=int(d["start"]),
            end=None if d.get("end") is None else int(d["end"]),
        )


@dataclass(frozen=True, slots=True)
class Sample:
    """One probe reading: ``metric`` of ``node`` at ``time`` (ns since run start)."""

    time: int
    node: str
    metric: str
    value: float | str

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "node": self.node, "metric": self.metric, "value": self.value}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Sample:
        v = d["value"]
        if not isinstance(v, str):
            v = float(v)
        return cls(time=int(d["time"]), node=str(d["node"]), metric=str(d["metric"]), value=v)


class EventWriter:
    """Records fault windows as they open and close (events.jsonl). Thread-safe.

    ``start`` writes the event with ``end: null``; ``end`` writes it again with its end. ``read_events`` keeps
    the last line per id, so a crash mid-fault leaves an unhealed event on disk rather than nothing.
    """

    def __init__(self, path: PathLike, clock: Clock | None = None) -> None:
        self.clock: Clock = clock if clock is not None else RunClock()
        self._out = JsonlAppender(path, flush_lines=1)
        self._seq = 0

    def start(
        self,
        name: str,
        mechanism: str,
        target: str | Sequence[str],
        detail: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        time: int | None = None,
    ) -> Event:
        with self._out.lock:
            self._seq += 1
            ev = Event(
                id=id if id is not None else f"{name}-{self._seq}",
                name=name,
                mechanism=mechanism,
                target=target if isinstance(target, str) else tuple(target),
                detail=dict(detail or {}),
                start=self.clock.now() if time is None else time,
                end=None,
            )
            self._out.write(ev.to_dict())
            return ev

    def end(self, event: Event, *, time: int | None = None) -> Event:
        with self._out.lock:
            ev = Event(
                event.id,
                event.name,
                event.mechanism,
                event.target,
                event.detail,
                event.start,
                self.clock.now() if time is None else time,
            )
            self._out.write(ev.to_dict())
            return ev

    def close(self) -> None:
        self._out.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SampleWriter:
    """Records probe samples (samples.jsonl). Thread-safe."""

    def __init__(self, path: PathLike, clock: Clock | None = None, **flush: Any) -> None:
        self.clock: Clock = clock if clock is not None else RunClock()
        self._out = JsonlAppender(path, **flush)

    def record(self, node: str, metric: str, value: float | str, *, time: int | None = None) -> Sample:
        s = Sample(self.clock.now() if time is None else time, node, metric, value)
        self._out.write(s.to_dict())
        return s

    def close(self) -> None:
        self._out.close()

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_events(path: PathLike, events: Iterable[Event]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for ev in events:
            fh.write(_dumps(ev.to_dict()) + "\n")


def read_events(path: PathLike) -> list[Event]:
    """Events from events.jsonl, the last line per id winning, sorted by (start, id)."""
    by_id: dict[str, Event] = {}
    for lineno, d in _iter_jsonl(path):
        try:
            ev = Event.from_dict(d)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}:{lineno}: bad event: {e!r}") from None
        by_id[ev.id] = ev
    return sorted(by_id.values(), key=lambda e: (e.start, e.id))


def write_samples(path: PathLike, samples: Iterable[Sample]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(_dumps(s.to_dict()) + "\n")


def read_samples(path: PathLike) -> list[Sample]:
    out: list[Sample] = []
    for lineno, d in _iter_jsonl(path):
        try:
            out.append(Sample.from_dict(d))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}:{lineno}: bad sample: {e!r}") from None
    return out


# -------------------------------------------------------------------------------------------------- EDN
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


def _op_edn(op: Op) -> str:
    parts = [
        f":index {op.index}",
        f":type :{op.type}",
        f":process {op.process}",
        f":f {_edn_keyword(op.f)}",
        f":value {edn(op.value)}",
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
