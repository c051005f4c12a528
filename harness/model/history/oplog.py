"""history.jsonl, the op log: ``HistoryWriter`` records ops as they happen; ``read_history`` and
``write_history`` load and store a whole history.

One op per line::

    {"index":0,"process":0,"type":"invoke","f":"add","value":1,"time":123,"node":"n1"}
    {"index":1,"process":0,"type":"info","f":"add","value":1,"time":5123,"node":"n1","error":"timeout"}

(``node`` and ``error`` are left out when null.)

``read_history`` reads a file of lines as ``HistoryWriter`` writes them without a Python object per op
(``canonical.read_canonical``: numpy over the bytes, any other line decoded by msgspec on its own; 10^6
ops in about 0.6 s), else decodes a well-formed file in one msgspec call into typed records; a file it does
not take as well-formed is read line by line by the exact reader, so a bad line is still ``FILE:LINE: what
is wrong`` and a torn last line is still skipped. Reading the same file again, unchanged, in the same
process returns the history already built; and a columnar cache beside the file (``history.columns.npz``)
is loaded instead of decoding when it is stamped with the file's exact bytes (size and SHA-1). The first
decode of a history of ``CACHE_MIN_BYTES`` or more writes that cache (so the next ``harness check`` or
``report`` loads it); ``write_history_cache`` writes it for any history (the run's report does).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import itertools
import operator
import os
import threading
from collections.abc import Iterable, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.model.clock import Clock, RunClock
from harness.model.history.canonical import read_canonical
from harness.model.history.columns import History, HistoryBuilder
from harness.model.history.fields import INT64_MAX, INT64_MIN
from harness.model.history.jsonl import (
    JsonlAppender,
    PathLike,
    dumps,
    fast_lines,
    msgspec,
    read_bytes,
    read_records,
    write_jsonl,
)
from harness.model.history.ops import TYPE_CODE, Op

__all__ = ["HistoryWriter", "cache_path", "read_history", "write_history", "write_history_cache"]


@functools.lru_cache(maxsize=4096)
def _json_str(s: str) -> str:
    return dumps(s)


def _op_line(op: Op) -> str:
    """``dumps(op.to_dict()) + "\\n"``, with a fast path for the common op (an int or no value, no error):
    a client records two lines per op, and the general encoder was most of the recording cost."""
    v = op.value
    if op.error is None and (v is None or type(v) is int):
        node = "" if op.node is None else f',"node":{_json_str(op.node)}'
        value = "null" if v is None else str(v)
        return (f'{{"index":{op.index},"process":{op.process},"type":"{op.type}","f":{_json_str(op.f)},'
                f'"value":{value},"time":{op.time}{node}}}\n')  # fmt: skip
    return dumps(op.to_dict()) + "\n"


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
    """Load a JSONL history written by ``HistoryWriter`` (or ``write_history``).

    Raises ``InputError`` ``FILE:LINE: ...`` for a line that is not JSON or not a well-formed op.
    """
    data = read_bytes(path)
    key = os.path.realpath(path)
    with _LAST_LOCK:
        if _LAST and _LAST[0][0] == key and _LAST[0][1] == data:
            return _LAST[0][2]
    stamp = _stamp(data)
    history = _read_cache(cache_path(path), stamp)
    decoded = history is None
    if history is None:
        history = _read_fast(data)
    if history is None:
        b = HistoryBuilder()
        for _ in read_records(path, "op", b.append_dict):
            pass
        history = b.build()
    with _LAST_LOCK:
        _LAST[:] = [(key, data, history, stamp)]
    if (
        decoded and msgspec is not None and len(data) >= CACHE_MIN_BYTES
    ):  # decoded once: the next command (or the report) loads the columns
        with contextlib.suppress(OSError):  # a read-only run directory goes without
            _write_cache(cache_path(path), stamp, history)
    return history


# -- the columnar cache ---------------------------------------------------------------------------------
CACHE_VERSION = 1
CACHE_MIN_BYTES = 1 << 20  # smaller histories decode in milliseconds: no cache file beside them


def cache_path(path: PathLike) -> Path:
    """Where the columnar cache of a history file lives: ``history.jsonl`` → ``history.columns.npz``."""
    p = Path(path)
    return p.with_name(p.name.removesuffix(".jsonl") + ".columns.npz")


def _stamp(data: bytes) -> dict[str, Any]:
    return {"version": CACHE_VERSION, "size": len(data), "sha1": hashlib.sha1(data).hexdigest()}


def write_history_cache(path: PathLike) -> Path | None:
    """Store the columns of the history in ``path`` beside it (``cache_path``), stamped with the size and
    SHA-1 of the file's bytes: ``read_history`` then loads them instead of decoding the file, as long as
    the file is byte for byte the same (any change, and the cache is ignored). Returns the cache's path, or
    None when it was not written (msgspec absent, or a value JSON cannot carry exactly, such as NaN)."""
    if msgspec is None:
        return None
    key = os.path.realpath(path)
    with _LAST_LOCK:
        last = _LAST[0] if _LAST and _LAST[0][0] == key else None
    if last is None:
        read_history(path)
        with _LAST_LOCK:
            last = _LAST[0]
    # the bytes and the history built from them, as read last (a consistent pair)
    history, stamp = last[2], last[3]
    target = cache_path(path)
    if _cache_stamp(target) == stamp:
        return target  # already there
    return target if _write_cache(target, stamp, history) else None


def _write_cache(target: Path, stamp: dict[str, Any], history: History) -> bool:
    """Store ``history``'s columns at ``target`` stamped with ``stamp``; False when a value cannot be
    stored exactly (JSON cannot carry it, such as NaN)."""
    assert msgspec is not None
    rows = np.fromiter(history.objvals.keys(), dtype=np.int64, count=len(history.objvals))
    values = list(history.objvals.values())
    try:
        encoded = msgspec.json.encode(values)
        if msgspec.json.decode(encoded) != values:
            return False
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError, msgspec.DecodeError):
        return False
    meta = {**stamp, "f_names": list(history.f_names), "node_names": list(history.node_names),
            "error_names": list(history.error_names)}  # fmt: skip
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.frombuffer(msgspec.json.encode(meta), dtype=np.uint8),
                     obj_rows=rows, obj_json=np.frombuffer(encoded, dtype=np.uint8),
                     **{name: getattr(history, name) for name in _CACHED_COLUMNS})  # fmt: skip
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return True


_CACHED_COLUMNS = ("index", "process", "type", "f", "time", "node", "ival", "has_ival", "error")


def _cache_stamp(path: Path) -> dict[str, Any] | None:
    """The stamp of the cache at ``path``, None when there is none (or it is unreadable)."""
    if msgspec is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = msgspec.json.decode(z["meta"].tobytes())
        return {k: meta.get(k) for k in ("version", "size", "sha1")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, msgspec.DecodeError):
        return None


def _read_cache(path: Path, stamp: dict[str, Any] | bytes) -> History | None:
    """The history stored in the cache at ``path`` if it is there, whole, and stamped with ``stamp`` (the
    ``_stamp`` of the history file's bytes, or those bytes)."""
    if msgspec is None or not path.is_file():
        return None
    if isinstance(stamp, bytes):
        stamp = _stamp(stamp)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = msgspec.json.decode(z["meta"].tobytes())
            if {k: meta.get(k) for k in ("version", "size", "sha1")} != stamp:
                return None
            columns = {name: z[name] for name in _CACHED_COLUMNS}
            rows = z["obj_rows"].tolist()
            values = msgspec.json.decode(z["obj_json"].tobytes())
        return History(**columns, f_names=meta["f_names"], node_names=meta["node_names"],
                       error_names=meta["error_names"], objvals=dict(zip(rows, values, strict=True)))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError, msgspec.DecodeError):  # broken: decode
        return None


# The last history read, by path and exact content: a run's checks and then its report read the same
# file in one process, and the second read is then a comparison of bytes, not a decode. (A History is
# immutable: sharing it is safe.)
_LAST: list[tuple[str, bytes, History, dict[str, Any]]] = []
_LAST_LOCK = threading.Lock()


if msgspec is not None:

    class _OpRecord(msgspec.Struct, gc=False):
        """An op line as ``op_fields`` takes it: the same required fields, types and defaults (unknown
        fields ignored); an int of any size here, int64 checked when the columns are built."""

        index: int
        process: int
        type: Literal["invoke", "ok", "fail", "info"]
        f: str
        value: Any = None
        time: int = 0
        node: str | None = None
        error: str | None = None

    _OP_DECODER: Any = msgspec.json.Decoder(_OpRecord)


def _read_fast(data: bytes) -> History | None:
    """The history of ``data`` decoded in one go, or None when the exact reader must read it (not plainly
    one op per line, a field missing or of the wrong type, an integer beyond int64)."""
    if msgspec is None:
        return None
    enabled = gc.isenabled()
    gc.disable()  # a million small objects: the collector would walk them again and again
    try:
        history = read_canonical(data, _OP_DECODER.decode)
        if history is not None:
            return history
        records = fast_lines(data, _OP_DECODER)
        if records is None:
            return None
        return _columns(records)
    except OverflowError:  # index, process or time beyond int64: the exact reader says which line
        return None
    finally:
        if enabled:
            gc.enable()


def _codes(values: list[Any], nullable: bool) -> tuple[np.ndarray, list[str]]:
    """Interned codes of ``values`` (in order of first appearance, as ``HistoryBuilder`` numbers them;
    None is -1) and the names."""
    names = [v for v in dict.fromkeys(values) if v is not None] if nullable else list(dict.fromkeys(values))
    table: dict[Any, int] = {name: i for i, name in enumerate(names)}
    if nullable:
        table[None] = -1
    return np.fromiter(map(table.__getitem__, values), dtype=np.int32, count=len(values)), names


def _int64(records: Sequence[Any], name: str) -> np.ndarray:
    return np.fromiter(map(attrgetter(name), records), dtype=np.int64, count=len(records))


def _columns(records: list[Any]) -> History:
    n = len(records)
    types = np.fromiter(map(TYPE_CODE.__getitem__, map(attrgetter("type"), records)), dtype=np.int8, count=n)
    f, f_names = _codes(list(map(attrgetter("f"), records)), nullable=False)
    node, node_names = _codes(list(map(attrgetter("node"), records)), nullable=True)
    error, error_names = _codes(list(map(attrgetter("error"), records)), nullable=True)
    values = list(map(attrgetter("value"), records))
    flags = list(map(operator.is_, map(type, values), itertools.repeat(int)))  # type(v) is int, in C
    is_int = np.array(flags, dtype=bool)
    ival = np.zeros(n, dtype=np.int64)
    try:
        ival[is_int] = np.fromiter(itertools.compress(values, flags), dtype=np.int64)
    except OverflowError:  # an integer value beyond int64 is an object value, as HistoryBuilder keeps it
        for row in np.flatnonzero(is_int).tolist():
            v = values[row]
            if INT64_MIN <= v <= INT64_MAX:
                ival[row] = v
            else:
                is_int[row] = False
    objvals: dict[int, Any] = {}
    for row in np.flatnonzero(~is_int).tolist():
        v = values[row]
        if v is not None:
            objvals[row] = v
    return History(
        index=_int64(records, "index"),
        process=_int64(records, "process"),
        type=types,
        f=f,
        time=_int64(records, "time"),
        node=node,
        ival=ival,
        has_ival=is_int,
        error=error,
        f_names=f_names,
        node_names=node_names,
        error_names=error_names,
        objvals=objvals,
    )


def write_history(path: PathLike, history: History | Iterable[Op]) -> None:
    write_jsonl(path, (op.to_dict() for op in history))
