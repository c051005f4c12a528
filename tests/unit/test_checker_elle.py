"""The elle checker on hand-built list-append histories, one per anomaly class (most after the vectors in
jepsen-io/elle's test/elle/list_append_test.clj), the models' verdicts and the explanations."""

from __future__ import annotations

import io
import itertools
import random
from pathlib import Path

import pytest

from harness.checkers import CHECK_OPTIONS, CHECKERS, ElleOptions, OptionsError, check_options
from harness.checkers.elle import FORBIDDEN, MODELS
from harness.checkers.elle.cycles import classify
from harness.checkers.elle.graph import PROC, RT, RW, WR, WW
from harness.model.history import HistoryWriter, Op, oplog, read_history
from harness.report.edn import write_edn
from tests.unit.elle_histories import A, R, check, concurrent, ops, serial, shuffled, types


def test_registered_with_options() -> None:
    assert "elle" in CHECKERS and "elle" in CHECK_OPTIONS
    options = check_options("elle", {"model": "snapshot-isolation", "realtime": True})
    assert isinstance(options, ElleOptions) and options.model == "snapshot-isolation"
    with pytest.raises(OptionsError, match="model"):
        check_options("elle", {"model": "linearizable"})
    with pytest.raises(OptionsError, match="unknown option"):
        check_options("elle", {"modle": "serializable"})


def test_a_serial_history_is_valid_under_every_model() -> None:
    h = serial(
        ("ok", [A("x", 1), R("y")]), ("ok", [R("x", [1]), A("y", 1)]), ("ok", [R("x", [1]), R("y", [1])])
    )
    for model in MODELS:
        r = check(h, model=model)
        assert r.valid is True, (model, r.figures, r.notes)
        assert r.figures["anomaly_types"] == [] and r.figures["cycles"] == 0
    assert r.figures["txns_ok"] == 3 and r.figures["model"] == "strict-serializable"
    assert r.figures["realtime"] is True


def test_no_ok_txn_is_unknown() -> None:
    r = check(serial(("fail", [A("x", 1)])))
    assert r.valid == "unknown" and r.figures["txns_fail"] == 1


def test_g0_write_cycle() -> None:
    h = serial(
        ("ok", [A("x", 1), A("y", 1)]),
        ("ok", [A("x", 2), A("y", 2)]),
        ("ok", [R("x", [1, 2]), R("y", [2, 1])]),
    )
    r = check(h, model="read-committed")
    assert r.valid is False and types(r) == ["G0"] and r.figures["invalid_because"] == ["G0"]
    (cycle,) = r.details["anomalies"]["G0"]
    assert [s["kind"] for s in cycle["steps"]] == ["ww", "ww"]
    assert [t["index"] for t in cycle["txns"]] == [1, 3]
    whys = {s["why"] for s in cycle["steps"]}
    assert whys == {
        "T2 appended 2 to key x after T1 appended 1 (ww)",
        "T1 appended 1 to key y after T2 appended 2 (ww)",
    }


def test_g1a_aborted_read() -> None:
    r = check(serial(("fail", [A("x", 1)]), ("ok", [R("x", [1])])), model="read-committed")
    assert r.valid is False and types(r) == ["G1a"]
    (case,) = r.details["anomalies"]["G1a"]
    assert case["writer"]["type"] == "fail" and case["txn"]["index"] == 3 and case["element"] == 1


def test_an_info_txn_read_is_no_g1a() -> None:
    """An indeterminate append that a read shows simply happened."""
    r = check(serial(("info", [A("x", 1)]), ("ok", [R("x", [1])])), model="strict-serializable")
    assert r.valid is True and types(r) == [] and r.figures["txns_info"] == 1


def test_info_reads_say_nothing() -> None:
    """A crashed txn's read of y = nil does not make it precede the append of y (Elle's "info reads")."""
    h = serial(
        ("info", [A("x", 2), R("y")]), ("ok", [A("x", 1), A("y", 1)]), ("ok", [R("x", [1, 2]), R("y", [1])])
    )
    assert check(h).valid is True


def test_g1b_intermediate_read_is_also_g_single() -> None:
    h = serial(("ok", [A("x", 1), A("x", 2)]), ("ok", [R("x", [1])]))
    r = check(h, model="read-committed")
    assert r.valid is False and types(r) == ["G1b", "G-single"] and r.figures["invalid_because"] == ["G1b"]
    assert check(serial(("ok", [A("x", 1), R("x", [1]), A("x", 2)]))).figures["anomaly_types"] == []


def test_g1c_circular_information_flow() -> None:
    h = serial(("ok", [A("x", 1), R("y", [1])]), ("ok", [A("x", 2), A("y", 1)]), ("ok", [R("x", [1, 2])]))
    r = check(h, model="read-committed")
    assert r.valid is False and types(r) == ["G1c"]
    steps = r.details["anomalies"]["G1c"][0]["steps"]
    assert sorted(s["kind"] for s in steps) == ["wr", "ww"]
    assert "T2 read key y = [1] which includes T1's append of 1 (wr)" in [s["why"] for s in steps]


def test_g_single_read_skew() -> None:
    h = serial(("ok", [A("x", 1), A("y", 1)]), ("ok", [A("x", 2), R("y")]), ("ok", [R("x", [1, 2])]))
    assert check(h, model="read-committed").valid is True
    r = check(h, model="snapshot-isolation")
    assert r.valid is False and types(r) == ["G-single"]
    whys = [s["why"] for s in r.details["anomalies"]["G-single"][0]["steps"]]
    assert "T1 read key y = [] without 1, which T2 appended (rw)" in whys


def test_g2_item_write_skew() -> None:
    h = serial(("ok", [A("x", 1), R("y")]), ("ok", [A("y", 1), R("x")]))
    assert check(h, model="read-committed").valid is True
    assert check(h, model="snapshot-isolation").valid is True  # write skew is allowed by SI
    r = check(h, model="serializable")
    assert r.valid is False and types(r) == ["G2-item"] and r.figures["cycles"] == 1
    assert check(h, model="repeatable-read").valid is False


def test_g_nonadjacent() -> None:
    h = serial(
        ("ok", [A("x", 1)]), ("ok", [R("x", [1]), R("y")]), ("ok", [A("y", 1)]), ("ok", [R("y", [1]), R("x")])
    )
    r = check(h, model="snapshot-isolation")
    assert r.valid is False and types(r) == ["G-nonadjacent"]
    assert [s["kind"] for s in r.details["anomalies"]["G-nonadjacent"][0]["steps"]].count("rw") == 2


def test_adjacent_rw_edges_are_no_g_nonadjacent() -> None:
    """Elle's second G-nonadjacent case (rw rw wr rw wr): no G-nonadjacent here."""
    h = serial(
        ("ok", [R("x", [5]), A("y", 1)]), ("ok", [R("y"), A("z", 2)]), ("ok", [R("z"), A("t", 3)]),
        ("ok", [R("t", [3]), A("u", 4)]), ("ok", [R("u"), A("x", 5)]),
    )  # fmt: skip
    assert check(h, model="snapshot-isolation").valid is True
    assert "G-nonadjacent" not in types(check(h, model="serializable"))


def test_lost_update() -> None:
    h = serial(("ok", [A("x", 0)]), ("ok", [R("x", [0]), A("x", 1)]), ("ok", [R("x", [0]), A("x", 2)]))
    r = check(h, model="snapshot-isolation")
    assert r.valid is False and types(r) == ["lost-update", "G2-item"]
    assert r.figures["invalid_because"] == ["lost-update"]
    (case,) = r.details["anomalies"]["lost-update"]
    assert case["key"] == "x" and case["value"] == [0] and [t["index"] for t in case["txns"]] == [3, 5]
    assert check(serial(("ok", [R("x"), A("x", 1), A("x", 2)]), ("ok", [R("x", [1, 2])]))).valid is True


def test_internal_inconsistency() -> None:
    h = serial(
        ("ok", [R("x", [1, 2]), A("x", 3), R("x", [1, 2])]),  # stale own read
        ("ok", [A("y", 3), R("y", [1, 2, 3, 4])]),  # more after own append
        ("ok", [A("z", 6), R("z")]),  # own append missing
        ("ok", [R("w", [5, 6]), A("w", 3), R("w", [5, 6, 3]), A("w", 4), R("w", [5, 6, 3, 4])]),  # good
    )
    r = check(h, model="read-committed")
    assert r.figures["anomalies"]["internal"] == 3 and r.valid is False
    expected = [c["expected"] for c in r.details["anomalies"]["internal"]]
    assert expected == [[1, 2, 3], ["...", 3], ["...", 6]]


def test_duplicate_elements_and_incompatible_orders() -> None:
    dup = serial(
        ("ok", [A("x", 1), R("y", [1])]), ("ok", [A("x", 2), A("y", 1)]), ("ok", [R("x", [1, 2, 1])])
    )
    r = check(dup, model="read-committed")
    # [1, 2, 1] also reads as if 1 came last: G-single too, as Elle says (read-committed allows that)
    assert types(r) == ["duplicate-elements", "G1c", "G-single"] and r.valid is False
    assert r.figures["invalid_because"] == ["duplicate-elements", "G1c"]
    assert r.details["anomalies"]["duplicate-elements"][0]["duplicates"] == {1: 2}
    forked = serial(
        ("ok", [A("x", 1), R("y", [1])]), ("ok", [A("x", 2)]), ("ok", [A("x", 3), A("y", 1)]),
        ("ok", [R("x", [1, 3])]), ("ok", [R("x", [1, 2, 3])]),
    )  # fmt: skip
    r = check(forked, model="read-committed")
    assert types(r) == ["incompatible-order", "G1c"]
    assert r.details["anomalies"]["incompatible-order"][0]["values"] == [[1, 3]]


def test_duplicate_appends() -> None:
    r = check(serial(("ok", [A("x", 1)]), ("ok", [A("x", 1)]), ("ok", [R("x", [1])])), model="read-committed")
    assert "duplicate-appends" in types(r) and r.valid is False


def test_unobserved_writes_follow_the_observed_ones() -> None:
    """Elle's unobserved-write test: y never shows w1's append, so w1 comes after w2 on y (G0 and G-single)."""
    h = ops(
        (0, "invoke", [A("x", 1), A("y", 1)]), (1, "invoke", [A("x", 2), A("y", 2)]),
        (2, "invoke", [A("x", 3), A("y", 3)]), (3, "invoke", [R("x")]), (4, "invoke", [R("y")]),
        (0, "ok", [A("x", 1), A("y", 1)]), (1, "ok", [A("x", 2), A("y", 2)]), (2, "ok", [A("x", 3), A("y", 3)]),
        (3, "ok", [R("x", [1, 2])]), (4, "ok", [R("y", [2])]),
    )  # fmt: skip
    r = check(h)
    assert r.valid is False and set(types(r)) == {"G0", "G-single"}


def _stale_read(same_process: bool) -> list[tuple[int, str, list[list[object]]]]:
    return [
        (0, "invoke", [A("x", 1)]), (0, "ok", [A("x", 1)]),
        (1, "invoke", [A("x", 2)]), (1, "ok", [A("x", 2)]),
        (1 if same_process else 2, "invoke", [R("x")]), (1 if same_process else 2, "ok", [R("x", [1])]),
        (3, "invoke", [R("x")]), (3, "ok", [R("x", [1, 2])]),
    ]  # fmt: skip


def test_stale_read_is_a_realtime_anomaly() -> None:
    h = ops(*_stale_read(False))
    assert check(h, model="serializable").valid is True
    r = check(h, model="strict-serializable")
    assert r.valid is False and types(r) == ["G-single-realtime"]
    steps = r.details["anomalies"]["G-single-realtime"][0]["steps"]
    assert [s["kind"] for s in steps] == ["rw", "realtime"] or [s["kind"] for s in steps] == [
        "realtime",
        "rw",
    ]
    assert any("completed (op 3) before" in s["why"] for s in steps)
    assert check(h, model="serializable", realtime=True).valid is True  # found, but serializable allows it
    assert types(check(h, model="serializable", realtime=True)) == ["G-single-realtime"]


def test_process_order() -> None:
    h = ops(*_stale_read(True))
    r = check(h, model="serializable", process=True)
    assert r.valid is True and types(r) == ["G-single-process"]
    assert check(h, model="strict-serializable", realtime=False, process=True).valid is False


def test_g_nonadjacent_process() -> None:
    """Tsunaou's history (jepsen-io/elle#17): nonadjacent rw edges closed by process order."""
    h = ops(
        (0, "invoke", [R("x"), R("z")]), (0, "ok", [R("x"), R("z", [1])]),
        (1, "invoke", [A("x", 1)]), (1, "ok", [A("x", 1)]),
        (1, "invoke", [R("z")]), (1, "ok", [R("z")]),
        (2, "invoke", [A("z", 1)]), (2, "ok", [A("z", 1)]),
    )  # fmt: skip
    assert check(h, model="serializable").valid is True
    r = check(h, model="serializable", process=True)
    assert "G-nonadjacent-process" in types(r)


def test_classify() -> None:
    assert classify([WW, WW]) == "G0"
    assert classify([WW, WR]) == "G1c"
    assert classify([RW, WR]) == "G-single"
    assert classify([RW, WR, RW, WR]) == "G-nonadjacent"
    assert classify([RW, RW, WR]) == "G2-item"
    assert classify([RW, WR, RW]) == "G2-item"  # the last and the first rw are adjacent
    assert classify([RW, RT]) == "G-single-realtime"
    assert classify([WW, PROC]) == "G0-process"
    assert classify([WW, PROC, RT]) == "G0-realtime"


def test_models_nest() -> None:
    order = ["read-committed", "snapshot-isolation", "serializable", "strict-serializable"]
    for weaker, stronger in itertools.pairwise(order):
        assert FORBIDDEN[weaker] < FORBIDDEN[stronger]
    assert "G2-item" not in FORBIDDEN["snapshot-isolation"] and "G2-item" in FORBIDDEN["repeatable-read"]
    assert "G-single-realtime" in FORBIDDEN["strict-serializable"]


def test_explanation_in_the_notes() -> None:
    h = serial(
        ("ok", [A(5, 1), A(5, 2)]), ("ok", [A(5, 3)]), ("ok", [R(5, [1, 2, 3])]), ("ok", [R(5, [1, 3])])
    )
    r = check(h, model="read-committed")
    assert r.valid is False and "incompatible-order" in types(r)
    text = "\n".join(r.notes)
    assert "incompatible-order: 1 (forbidden by read-committed)" in text


def test_a_malformed_txn_is_ignored_and_noted() -> None:
    h = serial(("ok", [["write", "x", 1]]), ("ok", [A("x", 1)]), ("ok", [R("x", [1])]))
    r = check(h)
    assert r.valid is True and r.figures["txns_malformed"] == 1 and "malformed" in r.notes[0]


def test_txn_values_round_trip_through_the_history_files(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path, concurrency=2) as w:
        a = w.invoke(0, "txn", [A(5, 3), R(5)], "n1")
        b = w.invoke(1, "txn", [R(5)], "n2")
        w.ok(a, [A(5, 3), R(5, [1, 2, 3])])
        w.info(b, "timed out")
    oplog._LAST.clear()
    h = read_history(path)  # the msgspec fast path
    assert [op.value for op in h] == [[A(5, 3), R(5)], [R(5)], [A(5, 3), R(5, [1, 2, 3])], [R(5)]]
    assert oplog.write_history_cache(path) is not None
    oplog._LAST.clear()
    cached = read_history(path)  # the column cache
    assert [op.value for op in cached] == [op.value for op in h]
    assert check(cached).figures["txns"] == 2


def test_edn_writes_elles_txn_format() -> None:
    buf = io.StringIO()
    write_edn([Op(0, 0, "invoke", "txn", [A(5, 3), R(5)]), Op(1, 0, "ok", "txn", [A(5, 3), R(5, [1, 2, 3])]),
               Op(2, 1, "ok", "txn", [R("x", [])])], buf)  # fmt: skip
    lines = buf.getvalue().splitlines()
    assert ":f :txn, :value [[:append 5 3] [:r 5 nil]]" in lines[0]
    assert ":value [[:append 5 3] [:r 5 [1 2 3]]]" in lines[1]
    assert ':value [[:r "x" []]]' in lines[2]


def test_tarjan_agrees_on_subsets_and_the_whole() -> None:
    from harness.checkers.elle.scc import strongly_connected

    adj = [{1: WW}, {2: WW}, {0: WR, 3: RW}, {4: WW}, {3: RW}, {}]
    whole = sorted(sorted(c) for c in strongly_connected(range(6), adj, WW | WR | RW))
    part = sorted(sorted(c) for c in strongly_connected(range(6), adj, WW | WR | RW, set(range(6))))
    assert whole == part == [[0, 1, 2], [3, 4]]
    assert strongly_connected(range(6), adj, WW) == []
    deep = [{i + 1: WW} for i in range(50_000)] + [{0: WW}]  # no recursion limit
    assert len(strongly_connected(range(len(deep)), deep, WW)[0]) == 50_001


@pytest.mark.parametrize("seed", range(40))
def test_the_data_graph_stands_for_the_whole(seed: int) -> None:
    """``build_graph`` leaves the real-time and process edges out: ``edges`` still counts what ``complete``
    adds, the real-time arrays ``acyclic`` peels are exactly the barrier edges, and ``acyclic`` (peeling only
    the spans of backward edges) says what Kahn's algorithm says on the whole graph."""
    from harness.checkers.elle.graph import DATA, EXT, build_graph
    from harness.checkers.elle.graph import _realtime_arrays as realtime_arrays
    from harness.checkers.elle.mops import index_mops
    from harness.checkers.elle.scc import _acyclic as kahn
    from harness.checkers.elle.txn import parse_txns
    from harness.checkers.elle.versions import infer_versions

    r = random.Random(seed)
    n = r.choice([3, 30, 150])
    if seed % 2:
        h = shuffled(n, seed, conc=r.choice([2, 4, 8]))
    else:
        h = concurrent(n, seed, conc=r.choice([2, 6]), keys=r.choice([2, 5]), stale=r.choice([0.0, 0.1]))
    txns = parse_txns(h)
    ix = index_mops(txns)
    vs = infer_versions(ix)
    for realtime, process in itertools.product((False, True), repeat=2):
        g = build_graph(txns, ix, vs, realtime=realtime, process=process)
        fast = g.acyclic()
        src, dst, _ = realtime_arrays(txns, g.txns)
        g.complete()
        assert g.edges == sum(map(len, g.adj))
        if realtime:
            barrier_edges = {(a, b) for a, d in enumerate(g.adj) for b in d if max(a, b) >= g.txns}
            assert set(zip(src.tolist(), dst.tolist(), strict=True)) == barrier_edges
        assert fast == kahn(g.adj, DATA | EXT), (realtime, process)
