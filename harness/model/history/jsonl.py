"""The JSONL files of a run: one JSON object per line, appended as things happen, read back with
``FILE:LINE`` errors.

* ``JsonlAppender``: a thread-safe appender that loses little on a crash (buffered, flushed by count, age
  and a background thread);
* ``iter_jsonl``/``read_records``: read a file back. Bad input raises ``InputError``
  (``history.jsonl:12: not JSON: Expecting ',' delimiter (column 40)``,
  ``history.jsonl:12: op: missing field 'process'``), never a ValueError or KeyError. A torn last line (no
  newline and not JSON: the writer died mid-line) is skipped; any other bad line is an error.

Reading is fast when ``msgspec`` is installed: ``fast_lines`` decodes a whole well-formed file in one call
(one object per line, nothing else on it), and any file it does not take as plainly well-formed (a torn or
blank line, a line that is not one JSON object…) is read again line by line by the exact reader, which
says what is wrong and where. Both give the same objects for every file the fast path accepts.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from time import monotonic_ns as _mono
from typing import IO, Any, TypeAlias, TypeVar

from harness.errors import InputError
from harness.model.history.fields import RecordError

try:  # the fast reader; without it every file is read line by line
    import msgspec
except ImportError:  # pragma: no cover - msgspec is a dependency
    msgspec = None  # type: ignore[assignment]

__all__ = [
    "JsonlAppender",
    "PathLike",
    "dumps",
    "fast_lines",
    "iter_jsonl",
    "json_problem",
    "read_bytes",
    "read_records",
    "write_jsonl",
]

PathLike: TypeAlias = str | os.PathLike[str]
T = TypeVar("T")


def dumps(obj: Any) -> str:
    """The compact JSON of one line (no newline): no spaces, UTF-8 kept, NaN refused."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


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
        line = dumps(obj) + "\n"
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


def write_jsonl(path: PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """Write ``records`` to ``path``, one line each (replacing the file)."""
    with open(path, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(dumps(record) + "\n")


def iter_jsonl(path: PathLike, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line of ``path``; ``what`` names a record in errors ("op").

    Raises ``InputError`` (``FILE:LINE: ...``) for a line that is not UTF-8, not JSON or not an object, and
    for a file that cannot be opened. A torn last line (no newline, unreadable) is skipped.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the with below; open errors reported first
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    with fh:
        prev: tuple[int, bytes] | None = None
        for lineno, raw in enumerate(fh, 1):
            if raw.isspace():
                continue
            if prev is not None:
                yield prev[0], _decode(prev[1], path, prev[0], what)
            prev = (lineno, raw)
    if prev is not None:
        try:
            obj = _decode(prev[1], path, prev[0], what)
        except InputError:
            if prev[1].endswith(b"\n"):
                raise
            return  # torn: the writer died mid-line
        yield prev[0], obj


def json_problem(e: json.JSONDecodeError) -> str:
    """``not JSON: Expecting ',' delimiter (column 40)``: what ``e`` says is wrong, without its line."""
    msg = e.msg.removesuffix(" at")  # "Invalid control character at"
    return f"not JSON: {msg} (column {e.colno})"


def _decode(raw: bytes, path: PathLike, lineno: int, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"{path}:{lineno}: not UTF-8 text (byte {e.start + 1})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{lineno}: {json_problem(e)}") from None
    except RecursionError:
        raise InputError(f"{path}:{lineno}: not JSON: nested too deeply") from None
    if type(obj) is not dict:
        raise InputError(f"{path}:{lineno}: {what}: expected a JSON object, not {type(obj).__name__}")
    return obj


def read_bytes(path: PathLike) -> bytes:
    """The bytes of ``path``; ``InputError`` ``FILE: cannot read: ...`` when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None


def _plain_lines(data: bytes) -> int | None:
    """The number of lines of ``data`` if each may hold exactly one JSON object and nothing else, as far
    as bytes tell: every line starts with ``{`` and ends with ``}`` (no blank line, no carriage return, no
    space around). Else None.

    Why that is enough for ``fast_lines``: JSON strings cannot hold a raw newline, and inside one value a
    ``}`` and a ``{`` are never separated by whitespace alone (a comma must come between), so a newline
    between ``}`` and ``{`` ends a record. With as many decoded records as lines, each line holds one.
    """
    if not data:
        return 0
    terminated = data.endswith(b"}\n")
    if data[:1] != b"{" or not (terminated or data.endswith(b"}")):
        return None
    inner = data.count(b"\n") - terminated  # the newlines between two lines
    if data.count(b"}\n{") != inner:
        return None
    return inner + 1


def fast_lines(data: bytes, decoder: Any) -> list[Any] | None:
    """``decoder.decode_lines(data)`` (a ``msgspec.json.Decoder``) when ``data`` is plainly one JSON object
    per line and every line decodes; None when it is not (or msgspec is absent): then read it line by line,
    which finds what is wrong and where."""
    if msgspec is None:
        return None
    lines = _plain_lines(data)
    if lines is None:
        return None
    try:
        records: list[Any] = decoder.decode_lines(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, OverflowError):
        return None
    return records if len(records) == lines else None


_ANY = msgspec.json.Decoder() if msgspec is not None else None


def read_records(path: PathLike, what: str, parse: Callable[[dict[str, Any]], T]) -> Iterator[T]:
    """``parse(object)`` per line of ``path``; a ``RecordError`` of ``parse`` becomes an ``InputError``
    ``FILE:LINE: what: problem``."""
    objects = fast_lines(read_bytes(path), _ANY)
    if objects is not None and all(type(d) is dict for d in objects):
        try:
            parsed = [parse(d) for d in objects]
        except RecordError:
            pass  # the line-by-line reader below says which line
        else:
            yield from parsed
            return
    for lineno, d in iter_jsonl(path, what):
        try:
            yield parse(d)
        except RecordError as e:
            raise InputError(f"{path}:{lineno}: {what}: {e}") from None
