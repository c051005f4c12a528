"""history.jsonl, the op log: ``HistoryWriter`` records ops as they happen; ``read_history`` and
``write_history`` load and store a whole history.

One op per line::

    {"index":0,"process":0,"type":"invoke","f":"add","value":1,"time":123,"node":"n1"}
    {"index":1,"process":0,"type":"info","f":"add","value":1,"time":5123,"node":"n1","error":"timeout"}

(``node`` and ``error`` are left out when null.)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, Literal

from harness.model.clock import Clock, RunClock
from harness.model.history.columns import History, HistoryBuilder
from harness.model.history.jsonl import JsonlAppender, PathLike, dumps, read_records, write_jsonl
from harness.model.history.ops import Op

__all__ = ["HistoryWriter", "read_history", "write_history"]


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
    b = HistoryBuilder()
    for _ in read_records(path, "op", b.append_dict):
        pass
    return b.build()


def write_history(path: PathLike, history: History | Iterable[Op]) -> None:
    write_jsonl(path, (op.to_dict() for op in history))
