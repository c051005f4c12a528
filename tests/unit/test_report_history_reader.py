"""The fast history reader the reports rely on (msgspec, one decode per file) gives exactly what the
line-by-line reader gives, hands every file it does not take as plainly well-formed to that reader (so
errors still name FILE:LINE), and the columnar cache beside a history is used only while the file is
byte for byte the one it was made from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.errors import InputError
from harness.model.history import History, HistoryBuilder, oplog, read_events, read_history, read_samples
from harness.model.history.jsonl import iter_jsonl
from tests.unit.test_compare import STORED


@pytest.fixture(autouse=True)
def forget_last_read() -> None:
    oplog._LAST.clear()


def slow(path: Path) -> History:
    b = HistoryBuilder()
    for _, d in iter_jsonl(path, "op"):
        b.append_dict(d)
    return b.build()


def same(a: History, b: History) -> None:
    for name in ("index", "process", "type", "f", "time", "node", "ival", "has_ival", "error"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
    assert (a.f_names, a.node_names, a.error_names) == (b.f_names, b.node_names, b.error_names)
    assert a.objvals == b.objvals
    assert [type(v) for v in a.objvals.values()] == [type(v) for v in b.objvals.values()]


LINES = [
    {"index": 0, "process": 0, "type": "invoke", "f": "add", "value": 1, "time": 10, "node": "n2"},
    {"index": 1, "process": 0, "type": "ok", "f": "add", "value": None, "time": 20, "node": "n2"},
    {"index": 2, "process": 1, "type": "invoke", "f": "transfer", "value": {"from": 0, "to": 1, "amount": 5},
     "time": 30},
    {"index": 3, "process": 1, "type": "info", "f": "transfer", "value": 2**70, "time": 40, "error": "timeout"},
    {"index": 4, "process": 2, "type": "invoke", "f": "read", "value": True, "time": 50, "node": "n1", "x": [1]},
    {"index": 5, "process": 2, "type": "ok", "f": "read", "value": [3, 1, [2]], "time": 60, "node": "n1"},
    {"index": 6, "process": 3, "type": "fail", "f": "add", "value": 1.5, "node": None, "error": None},
    {"index": 7, "process": 3, "type": "ok", "f": "add", "value": "text é", "time": -2**63},
]  # fmt: skip


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_bytes("".join(lines).encode())
    return path


def test_fast_path_equals_the_exact_reader_on_the_stored_run() -> None:
    path = STORED / "history.jsonl"
    fast = oplog._read_fast(path.read_bytes())
    assert fast is not None
    same(fast, slow(path))


def test_fast_path_equals_the_exact_reader_on_every_kind_of_value(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "h.jsonl", [json.dumps(d, separators=(",", ":"), ensure_ascii=False) + "\n"
                                              for d in LINES])  # fmt: skip
    fast = oplog._read_fast(path.read_bytes())
    assert fast is not None  # plainly one op per line: taken
    same(fast, slow(path))
    assert fast.value(3) == 2**70 and not fast.has_ival[3]  # beyond int64: an object value, as before
    assert fast.value(4) is True and fast.value(6) == 1.5
    same(read_history(path), slow(path))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (
            '{"index":0,"process":0,"type":"invoke","f":"a"}\n\n{"index":1,"process":0,"type":"ok","f":"a"}\n',
            "blank",
        ),
        (
            '{"index":0,"process":0,"type":"invoke","f":"a"}\r\n{"index":1,"process":0,"type":"ok","f":"a"}\r\n',
            "crlf",
        ),
        ('{"index":0,"process":0,"type":"invoke","f":"a","value":NaN}\n', "NaN"),
        ('{"index":0,"process":0,"type":"invoke","f":"a"}\n{"index":1,"process":0,"ty', "torn"),
        ('{"index":0,"process":0,"type":"invoke","f":"a","value":{"v":1}\n}\n', "split"),
    ],
)
def test_files_the_fast_path_leaves_to_the_exact_reader(tmp_path: Path, text: str, why: str) -> None:
    path = write_lines(tmp_path / "h.jsonl", [text])
    assert oplog._read_fast(path.read_bytes()) is None, why
    if why == "split":
        with pytest.raises(InputError, match=r"h.jsonl:1: not JSON"):
            read_history(path)
    else:
        same(read_history(path), slow(path))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"index":0,"process":0,"type":"invoke","f":"a"} {"index":1,"process":0,"type":"ok","f":"a"}\n',
         r"h.jsonl:2: not JSON: Extra data"),
        ('{"index":99999999999999999999,"process":0,"type":"invoke","f":"a"}\n',
         r"h.jsonl:2: op: field 'index' must be an integer \(int64\)"),
        ('{"index":1,"process":true,"type":"invoke","f":"a"}\n', r"h.jsonl:2: op: field 'process' must be an integer"),
        ('{"index":1,"process":0,"type":"begin","f":"a"}\n', r"h.jsonl:2: op: field 'type' must be one of"),
        ('{"process":0,"type":"invoke","f":"a"}\n', r"h.jsonl:2: op: missing field 'index'"),
    ],
)  # fmt: skip
def test_bad_lines_are_still_named_by_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    first = '{"index":0,"process":9,"type":"invoke","f":"a"}\n'
    path = write_lines(tmp_path / "h.jsonl", [first, line])
    with pytest.raises(InputError, match=message):
        read_history(path)


def test_events_and_samples_read_fast_and_still_name_the_bad_line(tmp_path: Path) -> None:
    assert [e.id for e in read_events(STORED / "events.jsonl")] == ["partition-c081a2"]
    samples = read_samples(STORED / "samples.jsonl")
    assert len(samples) == 636 + 6 * 119 and samples[0].value == 0.0 and isinstance(samples[0].value, float)
    bad = tmp_path / "samples.jsonl"
    lines = (STORED / "samples.jsonl").read_text().splitlines(keepends=True)
    lines[40] = '{"time":1,"node":"n1","metric":"m"}\n'
    bad.write_text("".join(lines))
    with pytest.raises(InputError, match=r"samples.jsonl:41: sample: missing field 'value'"):
        read_samples(bad)


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    shutil.copy(STORED / "history.jsonl", path)
    first = read_history(path)
    assert read_history(path) is first  # unchanged: the history already built
    data = bytearray(path.read_bytes())
    at = data.index(b'"node":"n2"')
    data[at + 9] = ord("3")  # same size, one byte different
    path.write_bytes(bytes(data))
    again = read_history(path)
    assert again is not first
    row = data[:at].count(b"\n")
    assert (first.op(row).node, again.op(row).node) == ("n2", "n3")


def test_the_columnar_cache_is_used_only_for_the_bytes_it_was_made_from(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    shutil.copy(STORED / "history.jsonl", path)
    decoded = read_history(path)
    cache = oplog.write_history_cache(path)
    assert cache == tmp_path / "history.columns.npz" and cache.is_file()
    oplog._LAST.clear()
    loaded = oplog._read_cache(cache, path.read_bytes())
    assert loaded is not None
    same(loaded, decoded)
    # one byte changed, same size: the cache is ignored and the file decoded
    data = bytearray(path.read_bytes())
    at = data.index(b'"type":"ok"')
    data[at + 8 : at + 10] = b"ok"[::-1]  # "ko" is no op type: the file is now wrong, and says so
    path.write_bytes(bytes(data))
    oplog._LAST.clear()
    with pytest.raises(InputError, match=r"history.jsonl:\d+: op: field 'type' must be one of"):
        read_history(path)
    # a broken cache is ignored too
    shutil.copy(STORED / "history.jsonl", path)
    cache.write_bytes(b"not a zip")
    oplog._LAST.clear()
    same(read_history(path), decoded)


def test_no_cache_for_values_json_cannot_carry(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "history.jsonl", ['{"index":0,"process":0,"type":"invoke","f":"a","value":[NaN]}\n']
    )
    assert oplog.write_history_cache(path) is None
    assert not (tmp_path / "history.columns.npz").exists()
