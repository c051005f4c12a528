"""Partition shapes of the peer mesh, as Jepsen names them — pure: shapes → who drops whom.

A partition is a set of *directed* cuts ``(src, dst)``: packets from ``src`` do not reach ``dst``.
Every shape but ``one_way`` is symmetric. Validation happens here, before anything changes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from harness.errors import InputError

SHAPES = ("isolate", "halves", "random_halves", "majorities_ring", "bridge", "groups", "one_way")


@dataclass(frozen=True)
class Partition:
    shape: str
    components: tuple[frozenset[str], ...]  # what each side sees (may overlap: bridge, ring)
    cuts: frozenset[tuple[str, str]]  # directed: (src, dst) = packets from src dropped at dst

    def drops_at(self, node: str) -> set[str]:
        """Peers whose packets ``node`` must drop."""
        return {src for src, dst in self.cuts if dst == node}

    def describe(self) -> str:
        if self.shape == "one_way":
            return ", ".join(f"{s}-x->{d}" for s, d in sorted(self.cuts))
        return " | ".join("[" + ",".join(sorted(c)) + "]" for c in self.components)


def _symmetric(nodes: Sequence[str], visible: dict[str, set[str]]) -> frozenset[tuple[str, str]]:
    return frozenset((a, b) for a in nodes for b in nodes if a != b and b not in visible[a])


def from_components(shape: str, nodes: Sequence[str], components: Sequence[set[str]]) -> Partition:
    """Nodes see exactly the members of the components they belong to."""
    visible = {n: set().union(*[c for c in components if n in c]) | {n} for n in nodes}
    return Partition(shape, tuple(frozenset(c) for c in components), _symmetric(nodes, visible))


def bisect(nodes: Sequence[str]) -> list[set[str]]:
    half = len(nodes) // 2
    return [set(nodes[:half]), set(nodes[half:])]


def _known(nodes: Sequence[str], name: str, field: str) -> str:
    if name not in nodes:
        raise InputError(f"partition: {field}: unknown node {name!r}, expected one of: {', '.join(nodes)}")
    return name


def isolate(nodes: Sequence[str], node: str) -> Partition:
    _known(nodes, node, "isolate")
    if len(nodes) < 2:
        raise InputError("partition: isolate needs at least 2 nodes")
    return from_components("isolate", nodes, [{node}, set(nodes) - {node}])


def halves(nodes: Sequence[str], rng: random.Random | None = None) -> Partition:
    if len(nodes) < 2:
        raise InputError("partition: halves needs at least 2 nodes")
    order = list(nodes)
    if rng is not None:
        rng.shuffle(order)
    return from_components("random_halves" if rng else "halves", nodes, bisect(order))


def majorities_ring(nodes: Sequence[str]) -> Partition:
    """Each node sees a majority (itself and its ring neighbours); no two see the same majority."""
    n = len(nodes)
    if n < 4:
        raise InputError(f"partition: majorities_ring needs at least 4 nodes, this topology has {n}")
    majority = n // 2 + 1
    reach = majority // 2  # neighbours on each side: 2*reach + 1 >= majority, and < n so sets differ
    visible = {node: {nodes[(i + d) % n] for d in range(-reach, reach + 1)} for i, node in enumerate(nodes)}
    components = tuple(frozenset(visible[n]) for n in nodes)
    return Partition("majorities_ring", components, _symmetric(nodes, visible))


def bridge(nodes: Sequence[str]) -> Partition:
    """Two halves that both see one bridge node in the middle."""
    if len(nodes) < 3:
        raise InputError(f"partition: bridge needs at least 3 nodes, this topology has {len(nodes)}")
    mid = len(nodes) // 2
    b = nodes[mid]
    left, right = set(nodes[:mid]), set(nodes[mid + 1 :])
    return from_components("bridge", nodes, [left | {b}, right | {b}])


def groups(nodes: Sequence[str], spec: Sequence[Sequence[str]], clusters: Sequence[Sequence[str]] = ()
           ) -> Partition:  # fmt: skip
    """Each group sees only itself; unnamed nodes are alone. ``clusters``: a deployment of several
    clusters (a database and a broker): one that no group names is left whole, so that groups of the
    broker's nodes are a broker partition only."""
    named = [_known(nodes, n, "groups") for group in spec for n in group]
    if len(named) != len(set(named)):
        raise InputError("partition: groups: a node is named twice; groups must not overlap")
    if len(spec) < 2:
        raise InputError("partition: groups: expected at least two groups, e.g. [[n1], [n2, n3]]")
    components = [set(g) for g in spec]
    whole = [set(c) for c in clusters if not set(c) & set(named)]
    components += whole
    rest = set(nodes) - set(named) - set().union(*whole)
    components += [{n} for n in sorted(rest)]  # unnamed nodes are alone
    return from_components("groups", nodes, components)


_groups = groups  # plan() takes a parameter named `groups`


def one_way(nodes: Sequence[str], src: str, dst: str | Sequence[str]) -> Partition:
    """``src`` cannot reach ``dst``; ``dst`` can still send to ``src``."""
    _known(nodes, src, "one_way.from")
    targets = [dst] if isinstance(dst, str) else list(dst)
    for t in targets:
        _known(nodes, t, "one_way.to")
        if t == src:
            raise InputError("partition: one_way: from and to must differ")
    return Partition("one_way", (frozenset({src}), frozenset(targets)), frozenset((src, t) for t in targets))


PARAMETERLESS = ("halves", "random_halves", "majorities_ring", "bridge")


def plan(
    shape: str,
    nodes: Sequence[str],
    *,
    node: str | None = None,
    groups: Sequence[Sequence[str]] | None = None,
    src: str | None = None,
    dst: str | Sequence[str] | None = None,
    rng: random.Random | None = None,
    clusters: Sequence[Sequence[str]] = (),
) -> Partition:
    """One partition of ``nodes`` by shape name; InputError for an unknown or impossible shape.
    ``clusters``: the node names of each cluster of a deployment of several (see ``groups``)."""
    if shape == "isolate" and node is not None:
        return isolate(nodes, node)
    if shape == "halves":
        return halves(nodes)
    if shape == "random_halves":
        return halves(nodes, rng or random.Random(0))
    if shape == "majorities_ring":
        return majorities_ring(nodes)
    if shape == "bridge":
        return bridge(nodes)
    if shape == "groups" and groups is not None:
        return _groups(nodes, groups, clusters)
    if shape == "one_way" and src is not None and dst is not None:
        return one_way(nodes, src, dst)
    if shape in SHAPES:
        raise InputError(f"partition: {shape} is missing its parameters")
    raise InputError(f"partition: unknown shape {shape!r}, expected one of: {', '.join(SHAPES)}")
