"""A vectorised reader for history.jsonl as ``HistoryWriter`` writes it: no Python object per op.

Nearly every line of a recorded history has one shape, the one ``HistoryWriter`` writes::

    {"index":N,"process":N,"type":"T","f":"S","value":V,"time":N[,"node":"S"][,"error":"S"]}

with ``V`` an integer or ``null`` and short ASCII strings without escapes. ``read_canonical`` matches every
line against that template with numpy (a fixed window of bytes per field, all lines of a chunk at once):
the integers, type codes and interned names come straight out of the bytes. A line that does not match it
exactly (a list or a string value, a field order of another writer, an escape, a long string, a 19-digit
integer…) is decoded on its own by msgspec, as the general fast path would; a line that msgspec does not
take either makes ``read_canonical`` give up (None), and the exact reader then says which line is wrong.
Both give the same ``History`` as the exact reader for every file they accept (tests check it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from harness.model.history.columns import History
from harness.model.history.fields import INT64_MAX, INT64_MIN
from harness.model.history.ops import TYPE_CODE

__all__ = ["read_canonical"]

CHUNK = 1 << 14  # lines per vectorised step: what a step touches stays in the CPU cache
_DIGITS = 16  # at most this many digits: always within int64 (a longer integer goes through msgspec)
_NAME_W = 32  # f and node: at most 31 bytes (longer goes through msgspec)
_ERROR_W = 64
_PAD = 128
_K = np.uint64(0x9E3779B97F4A7C15)
_TYPES = (b'invoke"', b'ok"', b'fail"', b'info"')
_TYPE_PAT = np.array([list(t.ljust(7, b"\0")) for t in _TYPES], dtype=np.uint8)
_TYPE_MASK = np.array([[j < len(t) for j in range(7)] for t in _TYPES])
_TYPE_LEN = np.array([len(t) for t in _TYPES], dtype=np.int64)
_M1, _M2, _M3 = np.uint64(0x0F0F0F0F0F0F0F0F), np.uint64(0x00FF00FF00FF00FF), np.uint64(0x0000FFFF0000FFFF)
_C1, _C2, _C3 = np.uint64(2561), np.uint64(6553601), np.uint64(42949672960001)
_S8, _S16, _S32 = np.uint64(8), np.uint64(16), np.uint64(32)


class _Bytes:
    """The file's bytes (zero-padded) seen three ways: bytes, windows of bytes, and the 8 bytes (a
    little-endian uint64) at any offset."""

    def __init__(self, data: bytes) -> None:
        self.n = len(data)
        self.buf = np.frombuffer(data, dtype=np.uint8)
        self.words = np.ndarray((max(self.n - 7, 0),), dtype="<u8", buffer=data, strides=(1,))
        self.last = max(self.n - _PAD, 0)  # reads from positions up to here stay within the file

    def window(self, pos: np.ndarray, width: int) -> np.ndarray:
        rows = self.n - width + 1
        view = np.lib.stride_tricks.as_strided(self.buf, shape=(rows, width), strides=(1, 1), writeable=False)
        out: np.ndarray = view[np.minimum(pos, rows - 1)]
        return out

    def literal(self, pos: np.ndarray, lit: bytes) -> np.ndarray:
        """Rows where ``lit`` is at ``pos``."""
        ok = np.ones(len(pos), dtype=bool)
        for k in range(0, len(lit), 8):
            part = lit[k : k + 8]
            mask = np.uint64((1 << (8 * len(part))) - 1)
            ok &= (self.words[np.minimum(pos + k, self.n - 8)] & mask) == np.uint64(
                int.from_bytes(part, "little")
            )
        return ok

    def integer(self, pos: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The JSON integer at ``pos`` (at most 16 digits, no leading zero) and the position after it; rows
        where there is none are cleared in ``ok``."""
        neg = self.buf[np.minimum(pos, self.n - 1)] == 45  # "-"
        start = pos + neg
        d = self.window(start, _DIGITS + 1) - np.uint8(48)  # wraps: a non-digit is >= 10
        length = np.argmin(d < 10, axis=1)  # the first non-digit (0 when none, or all 17 are digits)
        ok &= (length >= 1) & ~((d[:, 0] == 0) & (length > 1))
        end = start + length
        low_len = np.clip(length, 1, 8)
        low = _eight(self.words[np.minimum(end - 8, self.n - 8)], low_len)
        high_len = np.clip(length - 8, 1, 8)
        high = _eight(self.words[np.minimum(end - 16, self.n - 8)], high_len)
        value = np.where(length > 8, high * np.uint64(10**8) + low, low).astype(np.int64)
        return np.where(neg, -value, value), end

    def string(
        self, pos: np.ndarray, ok: np.ndarray, width: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The plain string whose first byte is at ``pos`` (printable ASCII, no escape, shorter than
        ``width``): its bytes zero-padded to ``width``, its length, and the position after its closing
        quote; rows where there is none are cleared in ``ok``."""
        win = self.window(pos, width)
        stop = (win == 34) | (win == 92) | (win < 32) | (win >= 127)
        length = np.argmax(stop, axis=1)
        rows = np.arange(len(pos))
        ok &= stop[rows, length] & (win[rows, length] == 34)
        win[np.arange(width) >= length[:, None]] = 0
        return win, length, pos + length + 1


def _eight(words: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The number written by the last ``length`` (1…8) bytes of each word (ASCII digits; the bytes
    before them are ignored): the SWAR conversion of eight digits at once."""
    shift = (np.uint64(8) * (np.uint64(8) - length.astype(np.uint64))).astype(np.uint64)
    w = (words >> shift) << shift
    w = ((w & _M1) * _C1) >> _S8
    w = ((w & _M2) * _C2) >> _S16
    w = ((w & _M3) * _C3) >> _S32
    return w


class _Names:
    """Names interned by provisional id (any order); ``codes`` then renumbers by first appearance."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def id(self, name: str | None) -> int:
        if name is None:
            return -1
        i = self.ids.get(name)
        if i is None:
            i = self.ids[name] = len(self.ids)
        return i

    def intern(self, win: np.ndarray, length: np.ndarray) -> np.ndarray | None:
        """Provisional ids of the strings in ``win`` (rows of ``_string``: zero-padded, no NUL in a
        string, so equal rows are equal strings), None on a hash collision."""
        out = np.full(len(win), -1, dtype=np.int32)
        lanes = np.ascontiguousarray(win).view(np.uint64)
        rest = np.arange(len(win))
        for _ in range(16):  # a few names, most rows one of them: one exact comparison per name
            if not len(rest):
                return out
            r = int(rest[0])
            same = (lanes[rest] == lanes[r]).all(axis=1)
            out[rest[same]] = self.id(bytes(win[r, : length[r]]).decode("ascii"))
            rest = rest[~same]
        if not len(rest):
            return out
        win, lanes, length = win[rest], lanes[rest], length[rest]
        h = length.astype(np.uint64) * _K
        for j in range(lanes.shape[1]):
            h = (h ^ lanes[:, j]) * _K
        _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
        if not (lanes == lanes[first][inverse.reshape(-1)]).all():
            return None
        table = np.array([self.id(bytes(win[r, : length[r]]).decode("ascii")) for r in first.tolist()],
                         dtype=np.int32)  # fmt: skip
        out[rest] = table[inverse.reshape(-1)]
        return out

    def codes(self, ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """``ids`` renumbered in order of first appearance (-1 kept), and the names in that order."""
        names = list(self.ids)
        present = ids >= 0
        uniq, first = np.unique(ids[present], return_index=True)
        order = uniq[np.argsort(first, kind="stable")]
        remap = np.full(len(names) + 1, -1, dtype=np.int32)
        remap[order] = np.arange(len(order), dtype=np.int32)
        return remap[ids], [names[i] for i in order.tolist()]


def read_canonical(data: bytes, decode_line: Callable[[bytes], Any]) -> History | None:
    """The history of ``data``, or None when it is not plainly one JSON object per line (``jsonl.
    _plain_lines``), a line is not a well-formed op as ``decode_line`` (a typed msgspec decoder's
    ``decode``) takes it, or an integer field is beyond int64: then the exact reader must read it."""
    if len(data) < 2 * _PAD:
        return None  # small: the general fast path is as quick
    b = _Bytes(data)
    buf = b.buf[: b.n]
    step = 1 << 20  # a megabyte at a time: the comparison stays in the CPU cache
    newlines = np.concatenate(
        [np.flatnonzero(buf[at : at + step] == 10) + at for at in range(0, len(buf), step)]
    )
    starts = np.concatenate(([0], newlines + 1)).astype(np.int64)
    ends = np.concatenate((newlines, [len(buf)])).astype(np.int64)
    if buf[-1] == 10:
        starts, ends = starts[:-1], ends[:-1]
    if not ((buf[starts] == 123).all() and (buf[ends - 1] == 125).all()):
        return None  # not plainly one object per line (a blank line, a space or CR around one...)
    n = len(starts)
    cols = {name: np.zeros(n, dtype=np.int64) for name in ("index", "process", "time", "ival")}
    types = np.zeros(n, dtype=np.int8)
    has_ival = np.zeros(n, dtype=bool)
    ids = {name: np.full(n, -1, dtype=np.int32) for name in ("f", "node", "error")}
    names = {name: _Names() for name in ("f", "node", "error")}
    objvals: dict[int, Any] = {}
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        if not _chunk(b, starts[lo:hi], ends[lo:hi], lo, cols, types, has_ival, ids, names):
            return None
    ids["f"][starts > b.last] = -1  # the last lines: windows there would reach past the end of the file
    odd = np.flatnonzero(ids["f"] < 0).tolist()  # every op has an f: -1 marks a line left to msgspec
    for row in odd:
        try:
            r = decode_line(data[starts[row] : ends[row]])
        except Exception:  # any refusal: the exact reader says what is wrong
            return None
        for name in ("index", "process", "time"):
            v = getattr(r, name)
            if not INT64_MIN <= v <= INT64_MAX:
                return None
            cols[name][row] = v
        types[row] = TYPE_CODE[r.type]
        for name in ("f", "node", "error"):
            ids[name][row] = names[name].id(getattr(r, name))
        v = r.value
        is_int = type(v) is int and INT64_MIN <= v <= INT64_MAX
        cols["ival"][row] = v if is_int else 0
        has_ival[row] = is_int
        if not is_int and v is not None:
            objvals[row] = v
    f, f_names = names["f"].codes(ids["f"])
    node, node_names = names["node"].codes(ids["node"])
    error, error_names = names["error"].codes(ids["error"])
    return History(index=cols["index"], process=cols["process"], type=types, f=f, time=cols["time"],
                   node=node, ival=cols["ival"], has_ival=has_ival, error=error, f_names=f_names,
                   node_names=node_names, error_names=error_names, objvals=objvals)  # fmt: skip


def _chunk(
    b: _Bytes,
    start: np.ndarray,
    end: np.ndarray,
    lo: int,
    cols: dict[str, np.ndarray],
    types: np.ndarray,
    has_ival: np.ndarray,
    ids: dict[str, np.ndarray],
    names: dict[str, _Names],
) -> bool:
    """Fill rows ``lo…`` of the lines that match the template (the others keep f = -1); False on a hash
    collision of names (then the whole file goes through msgspec)."""
    ok = b.literal(start, b'{"index":')
    index, pos = b.integer(start + 9, ok)
    ok &= b.literal(pos, b',"process":')
    process, pos = b.integer(pos + 11, ok)
    ok &= b.literal(pos, b',"type":"')
    pos = pos + 9
    win = b.window(pos, 7)
    code = np.where(win[:, 0] == ord("o"), 1, np.where(win[:, 0] == ord("f"), 2,
                    np.where(win[:, 2] == ord("v"), 0, 3)))  # fmt: skip
    ok &= ((win == _TYPE_PAT[code]) | ~_TYPE_MASK[code]).all(axis=1)
    pos = pos + _TYPE_LEN[code]
    ok &= b.literal(pos, b',"f":"')
    f_win, f_len, pos = b.string(pos + 6, ok, _NAME_W)
    ok &= b.literal(pos, b',"value":')
    pos = pos + 9
    null = b.literal(pos, b"null")
    int_ok = ok & ~null
    ival, ipos = b.integer(pos, int_ok)
    ok &= null | int_ok
    pos = np.where(null, pos + 4, ipos)
    ok &= b.literal(pos, b',"time":')
    time, pos = b.integer(pos + 8, ok)
    optional = {}
    for name, lit, width in (("node", b',"node":"', _NAME_W), ("error", b',"error":"', _ERROR_W)):
        there = np.flatnonzero(ok & b.literal(pos, lit))
        s_ok = np.ones(len(there), dtype=bool)
        win, length, after = b.string(pos[there] + len(lit), s_ok, width)
        ok[there[~s_ok]] = False
        pos[there] = after
        optional[name] = (there[s_ok], win[s_ok], length[s_ok])
    ok &= pos == end - 1  # the closing brace, and nothing after it
    rows = np.flatnonzero(ok)
    at = rows + lo
    cols["index"][at] = index[rows]
    cols["process"][at] = process[rows]
    cols["time"][at] = time[rows]
    cols["ival"][at] = np.where(null[rows], 0, ival[rows])
    has_ival[at] = ~null[rows]
    types[at] = code[rows]
    f_ids = names["f"].intern(f_win[rows], f_len[rows])
    if f_ids is None:
        return False
    ids["f"][at] = f_ids
    for name, (there, win, length) in optional.items():
        keep = ok[there]
        got = names[name].intern(win[keep], length[keep])
        if got is None:
            return False
        ids[name][there[keep] + lo] = got
    return True
