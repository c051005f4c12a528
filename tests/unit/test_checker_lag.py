"""The lag checker against sampled lag with a spike of known size around a fault window."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checkers import CheckContext, check_lag
from harness.model.history import Event, History, Sample

S = 1_000_000_000
METRIC = "replication_lag_s"
BASE = [0.0, 0.25, 1.0]  # at or under the 1 s catch-up threshold


@dataclass
class Case:
    samples: list[Sample]
    event: Event | None
    spike: dict[str, float]  # node → spike height
    spike_until: dict[str, int]  # node → spike covers samples with time < this
    max_lag: float | None
    max_catch_up: float | None
    max_points: int


@st.composite
def lag_cases(draw: st.DrawFn) -> Case:
    nodes = draw(st.sampled_from([["n2"], ["n2", "n3"]]))
    start = draw(st.integers(0, 20)) * S // 2
    end = start + draw(st.integers(0, 10)) * S // 2
    event = draw(st.none() | st.just(Event("pause-1", "pause", "signal", "n2", {}, start, end)))
    samples: list[Sample] = []
    spike: dict[str, float] = {}
    until: dict[str, int] = {}
    for node in nodes:
        n = draw(st.integers(0, 20))
        times = sorted(draw(st.lists(st.integers(0, 30 * S), min_size=n, max_size=n, unique=True)))
        h = draw(st.sampled_from([2.0, 3.5, 7.25]))
        extra = draw(st.integers(0, 4)) * S // 4
        if event is not None and event.end is not None:
            spike[node], until[node] = h, event.end + extra
        base = draw(st.lists(st.sampled_from([*BASE, *BASE, "NULL"]), min_size=n, max_size=n))
        for t, b in zip(times, base, strict=True):
            v: float | str = h if node in spike and start <= t < until[node] else b
            samples.append(Sample(t, node, METRIC, v))
    samples += [Sample(5, "n2", "wsrep_ready", 1.0)]  # other metrics are ignored
    return Case(
        samples=draw(st.permutations(samples)),
        event=event,
        spike=spike,
        spike_until=until,
        max_lag=draw(st.none() | st.sampled_from([1.0, 3.0, 10.0])),
        max_catch_up=draw(st.none() | st.sampled_from([0.0, 0.5, 2.0])),
        max_points=draw(st.integers(1, 50)),
    )


def p99(xs: list[float]) -> float:
    s = sorted(xs)
    pos = 0.99 * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@settings(max_examples=1000, deadline=None)
@given(case=lag_cases())
def test_lag_checker_measures_the_spike(case: Case) -> None:
    opts = {"max_lag_s": case.max_lag, "max_catch_up_s": case.max_catch_up, "max_points": case.max_points}
    ctx = CheckContext(events=() if case.event is None else (case.event,), samples=tuple(case.samples))
    ctx = CheckContext(events=ctx.events, samples=ctx.samples, options={"lag": opts})
    r = check_lag(History.empty(), ctx)
    f = r.figures
    mine = [s for s in case.samples if s.metric == METRIC]
    numeric = [s for s in mine if not isinstance(s.value, str)]
    if not numeric:
        assert r.valid == "unknown"
        return
    by_node: dict[str, list[Sample]] = {}
    for s in sorted(mine, key=lambda s: s.time):
        by_node.setdefault(s.node, []).append(s)
    assert f["nodes"] == sorted(by_node)
    overall_max = max(float(s.value) for s in numeric)
    assert f["overall"]["max"] == overall_max
    assert f["overall"]["count"] == len(numeric)
    for node, ss in by_node.items():
        vals = [float(s.value) for s in ss if not isinstance(s.value, str)]
        st_ = f["per_node"][node]
        assert st_["count"] == len(vals)
        assert st_["non_numeric"] == len(ss) - len(vals)
        if vals:
            assert st_["max"] == max(vals)
            assert st_["p50"] == round(statistics.median(vals), 6)
            assert st_["p99"] == round(p99(vals), 6)
            # a spike of known height shows as the node's max when it was sampled
            if node in case.spike and any(
                case.event.start <= s.time < case.spike_until[node]
                for s in ss  # type: ignore[union-attr]
            ):
                assert st_["max"] == case.spike[node]
        series = r.details["series"][node]
        assert len(series["t"]) == len(series["lag_s"]) <= case.max_points
        if vals:
            # each kept point is the max of its bucket, so downsampling never drops the peak
            assert max(v for v in series["lag_s"] if v is not None) == max(vals)
            if len(ss) <= case.max_points:
                assert series["t"] == [s.time for s in ss]
            else:  # chunks of consecutive samples, each its max stamped with its first sample's time
                assert series["t"][0] == ss[0].time
                assert set(series["t"]) <= {s.time for s in ss}
                ends = [*series["t"][1:], ss[-1].time + 1]
                for start, end, shown in zip(series["t"], ends, series["lag_s"], strict=True):
                    chunk = [
                        float(s.value) for s in ss if start <= s.time < end and not isinstance(s.value, str)
                    ]
                    assert shown == (max(chunk) if chunk else None)
    # catch-up after the heal: first sample at or after the end with lag <= 1 s
    verdict_false = case.max_lag is not None and overall_max > case.max_lag
    verdict_unknown = False
    if case.event is not None and case.event.end is not None:
        [heal] = f["heals"]
        for node, ss in by_node.items():
            after = [s for s in ss if s.time >= case.event.end]
            got = heal["nodes"][node]
            assert got["samples_after"] == len(after)
            # by construction: the first numeric sample once the spike is over
            until = case.spike_until[node]
            hit = next((s for s in ss if s.time >= until and not isinstance(s.value, str)), None)
            exp = None if hit is None else round((hit.time - case.event.end) / 1e9, 6)
            assert got["catch_up_s"] == exp
            if case.max_catch_up is not None:
                if not after:
                    verdict_unknown = True
                elif exp is None or exp > case.max_catch_up:
                    verdict_false = True
    else:
        assert f["heals"] == []
    assert r.valid == (False if verdict_false else ("unknown" if verdict_unknown else True))
    assert json.loads(json.dumps(r.to_dict())) == r.to_dict()
    assert check_lag(History.empty(), ctx).to_dict() == r.to_dict()


def test_no_samples_is_unknown_and_downsampling_keeps_peaks() -> None:
    assert check_lag(History.empty(), CheckContext()).valid == "unknown"
    only_null = CheckContext(samples=(Sample(0, "n1", METRIC, "NULL"),))
    assert check_lag(History.empty(), only_null).valid == "unknown"
    samples = tuple(Sample(i * 1000, "n1", METRIC, 9.0 if i == 4321 else 0.1) for i in range(10_000))
    r = check_lag(History.empty(), CheckContext(samples=samples))
    series = r.details["series"]["n1"]
    assert len(series["t"]) == 1000
    assert max(series["lag_s"]) == 9.0 and r.figures["overall"]["max"] == 9.0
    assert series["t"] == sorted(series["t"])
