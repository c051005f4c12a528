"""The fast history reader the reports rely on (msgspec, one decode per file) gives exactly what the
line-by-line reader gives, hands every file it does not take as plainly well-formed to that reader (so
errors still name FILE:LINE), and the columnar cache beside a history is used only while the file is
byte for byte the one it was made from."""

from __future__ import annotations

import json
import re
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


# -- the vectorised reader of HistoryWriter's own lines (canonical.py) ------------------------------------
def _writer_lines(n: int) -> list[str]:
    """Lines exactly as HistoryWriter writes them: ints and nulls, with and without node and error."""
    out = []
    for i in range(n):
        node = "" if i % 7 == 0 else f',"node":"n{i % 3 + 1}"'
        error = ',"error":"timeout"' if i % 11 == 0 else ""
        value = "null" if i % 5 == 0 else str((i * 7919) % 10 ** (1 + i % 16) * (-1 if i % 13 == 0 else 1))
        t = ("invoke", "ok", "fail", "info")[i % 4]
        out.append(f'{{"index":{i},"process":{i % 9},"type":"{t}","f":"{"add" if i % 3 else "read"}",'
                   f'"value":{value},"time":{i * 10**(i % 15)}{node}{error}}}\n')  # fmt: skip
    return out


ODD_LINES = [  # each one valid, each one outside the template: msgspec decodes it on its own
    '{"index":1,"process":2,"type":"ok","f":"add","value":[1,2,3],"time":5,"node":"n1"}\n',
    '{"index":1,"process":2,"type":"ok","f":"add","value":"s","time":5}\n',
    '{"index":1,"process":2,"type":"ok","f":"add","value":1.5,"time":5}\n',
    '{"index":1,"process":2,"type":"ok","f":"add","value":true,"time":5}\n',
    '{"index":1,"process":2,"type":"ok","f":"add","value":123456789012345678,"time":5}\n',  # 18 digits
    '{"index":1,"process":2,"type":"ok","f":"add","value":-9223372036854775808,"time":5}\n',
    '{"index":1,"process":2,"type":"ok","f":"add","value":99999999999999999999,"time":5}\n',  # > int64
    '{"index":1,"process":2,"type":"ok","f":"add","value":1,"time":1234567890123456789}\n',
    '{"process":2,"index":1,"type":"ok","f":"add","value":1,"time":5}\n',  # another field order
    '{"index":1,"process":2,"type":"ok","f":"a\\"dd","value":1,"time":5}\n',  # an escape
    '{"index":1,"process":2,"type":"ok","f":"ad\u00e9","value":1,"time":5,"node":"n\u00e9"}\n',
    '{"index":1,"process":2,"type":"ok","f":"add","value":1,"time":5,"node":null,"error":null}\n',
    '{"index":1,"process":2,"type":"ok","f":"add","value":1,"time":5,"error":"' + "x" * 200 + '"}\n',
    '{"index":1,"process":2,"type":"ok","f":"'
    + "f" * 40
    + '","value":1,"time":5,"node":"'
    + "n" * 40
    + '"}\n',
    '{"index":1,"process":2,"type":"ok","f":"add","value":1}\n',  # no time
    '{"index":1,"process":2,"type":"ok","f":"add","value":1,"time":5,"x":[1]}\n',  # an unknown field
    '{"index":1,"process":2,"type":"ok","f":"add","value":{"a":1},"time":5,"error":"timeout"}\n',
]


def test_the_vectorised_reader_equals_the_exact_reader(tmp_path: Path) -> None:
    from harness.model.history.canonical import read_canonical

    lines = _writer_lines(3000)
    for k, odd in enumerate(ODD_LINES):
        lines.insert(100 * k + 7, odd)
    lines.append(_writer_lines(1)[0])  # the last line: read near the end of the buffer
    path = write_lines(tmp_path / "h.jsonl", lines)
    data = path.read_bytes()
    got = read_canonical(data, oplog._OP_DECODER.decode)
    assert got is not None
    same(got, slow(path))
    same(read_history(path), slow(path))
    # no newline after the last line
    path.write_bytes(data.rstrip(b"\n"))
    oplog._LAST.clear()
    same(read_history(path), slow(path))


@pytest.mark.parametrize(
    "line",
    [
        '{"index":01,"process":2,"type":"ok","f":"add","value":1,"time":5}\n',
        '{"index":1,"process":2,"type":"ok","f":"add","value":-,"time":5}\n',
        '{"index":1,"process":2,"type":"ko","f":"add","value":1,"time":5}\n',
        '{"index":1,"process":2,"type":"ok","f":"add","value":1,"time":5,"node":"n1}\n',
        '{"index":1,"process":"2","type":"ok","f":"add","value":1,"time":5}\n',
        '{"index":1,"process":2,"type":"ok","f":"add","value":1,"time":5.5}\n',
        '{"index":1,"process":2,"type":"ok","f":"add","value":1,"time":99999999999999999999}\n',
        '{"index":1,"process":2,"type":"ok","f":"add","value":1,"time":5}}\n',
        '{"index":1,"process":2,"type":"ok","f":"\x01","value":1,"time":5}\n',
    ],
)
def test_a_bad_line_in_a_big_file_is_the_same_file_line_error(tmp_path: Path, line: str) -> None:
    lines = _writer_lines(2000)
    lines.insert(1234, line)
    path = write_lines(tmp_path / "history.jsonl", lines)
    with pytest.raises(InputError) as exact:
        list(read_records_exact(path))
    with pytest.raises(InputError) as fast:
        read_history(path)
    assert str(fast.value) == str(exact.value)
    assert str(fast.value).startswith(f"{path}:1235: ")


def read_records_exact(path: Path) -> list[object]:
    from harness.model.history.jsonl import read_records

    b = HistoryBuilder()
    return list(read_records(path, "op", b.append_dict))


# -- the columnar cache: written by the first read, used only for the bytes it was made from ------------
def _big_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    run = tmp_path / "run"
    shutil.copytree(STORED, run)
    monkeypatch.setattr(oplog, "CACHE_MIN_BYTES", 0)  # the stored run is small: cache it all the same
    return run


def test_the_first_read_leaves_the_cache_and_checks_agree_with_and_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.model.history import samples as samples_module
    from harness.runner import check_report
    from harness.stored_run import load_stored_run

    run = _big_run(tmp_path, monkeypatch)
    cache = oplog.cache_path(run / "history.jsonl")
    assert not cache.exists()
    uncached = check_report(run, write=False).to_dict()
    first = load_stored_run(run)
    assert cache.is_file()  # written by the decode itself: the next command is cached
    oplog._LAST.clear()
    samples_module._LAST.clear()

    def no_decode(data: bytes) -> None:
        raise AssertionError("decoded although the cache is there")

    monkeypatch.setattr(oplog, "_read_fast", no_decode)
    again = load_stored_run(run)
    same(again.history, first.history)
    same(again.history, slow(run / "history.jsonl"))
    assert again.events == first.events and again.samples == first.samples
    assert check_report(run, write=False).to_dict() == uncached


def test_a_stale_cache_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from harness.runner import check_report

    run = _big_run(tmp_path, monkeypatch)
    path = run / "history.jsonl"
    before = check_report(run, write=False).to_dict()
    cache = oplog.cache_path(path)
    assert cache.is_file()
    st = path.stat()
    data = bytearray(path.read_bytes())
    found = re.search(rb'"value":[1-8]', data)
    assert found is not None
    at = found.end() - 1
    data[at] = ord("9") if data[at] != ord("9") else ord("8")  # same size, and the same mtime below
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    oplog._LAST.clear()
    changed = read_history(path)
    same(changed, slow(path))
    oplog._LAST.clear()
    assert check_report(run, write=False).to_dict() == check_report_exact(run, monkeypatch)
    assert before is not None
    # a line appended: read again, and the cache follows the new bytes
    with open(path, "a") as fh:
        fh.write('{"index":999999,"process":999,"type":"invoke","f":"add","value":5,"time":999999999999}\n')
    oplog._LAST.clear()
    grown = read_history(path)
    same(grown, slow(path))
    assert grown.value(len(grown) - 1) == 5
    oplog._LAST.clear()
    same(read_history(path), slow(path))  # now from the rewritten cache
    # a corrupt line with a cache beside it: still FILE:LINE (exit 2)
    lines = path.read_text().splitlines(keepends=True)
    lines[10] = lines[10].replace(",", " ", 1)
    path.write_text("".join(lines))
    oplog._LAST.clear()
    with pytest.raises(InputError, match=rf"{path}:11: not JSON: Expecting ',' delimiter"):
        read_history(path)


def check_report_exact(run: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """``check_report`` with every fast path and cache off: the exact reader only."""
    from harness.runner import check_report

    with monkeypatch.context() as m:
        m.setattr(oplog, "_read_fast", lambda data: None)
        m.setattr(oplog, "_read_cache", lambda path, stamp: None)
        m.setattr(oplog, "CACHE_MIN_BYTES", 1 << 62)
        oplog._LAST.clear()
        out = check_report(run, write=False).to_dict()
    oplog._LAST.clear()
    return out


def test_samples_read_fast_equal_the_exact_reader(tmp_path: Path) -> None:
    from harness.model.history.jsonl import read_records
    from harness.model.history.samples import Sample

    path = tmp_path / "samples.jsonl"
    lines = (STORED / "samples.jsonl").read_text().splitlines(keepends=True)
    lines += ['{"time":5,"node":"n1","metric":"m","value":3}\n', '{"time":6,"node":"n1","metric":"m","value":"x"}\n',
              '{"time":7,"node":"n2","metric":"m","value":-1.5e3,"extra":1}\n']  # fmt: skip
    path.write_text("".join(lines))
    got = read_samples(path)
    exact = list(read_records(path, "sample", Sample.from_dict))
    assert got == exact and [type(s.value) for s in got] == [type(s.value) for s in exact]
    assert got[-3].value == 3.0 and type(got[-3].value) is float
    assert read_samples(path) == got  # the same bytes again: the samples already built
    path.write_text("".join(lines[:-1]))  # changed: read again
    assert read_samples(path) == got[:-1]
    path.write_text("".join([*lines, '{"time":true,"node":"n1","metric":"m","value":1}\n']))
    with pytest.raises(
        InputError, match=rf"{path}:{len(lines) + 1}: sample: field 'time' must be an integer"
    ):
        read_samples(path)


def test_the_vectorised_reader_interns_many_names_in_order_of_first_appearance(tmp_path: Path) -> None:
    from harness.model.history.canonical import read_canonical

    lines = [f'{{"index":{i},"process":{i},"type":"invoke","f":"f{i % 23}","value":{i},"time":{i},'
             f'"node":"node-{(i * 7) % 40}","error":"error number {(i * 13) % 97}"}}\n' for i in range(5000)]  # fmt: skip
    path = write_lines(tmp_path / "h.jsonl", lines)
    got = read_canonical(path.read_bytes(), oplog._OP_DECODER.decode)
    assert got is not None
    same(got, slow(path))
    assert len(got.error_names) == 97 and got.error_names[:2] == ("error number 0", "error number 13")
