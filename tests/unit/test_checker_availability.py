"""The availability checker against histories built bin by bin from a known up/down/idle timeline."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checkers import CheckContext, check_availability
from harness.model.history import Event, History, Op

BIN = 100_000_000  # 100 ms
STATES = ["up", "up", "down", "idle"]


@dataclass
class Write:
    node: str | None
    t_inv: int
    t_done: int
    type: str


@dataclass
class Case:
    history: History
    nodes: list[str | None]
    states: dict[str | None, list[str]]  # per node, per bin
    writes: list[Write]
    events: list[Event]


def build(writes: list[Write], extra: list[tuple[int, dict[str, Any]]]) -> History:
    drafts: list[tuple[int, int, dict[str, Any]]] = []
    for p, w in enumerate(writes):
        drafts.append(
            (w.t_inv, 0, {"process": p, "type": "invoke", "f": "write", "value": p, "node": w.node})
        )
        drafts.append((w.t_done, 1, {"process": p, "type": w.type, "f": "write", "value": p, "node": w.node}))
    drafts += [(t, 2, f) for t, f in extra]
    drafts.sort(key=lambda d: (d[0], d[1]))
    return History.from_ops(Op(index=i, time=t, **f) for i, (t, _, f) in enumerate(drafts))


@st.composite
def cases(draw: st.DrawFn, single: bool = False) -> Case:
    nodes: list[str | None] = (
        [None] if single else draw(st.sampled_from([[None], ["n1"], ["n1", "n2", "n3"]]))
    )
    n_bins = draw(st.integers(1, 16))
    choices = ["up", "down"] if single else STATES
    states = {n: [draw(st.sampled_from(choices)) for _ in range(n_bins)] for n in nodes}
    writes: list[Write] = []
    offset = draw(st.integers(0, 5)) * BIN
    for n in nodes:
        b = 0
        for state, run in itertools.groupby(states[n]):
            length = len(list(run))
            start = offset + b * BIN
            if state == "up":
                for k in range(length):
                    a = draw(st.integers(0, BIN - 1))
                    z = draw(st.integers(a, BIN - 1))
                    writes.append(Write(n, start + k * BIN + a, start + k * BIN + z, "ok"))
                    if draw(st.integers(0, 3)) == 0:  # a failure inside an up bin changes nothing
                        writes.append(Write(n, start + k * BIN + a, start + k * BIN + z, "fail"))
            elif state == "down":
                how = draw(st.sampled_from(["per-bin", "one long write"]))
                if how == "per-bin":
                    for k in range(length):
                        a = draw(st.integers(0, BIN - 1))
                        z = draw(st.integers(a, BIN - 1))
                        t = draw(st.sampled_from(["fail", "info"]))
                        writes.append(Write(n, start + k * BIN + a, start + k * BIN + z, t))
                else:
                    a = draw(st.integers(0, BIN - 1))
                    z = draw(st.integers(0, BIN - 1)) if length > 1 else draw(st.integers(a, BIN - 1))
                    t = draw(st.sampled_from(["fail", "info"]))
                    writes.append(Write(n, start + a, start + (length - 1) * BIN + z, t))
            b += length
    # reads and other ops must not count as writes
    extra = [(offset, {"process": 10**6, "type": "invoke", "f": "read", "value": None})]
    late = offset + n_bins * BIN + 5 * BIN
    extra.append((late, {"process": 10**6, "type": "fail", "f": "read", "value": None}))
    events = [
        Event(f"ev{k}", "partition", "iptables", "n1", {}, s, None if e is None else s + e)
        for k, (s, e) in enumerate(
            draw(
                st.lists(
                    st.tuples(st.integers(0, offset + n_bins * BIN), st.none() | st.integers(0, 10 * BIN)),
                    max_size=3,
                )
            )
        )
    ]
    return Case(build(writes, extra), nodes, states, writes, events)


def oracle(case: Case) -> dict[str, Any]:
    """Expected figures from the timeline by plain loops."""
    n_bins = len(next(iter(case.states.values())))
    offset = min(w.t_inv for w in case.writes) // BIN * BIN if case.writes else 0
    first_bin = offset // BIN
    # bins before the first write do not exist for the checker: trim leading idle-for-all bins
    lead = 0
    while lead < n_bins and all(case.states[n][lead] == "idle" for n in case.nodes):
        lead += 1
    states = {n: s[lead:] for n, s in case.states.items()}
    n_bins -= lead
    any_state = []
    for b in range(n_bins):
        col = [states[n][b] for n in case.nodes]
        any_state.append("up" if "up" in col else ("down" if "down" in col else "idle"))
    offered = sum(s != "idle" for s in any_state)
    avail = sum(s == "up" for s in any_state)
    all_ok = sum(
        any_state[b] != "idle" and all(states[n][b] != "down" for n in case.nodes) for b in range(n_bins)
    )
    outages = []
    run: list[int] = []
    for b, s in enumerate(any_state):
        if s == "down":
            run.append(b)
        elif s == "up" and run:
            outages.append((run[0], run[-1], len(run)))
            run = []
    if run:
        outages.append((run[0], run[-1], len(run)))
    per_node = {}
    for n in case.nodes:
        up = states[n].count("up")
        down = states[n].count("down")
        per_node["*" if n is None else n] = (up + down, up)
    while any_state and any_state[-1] == "idle":  # nor after the last one
        any_state.pop()
    return {
        "first_bin": first_bin,
        "offered": offered,
        "available": avail,
        "all_ok": all_ok,
        "outages": outages,
        "per_node": per_node,
        "any_state": any_state,
    }


def frac(a: int, b: int) -> float:
    return round(a / b, 6) if b else 0.0


@settings(max_examples=1000, deadline=None)
@given(case=cases())
def test_availability_matches_the_timeline(case: Case) -> None:
    ctx = CheckContext(events=tuple(case.events))
    r = check_availability(case.history, ctx)
    f = r.figures
    if not case.writes:
        assert r.valid == "unknown"
        return
    exp = oracle(case)
    assert r.valid is True
    assert f["writes"] == len(case.writes)
    assert f["writes_ok"] == sum(w.type == "ok" for w in case.writes)
    assert f["writes_failed"] == sum(w.type == "fail" for w in case.writes)
    assert f["writes_indeterminate"] == sum(w.type == "info" for w in case.writes)
    assert f["bins_offered"] == exp["offered"]
    assert f["bins_available"] == exp["available"]
    assert f["availability"] == frac(exp["available"], exp["offered"])
    assert f["availability_all_nodes"] == frac(exp["all_ok"], exp["offered"])
    assert {k: (v["bins_offered"], v["bins_available"]) for k, v in f["per_node"].items()} == {
        k: v for k, v in exp["per_node"].items() if v[0]
    }
    assert f["outage_count"] == len(exp["outages"])
    ok_times = sorted(w.t_done for w in case.writes if w.type == "ok")
    bad_times = sorted(w.t_done for w in case.writes if w.type != "ok")
    events = sorted(case.events, key=lambda e: (e.start, e.id))
    for got, (first, last, n_down) in zip(f["outages"], exp["outages"], strict=True):
        start, end = (exp["first_bin"] + first) * BIN, (exp["first_bin"] + last + 1) * BIN
        assert (got["start_ns"], got["end_ns"], got["unavailable_bins"]) == (start, end, n_down)
        assert got["duration_ns"] == end - start
        cause = [e for e in events if e.start < start + BIN]
        ev = cause[-1] if cause else None
        assert got["event"] == (ev.id if ev else "none")
        rec = next((t for t in ok_times if t >= end), None)
        assert got["recovered_at_ns"] == rec
        if ev is None:
            assert got["recovered_by"] is None and got["time_to_detect_ns"] is None
            continue
        det = next((t for t in bad_times if t >= ev.start), None)
        assert got["time_to_detect_ns"] == (None if det is None else det - ev.start)
        if rec is None:
            assert got["recovered_by"] is None and got["time_to_recover_ns"] is None
        elif ev.end is not None and rec >= ev.end:
            assert (got["recovered_by"], got["time_to_recover_ns"]) == ("heal", rec - ev.end)
        else:
            assert (got["recovered_by"], got["time_to_recover_ns"]) == ("failover", rec - ev.start)
    longest = max((b - a + 1 for a, b, _ in exp["outages"]), default=0) * BIN
    assert f["longest_outage_s"] == round(longest / 1e9, 6)
    # the "any" timeline expands to the oracle's states
    expanded = []
    for a, b, s in r.details["timeline"]["any"]:
        expanded += [s] * ((b - a) // BIN)
    assert expanded == exp["any_state"]
    # thresholds turn figures into verdicts
    if longest:
        tight = CheckContext(options={"availability": {"max_outage_s": longest / 1e9 - 0.01}})
        assert check_availability(case.history, tight).valid is False
        loose = CheckContext(options={"availability": {"max_outage_s": longest / 1e9}})
        assert check_availability(case.history, loose).valid is True
    assert check_availability(case.history, ctx).to_dict() == r.to_dict()
    assert json.loads(json.dumps(r.to_dict())) == r.to_dict()


@settings(max_examples=300, deadline=None)
@given(case=cases(single=True))
def test_outages_have_the_injected_lengths(case: Case) -> None:
    r = check_availability(case.history, CheckContext())
    runs = [len(list(g)) for s, g in itertools.groupby(case.states[None]) if s == "down"]
    assert [o["duration_ns"] for o in r.figures["outages"]] == [n * BIN for n in runs]
    ups = case.states[None].count("up")
    assert r.figures["availability"] == frac(ups, len(case.states[None]))
    if not runs:
        assert r.figures["outage_count"] == 0 and r.figures["availability"] == 1.0


def _h(*ops: tuple[Any, ...]) -> History:
    return History.from_ops(Op(i, *o) for i, o in enumerate(ops))


def test_a_fast_write_straddling_a_bin_edge_is_not_an_outage() -> None:
    h = _h((0, "invoke", "add", 1, 95_000_000), (0, "ok", "add", 1, 105_000_000))
    r = check_availability(h, CheckContext())
    assert r.figures["bins_offered"] == 2 and r.figures["bins_available"] == 2
    assert r.figures["outage_count"] == 0


def test_a_slow_ok_write_only_counts_where_it_completed() -> None:
    h = _h((0, "invoke", "add", 1, 0), (0, "ok", "add", 1, 350_000_000))
    r = check_availability(h, CheckContext())
    assert (r.figures["bins_offered"], r.figures["bins_available"]) == (4, 1)
    [o] = r.figures["outages"]
    assert (o["start_ns"], o["end_ns"], o["recovered_at_ns"]) == (0, 300_000_000, 350_000_000)


def test_failover_and_heal_recovery() -> None:
    ev_failover = Event("kill-1", "kill", "signal", "n1", {}, 1_000_000_000, 5_000_000_000)
    ops: list[tuple[Any, ...]] = []
    for p, t in enumerate(range(0, 3_000_000_000, 50_000_000)):
        kind = "fail" if 1_000_000_000 <= t < 1_500_000_000 else "ok"
        ops += [(p, "invoke", "write", p, t, "n1"), (p, kind, "write", p, t + 1_000_000, "n1")]
    r = check_availability(_h(*ops), CheckContext(events=(ev_failover,)))
    [o] = r.figures["outages"]
    assert o["event"] == "kill-1" and o["in_window"] is True
    assert (o["start_ns"], o["end_ns"]) == (1_000_000_000, 1_500_000_000)
    assert o["time_to_detect_ns"] == 1_000_000
    assert (o["recovered_by"], o["time_to_recover_ns"]) == ("failover", 501_000_000)
    ev_heal = Event("part-1", "partition", "iptables", "n1", {}, 1_000_000_000, 1_400_000_000)
    r2 = check_availability(_h(*ops), CheckContext(events=(ev_heal,)))
    [o2] = r2.figures["outages"]
    assert (o2["recovered_by"], o2["time_to_recover_ns"]) == ("heal", 101_000_000)
    assert r2.figures["events"][0]["outages"] == 1
    assert r2.figures["events"][0]["unavailable_s"] == 0.5


def test_no_writes_is_unknown() -> None:
    h = _h((0, "invoke", "read", None, 0), (0, "ok", "read", [], 10))
    r = check_availability(h, CheckContext())
    assert r.valid == "unknown"
    r2 = check_availability(h, CheckContext(options={"availability": {"write_fs": ["read"]}}))
    assert r2.valid is True and r2.figures["availability"] == 1.0


def _failover_history() -> History:
    """Writes every 100 ms; at 1.0 s the write dies (info) and the client spends 1 s reconnecting (a failed
    connect every 100 ms) before it connects and writes again."""
    ops: list[tuple[int, dict[str, Any]]] = []
    p = 0
    for i in range(10):
        t = i * BIN
        ops += [(t, {"process": p, "type": "invoke", "f": "write", "value": i}),
                (t + BIN // 10, {"process": p, "type": "ok", "f": "write", "value": i})]  # fmt: skip
    ops += [(10 * BIN, {"process": p, "type": "invoke", "f": "write", "value": 10}),
            (10 * BIN + BIN // 2, {"process": p, "type": "info", "f": "write", "value": 10})]  # fmt: skip
    p = 1
    for i in range(11, 21):
        ops += [(i * BIN, {"process": p, "type": "invoke", "f": "connect", "value": None}),
                (i * BIN + BIN // 2, {"process": p, "type": "fail", "f": "connect", "value": None})]  # fmt: skip
    ops += [(21 * BIN, {"process": p, "type": "invoke", "f": "connect", "value": None}),
            (21 * BIN + BIN // 10, {"process": p, "type": "ok", "f": "connect", "value": None}),
            (22 * BIN, {"process": p, "type": "invoke", "f": "write", "value": 22}),
            (22 * BIN + BIN // 10, {"process": p, "type": "ok", "f": "write", "value": 22})]  # fmt: skip
    return History.from_ops(Op(index=i, time=t, **f) for i, (t, f) in enumerate(ops))


def test_reconnecting_clients_make_an_outage_not_idle_time() -> None:
    h = _failover_history()
    ev = Event("kill-1", "kill", "docker", "n1", {}, start=10 * BIN, end=30 * BIN)
    fig = check_availability(h, CheckContext(events=(ev,))).figures
    # bins 10..21 are offered (the dying write, then connects) and none has a successful write
    assert fig["bins_offered"] == 23 and fig["bins_available"] == 11
    assert fig["outage_count"] == 1 and fig["longest_outage_s"] == 1.2
    assert fig["outages"][0]["time_to_detect_ns"] == BIN // 2
    assert fig["writes"] == 12 and fig["writes_failed"] == 0  # connects are demand, not writes
    # without demand ops the reconnect second looks idle and the outage shrinks to the dying write
    bare = check_availability(h, CheckContext(events=(ev,), options={"availability": {"demand_fs": []}}))
    assert bare.figures["longest_outage_s"] == 0.1


def test_failed_and_indeterminate_writes_are_counted_by_class() -> None:
    deadlock = (
        "OperationalError: (1213, 'Deadlock found when trying to get lock; try restarting transaction')"
    )
    lost = "OperationalError: (2013, 'Lost connection to MySQL server during query')"
    ops = [
        {"process": 0, "type": "invoke", "f": "write", "value": 1},
        {"process": 0, "type": "ok", "f": "write", "value": 1},
        {"process": 1, "type": "invoke", "f": "write", "value": 2},
        {"process": 1, "type": "fail", "f": "write", "value": 2, "error": deadlock},
        {"process": 2, "type": "invoke", "f": "write", "value": 3},
        {"process": 2, "type": "fail", "f": "write", "value": 3, "error": deadlock},
        {"process": 3, "type": "invoke", "f": "write", "value": 4},
        {"process": 3, "type": "info", "f": "write", "value": 4, "error": lost},
    ]
    history = History.from_ops(Op(index=i, time=i * BIN // 4, **o) for i, o in enumerate(ops))
    f = check_availability(history, CheckContext(options={"availability": {"write_fs": ["write"]}})).figures
    assert f["writes_failed"] == 2 and f["writes_indeterminate"] == 1
    assert f["aborts_by_code"] == {"1213": 2} and f["failed_by_reason"] == {"1213": 2}
    assert f["indeterminate_by_reason"] == {"lost-connection": 1}
