"""The set-full checker against generated ground truth: adds, per-node visibility timelines and reads.

A ground truth says, for every element and node, from when the element is visible there and whether it
disappears again (for good, or for a while). Reads take their snapshot at their invoke time. The history
follows from it; the expected figures follow from the ground truth by plain loops (a reference
implementation of the definitions in ``harness.checkers.set_full``), and some facts follow from the
timeline alone (an element visible for good before a node's last read is stable there; one removed for good
after a read saw it, with a read after the removal, is lost after seen).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checkers import CheckContext, check_set_full
from harness.checkers.set_full import distribution
from harness.model.history import Event, History, Op

NODES = ["n1", "n2", "n3"]


@dataclass
class Element:
    id: int
    invoke: int
    outcome: str | None  # ok / fail / info / None (never completed)
    done: int
    # per node: (visible from, gone from or None, back at or None), or None: never visible there
    vis: dict[str, tuple[int, int | None, int | None] | None]

    def visible(self, node: str, t: int) -> bool:
        v = self.vis[node]
        if v is None or t < v[0]:
            return False
        gone, back = v[1], v[2]
        if gone is None or t < gone:
            return True
        return back is not None and t >= back


@dataclass
class Read:
    node: str
    invoke: int
    done: int
    ids: list[int]


@dataclass
class Case:
    history: History
    elements: list[Element]
    reads: list[Read]
    nodes: list[str]
    events: list[Event]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    nodes = NODES[: draw(st.integers(1, 3))]
    elements: list[Element] = []
    n = draw(st.integers(0, 8))
    base = sorted(draw(st.lists(st.integers(0, 900_000), min_size=n, max_size=n, unique=True)))
    for i, start in enumerate(base):
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail", None]))
        duration = draw(st.integers(1, 50_000))
        vis: dict[str, tuple[int, int | None, int | None] | None] = {}
        for node in nodes:
            if outcome == "fail" or draw(st.integers(0, 5)) == 0:
                vis[node] = None
                continue
            appear = start + draw(st.integers(0, 200_000))
            gone = back = None
            shape = draw(st.sampled_from(["stays", "stays", "gone", "flicker"]))
            if shape != "stays":
                gone = appear + draw(st.integers(1, 200_000))
                if shape == "flicker":
                    back = gone + draw(st.integers(1, 100_000))
            vis[node] = (appear, gone, back)
        elements.append(Element(i + 1, start, outcome, start + duration, vis))
    reads: list[Read] = []
    for node in nodes:
        for s in draw(st.lists(st.integers(0, 1_000_000), max_size=8, unique=True)):
            done = s + draw(st.integers(1, 30_000))
            reads.append(Read(node, s, done, [e.id for e in elements if e.visible(node, s)]))
    drafts: list[tuple[int, int, dict[str, Any]]] = []
    p = 0
    for e in elements:
        p += 1
        drafts.append(
            (e.invoke, 0, {"process": p, "type": "invoke", "f": "add", "value": e.id, "node": "n1"})
        )
        if e.outcome is not None:
            drafts.append(
                (e.done, 1, {"process": p, "type": e.outcome, "f": "add", "value": e.id, "node": "n1"})
            )
    for r in reads:
        p += 1
        drafts.append(
            (r.invoke, 0, {"process": p, "type": "invoke", "f": "scan", "value": None, "node": r.node})
        )
        drafts.append((r.done, 1, {"process": p, "type": "ok", "f": "scan", "value": r.ids, "node": r.node}))
    drafts.sort(key=lambda d: (d[0], d[1], d[2]["process"]))
    ops = [Op(index=i, time=tm, **f) for i, (tm, _, f) in enumerate(drafts)]
    events = [Event("kill-1", "kill", "signal", "n1", {}, 300_000, 500_000)] if draw(st.booleans()) else []
    return Case(History.from_ops(ops), elements, reads, nodes, events)


def reference(case: Case) -> dict[str, Any]:
    """The figures by the definitions, with plain loops over the history's ops."""
    h = case.history
    pairs = [(inv, comp) for inv, comp in h.pairs()]
    ack: dict[int, tuple[int, int]] = {}  # id -> (index, time) of its ok
    attempted: set[int] = set()
    reads: list[tuple[str, Op, Op]] = []
    for inv, comp in pairs:
        if inv.f == "add":
            attempted.add(inv.value)
            if comp is not None and comp.type == "ok":
                ack.setdefault(inv.value, (comp.index, comp.time))
        elif comp is not None and comp.type == "ok":
            reads.append((inv.node, inv, comp))
    known: dict[int, int] = {e: ack[e][0] for e in ack}
    for _, _, comp in reads:
        for e in comp.value:
            known[e] = min(known.get(e, comp.index), comp.index)
    by_node: dict[str, list[tuple[Op, Op]]] = {}
    for node, inv, comp in sorted(reads, key=lambda x: x[1].index):
        by_node.setdefault(node, []).append((inv, comp))
    lost: set[int] = set()
    stable: set[int] = set()
    stale: set[int] = set()
    seen_lost: set[int] = set()
    stale_reads = 0
    latencies: dict[str, list[int]] = {}
    for node, rs in by_node.items():
        stale_idx: set[int] = set()
        latencies[node] = []
        for e in sorted(known):
            present = [i for i, (_, c) in enumerate(rs) if e in c.value]
            absent = [i for i, (inv, c) in enumerate(rs) if e not in c.value and inv.index > known[e]]
            last_p = max(present, default=-1)
            last_a = max(absent, default=-1)
            if present and last_a < last_p:
                stable.add(e)
            if absent and last_a > last_p:
                lost.add(e)
            for i in absent:
                if i < last_p:
                    stale.add(e)
                    stale_idx.add(i)
            if present:
                first_done = min(rs[i][1].index for i in present)
                if any(e not in c.value and inv.index > first_done for inv, c in rs):
                    seen_lost.add(e)
                if e in ack:
                    first = min(present)
                    before = [i for i, (inv, c) in enumerate(rs) if i < first and e not in c.value
                              and inv.index > ack[e][0]]  # fmt: skip
                    latencies[node].append(max(0, rs[max(before)][0].time - ack[e][1]) if before else 0)
        stale_reads += len(stale_idx)
    stable -= lost
    return {
        "attempted": len(attempted),
        "acknowledged": len(ack),
        "known": len(known),
        "lost": len(lost),
        "stable": len(stable),
        "never_read": len(set(known) - lost - stable),
        "stale": len(stale),
        "stale_reads": stale_reads,
        "lost_after_seen": len(seen_lost),
        "transient_losses": len(seen_lost - lost),
        "latencies": {n: sorted(v) for n, v in latencies.items()},
        "lost_ids": lost,
    }


@settings(max_examples=400, deadline=None)
@given(case=cases())
def test_set_full_recovers_the_ground_truth(case: Case) -> None:
    r = check_set_full(case.history, CheckContext(events=tuple(case.events)))
    f = r.figures
    ref = reference(case)
    assert f["reads"] == len(case.reads)
    if not case.reads:
        assert r.valid == "unknown"
        return
    for name in ("attempted", "acknowledged", "known", "lost", "stable", "never_read", "stale", "stale_reads",
                 "lost_after_seen", "transient_losses"):  # fmt: skip
        assert f[name] == ref[name], (name, f[name], ref[name])
    for node, lat in ref["latencies"].items():
        assert f["per_node"][node]["latency_ms"] == distribution(np.asarray(lat, dtype=np.int64))
    if ref["known"]:
        assert r.valid is (ref["lost"] == 0)
    else:
        assert r.valid == "unknown"
    by_window = f["latency_ms_by_window"]
    for node in ref["latencies"]:
        assert sum(w[node]["count"] for w in by_window.values() if node in w) == len(ref["latencies"][node])

    # facts from the timeline alone, on each node's last read
    for node in case.nodes:
        rs = [rd for rd in case.reads if rd.node == node]
        if not rs:
            continue
        last = max(rs, key=lambda rd: rd.invoke)
        lost_here = ids_of(f["per_node"][node]["lost_ranges"])
        for e in case.elements:
            v = e.vis[node]
            if v is not None and v[1] is None and v[0] <= last.invoke:
                assert e.id not in lost_here, "visible for good before the node's last read: not lost there"
            seen = [rd for rd in rs if e.id in rd.ids and rd.done < last.invoke]
            if v is not None and v[1] is not None and v[2] is None and v[1] <= last.invoke and seen:
                assert e.id in lost_here, "seen, then removed for good before the last read: lost there"
                assert e.id in ids_of(f["lost_after_seen_ranges"])
    assert json.loads(json.dumps(r.to_dict())) == r.to_dict()
    assert check_set_full(case.history, CheckContext(events=tuple(case.events))).to_dict() == r.to_dict()


def ids_of(ranges: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, ranges.split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _ops(*drafts: tuple[int, str, str, Any, str]) -> History:
    """(time, type, f, value, node) drafts, one process per invoke/completion pair in order."""
    out: list[Op] = []
    open_: dict[tuple[str, Any, str], int] = {}
    for i, (t, type_, f, value, node) in enumerate(drafts):
        key = (f, value if f == "add" else node, node)
        if type_ == "invoke":
            open_[key] = i
            p = i
        else:
            p = open_.pop(key)
        out.append(Op(i, p, type_, f, value, t, node))
    return History.from_ops(out)


def test_a_lagging_replica_shows_stale_reads_and_latency_by_node_and_window() -> None:
    s = 1_000_000_000
    h = _ops(
        (0, "invoke", "add", 1, "n1"), (1, "ok", "add", 1, "n1"),
        (2 * s, "invoke", "scan", None, "n2"), (2 * s + 1, "ok", "scan", [], "n2"),
        (2 * s + 2, "invoke", "scan", None, "n1"), (2 * s + 3, "ok", "scan", [1], "n1"),
        (3 * s, "invoke", "scan", None, "n2"), (3 * s + 1, "ok", "scan", [1], "n2"),
        (4 * s, "invoke", "read", None, "n1"), (4 * s + 1, "ok", "read", [1], "n1"),
        (4 * s + 2, "invoke", "read", None, "n2"), (4 * s + 3, "ok", "read", [1], "n2"),
    )  # fmt: skip
    events = (Event("link-1", "link", "toxiproxy", "n2-repl", {}, 0, 5 * s),)
    r = check_set_full(h, CheckContext(events=events))
    f = r.figures
    assert r.valid is True
    assert (f["stable"], f["lost"], f["stale"], f["stale_reads"]) == (1, 0, 1, 1)
    assert f["stale_reads_by_node"] == {"n1": 0, "n2": 1}
    assert f["per_node"]["n2"]["latency_ms"]["max"] == round((2 * s - 1) / 1e6, 3)
    assert f["per_node"]["n1"]["latency_ms"]["max"] == 0.0
    assert set(f["latency_ms_by_window"]) == {"link-1"}
    assert f["worst_stale"] == [{"element": 1, "node": "n2", "latency_ms": round((2 * s - 1) / 1e6, 3)}]


def test_seen_then_gone_is_lost_and_a_flicker_is_transient() -> None:
    h = _ops(
        (0, "invoke", "add", 1, "n1"), (1, "ok", "add", 1, "n1"),
        (2, "invoke", "add", 2, "n1"), (3, "ok", "add", 2, "n1"),
        (10, "invoke", "scan", None, "n1"), (11, "ok", "scan", [1, 2], "n1"),
        (20, "invoke", "scan", None, "n1"), (21, "ok", "scan", [2], "n1"),
        (30, "invoke", "read", None, "n1"), (31, "ok", "read", [1], "n1"),
    )  # fmt: skip
    r = check_set_full(h, CheckContext())
    f = r.figures
    assert r.valid is False
    assert (f["lost"], f["lost_ranges"], f["lost_after_seen"], f["transient_losses"]) == (1, "2", 2, 1)
    assert f["stale_reads"] == 1  # the second scan lacks 1, which the final read holds again


def test_no_reads_is_unknown_and_unacknowledged_unseen_ids_are_unknown() -> None:
    h = _ops((0, "invoke", "add", 1, "n1"), (1, "info", "add", 1, "n1"))
    assert check_set_full(h, CheckContext()).valid == "unknown"
    h = _ops((0, "invoke", "add", 1, "n1"), (1, "info", "add", 1, "n1"),
             (2, "invoke", "read", None, "n1"), (3, "ok", "read", [], "n1"))  # fmt: skip
    r = check_set_full(h, CheckContext())
    assert r.valid == "unknown" and r.figures["unknown"] == 1 and r.figures["known"] == 0
