"""The divergence checker against per-node checksums with injected differences."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checkers import CheckContext, check_divergence
from harness.model.history import History


@st.composite
def checksums(draw: st.DrawFn) -> tuple[dict[str, dict[str, Any]], set[str]]:
    nodes = draw(st.lists(st.sampled_from(["n1", "n2", "n3", "n4"]), min_size=2, max_size=4, unique=True))
    tables = draw(st.lists(st.sampled_from(["t_set", "t_bank", "t_hb", "t_x"]), min_size=1, unique=True))
    base = {
        t: {"rows": draw(st.integers(0, 100)), "checksum": draw(st.sampled_from(["a1", "b2", "c3"]))}
        for t in tables
    }
    sums = {n: {t: dict(v) for t, v in base.items()} for n in nodes}
    differ: set[str] = set()
    for t in tables:
        how = draw(st.sampled_from(["same", "same", "rows", "checksum", "missing"]))
        if how == "same":
            continue
        n = draw(st.sampled_from(nodes))
        if how == "rows":
            sums[n][t]["rows"] += draw(st.integers(1, 3))
        elif how == "checksum":
            sums[n][t]["checksum"] += "x"
        else:
            del sums[n][t]
        differ.add(t)
    return sums, differ


@settings(max_examples=1000, deadline=None)
@given(case=checksums())
def test_divergence_finds_exactly_the_differing_tables(
    case: tuple[dict[str, dict[str, Any]], set[str]],
) -> None:
    sums, differ = case
    r = check_divergence(History.empty(), CheckContext(checksums=sums))
    assert r.valid is (not differ)
    assert r.figures["differing"] == sorted(differ)
    assert r.figures["nodes"] == sorted(sums)
    for t in differ:
        by_node = r.figures["by_table"][t]
        assert set(by_node) == set(sums)
        for n, e in by_node.items():
            assert e == sums[n].get(t)
    assert json.loads(json.dumps(r.to_dict())) == r.to_dict()
    only = sorted(differ)[:1]
    r2 = check_divergence(
        History.empty(), CheckContext(checksums=sums, options={"divergence": {"tables": only}})
    )
    assert r2.figures["differing"] == only


def test_absent_or_single_node_is_unknown() -> None:
    assert check_divergence(History.empty(), CheckContext()).valid == "unknown"
    one = CheckContext(checksums={"n1": {"t": {"rows": 1, "checksum": "a"}}})
    assert check_divergence(History.empty(), one).valid == "unknown"
