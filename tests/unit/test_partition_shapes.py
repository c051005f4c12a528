"""Partition shapes are pure: who drops whom, and impossible shapes are refused before anything changes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import InputError
from harness.faults import partition as P

N3 = ["n1", "n2", "n3"]


def reach(part: P.Partition, a: str, b: str) -> bool:
    return (a, b) not in part.cuts


def test_isolate() -> None:
    part = P.isolate(N3, "n2")
    assert part.cuts == {("n1", "n2"), ("n2", "n1"), ("n3", "n2"), ("n2", "n3")}
    assert part.drops_at("n2") == {"n1", "n3"}
    assert part.drops_at("n1") == {"n2"}
    assert part.describe() == "[n2] | [n1,n3]"


def test_halves_smaller_half_first() -> None:
    part = P.halves(["n1", "n2", "n3", "n4", "n5"])
    assert [sorted(c) for c in part.components] == [["n1", "n2"], ["n3", "n4", "n5"]]


def test_random_halves_is_seeded() -> None:
    nodes = [f"n{i}" for i in range(1, 8)]
    a = P.halves(nodes, random.Random(7))
    b = P.halves(nodes, random.Random(7))
    assert a == b and a.shape == "random_halves"


def test_bridge() -> None:
    part = P.bridge(["n1", "n2", "n3", "n4", "n5"])
    assert part.drops_at("n3") == set()  # the bridge sees everyone
    assert not reach(part, "n1", "n5") and not reach(part, "n5", "n1")
    assert reach(part, "n1", "n3") and reach(part, "n3", "n5")


def test_one_way_is_directed() -> None:
    part = P.one_way(N3, "n1", "n2")
    assert part.cuts == {("n1", "n2")}
    assert part.drops_at("n2") == {"n1"} and part.drops_at("n1") == set()


def test_groups_and_unnamed_nodes_alone() -> None:
    part = P.groups(["n1", "n2", "n3", "n4"], [["n1"], ["n2", "n3"]])
    assert reach(part, "n2", "n3") and not reach(part, "n1", "n2") and not reach(part, "n4", "n2")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: P.majorities_ring(N3),
            "partition: majorities_ring needs at least 4 nodes, this topology has 3",
        ),
        (lambda: P.bridge(["n1", "n2"]), "partition: bridge needs at least 3 nodes, this topology has 2"),
        (lambda: P.isolate(N3, "n9"), "partition: isolate: unknown node 'n9', expected one of: n1, n2, n3"),
        (
            lambda: P.groups(N3, [["n1", "n2"], ["n2"]]),
            "partition: groups: a node is named twice; groups must not overlap",
        ),
        (lambda: P.one_way(N3, "n1", "n1"), "partition: one_way: from and to must differ"),
    ],
)
def test_impossible_shapes_refused(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as exc:
        call()
    assert str(exc.value) == message


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=4, max_value=9))
def test_majorities_ring(n: int) -> None:
    nodes = [f"n{i}" for i in range(1, n + 1)]
    part = P.majorities_ring(nodes)
    seen = [frozenset(c) for c in part.components]
    assert all(len(c) > n // 2 for c in seen), "every node sees a majority"
    assert len(set(seen)) == n, "no two nodes see the same majority"
    assert all((b, a) in part.cuts for a, b in part.cuts), "links are symmetric"


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=2, max_value=9), st.randoms(use_true_random=False))
def test_symmetric_shapes_cut_both_ways(n: int, rng: random.Random) -> None:
    nodes = [f"n{i}" for i in range(1, n + 1)]
    for part in (P.halves(nodes), P.halves(nodes, rng), P.isolate(nodes, rng.choice(nodes))):
        assert all((b, a) in part.cuts for a, b in part.cuts)
        assert part.cuts, "a partition cuts something"
        assert all(a != b for a, b in part.cuts)
