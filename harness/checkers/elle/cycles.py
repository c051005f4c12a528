"""Finding and naming dependency cycles, one shortest cycle per anomaly class and strongly connected component.

A cycle is named by its edges (Adya; Elle's names for the item-level variants):

* only ww → ``G0``; ww and wr (no rw) → ``G1c``;
* exactly one rw → ``G-single``; two or more, no two adjacent (cyclically) → ``G-nonadjacent``; otherwise
  ``G2-item``;
* with a real-time edge the name takes ``-realtime``, else with a process edge ``-process`` (``G0-realtime``,
  ``G-single-process``…): the cycle needs that order to close.

Search: within each SCC of the whole graph, for each class, the SCCs of the subgraph that class may use
(Tarjan again), and from up to ``MAX_STARTS`` edges of the kind the class needs, a breadth-first search
back to the edge's source: the shortest cycle through that edge under the class's constraint (no rw, exactly
one rw, no two rw in a row). Each class keeps its shortest cycle per SCC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.checkers.elle.graph import DATA, EXT, PROC, RT, RW, WR, WW
from harness.checkers.elle.scc import strongly_connected

__all__ = ["MAX_STARTS", "Cycle", "classify", "find_cycles"]

MAX_STARTS = 16  # start edges tried per class and sub-component (2 in components over BIG nodes)
BIG = 2000
ANY, NO_RW, ONE_RW, NONADJACENT = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Cycle:
    """``nodes[0] → nodes[1] → … → nodes[-1] == nodes[0]``, ``kinds[i]`` the edge kind of step i."""

    anomaly: str
    nodes: tuple[int, ...]
    kinds: tuple[int, ...]
    scc_size: int


def classify(kinds: Sequence[int]) -> str:
    rw = [k == RW for k in kinds]
    n = sum(rw)
    if n == 0:
        base = "G1c" if WR in kinds else "G0"
    elif n == 1:
        base = "G-single"
    else:
        adjacent = any(rw[i] and rw[i - 1] for i in range(len(rw)))
        base = "G2-item" if adjacent else "G-nonadjacent"
    if RT in kinds:
        return base + "-realtime"
    if PROC in kinds:
        return base + "-process"
    return base


# (kinds a start edge may have, kinds the rest may use, constraint on rw edges)
_SEARCHES = (
    (WW, WW, ANY),
    (WR, WW | WR, ANY),
    (RW, WW | WR, NO_RW),
    (RW, DATA, NONADJACENT),
    (RW, DATA, ANY),
)
_EXT_SEARCHES = (
    (EXT, WW | EXT, ANY),
    (EXT, WW | WR | EXT, ANY),
    (EXT, DATA | EXT, ONE_RW),
    (EXT, DATA | EXT, NONADJACENT),
    (EXT, DATA | EXT, ANY),
)


def _bfs(
    adj: Sequence[dict[int, int]], within: set[int], u: int, v: int, first: int, mask: int, mode: int
) -> tuple[list[int], list[int]] | None:
    """The shortest path ``v → … → u`` (nodes after v, kinds) that closes the cycle ``u →first→ v`` under
    ``mode``; None when there is none. States: node * 8 + rw count (capped at 2) * 2 + last edge was rw."""
    if mode == NO_RW:
        mask &= ~RW
    track = mode in (ONE_RW, NONADJACENT)
    r0 = 1 if (first == RW and track) else 0
    init = v * 8 + r0 * 2 + r0
    if v == u:
        return [], []
    parent: dict[int, tuple[int, int]] = {init: (-1, 0)}
    frontier = [init]
    goal = -1
    while frontier and goal < 0:
        nxt: list[int] = []
        for s in frontier:
            x = s >> 3
            cnt = (s >> 1) & 3
            last = s & 1
            for w, bits in adj[x].items():
                b = bits & mask
                if not b or w not in within:
                    continue
                plain = b & ~RW
                if plain or not track:
                    kind = (plain & -plain) if plain else RW
                    ns = w * 8 + cnt * 2
                    if ns not in parent:
                        parent[ns] = (s, kind)
                        if w == u and (mode != ONE_RW or cnt == 1) and (mode != NONADJACENT or cnt >= 2):
                            goal = ns
                            break
                        nxt.append(ns)
                if (
                    b & RW
                    and track
                    and not (mode == ONE_RW and cnt >= 1)
                    and not (mode == NONADJACENT and last)
                ):
                    nc = cnt + 1 if cnt < 2 else 2
                    ns = w * 8 + nc * 2 + 1
                    if ns not in parent:
                        parent[ns] = (s, RW)
                        if (
                            w == u
                            and (mode != ONE_RW or nc == 1)
                            and (mode != NONADJACENT or (nc >= 2 and first != RW))
                        ):
                            goal = ns
                            break
                        nxt.append(ns)
            if goal >= 0:
                break
        frontier = nxt
    if goal < 0:
        return None
    nodes: list[int] = []
    kinds: list[int] = []
    s = goal
    while s != init:
        prev, kind = parent[s]
        nodes.append(s >> 3)
        kinds.append(kind)
        s = prev
    nodes.reverse()
    kinds.reverse()
    return nodes, kinds


def _simple(nodes: list[int], kinds: list[int]) -> list[tuple[list[int], list[int]]]:
    """A closed walk (a search with rw constraints may pass a node twice) as the simple cycles it is made
    of, each named on its own."""
    stack = [nodes[0]]
    stack_kinds: list[int] = []
    where = {nodes[0]: 0}
    out: list[tuple[list[int], list[int]]] = []
    for nxt, kind in zip(nodes[1:], kinds, strict=True):
        stack_kinds.append(kind)
        j = where.get(nxt)
        if j is None:
            where[nxt] = len(stack)
            stack.append(nxt)
            continue
        out.append(([*stack[j:], nxt], stack_kinds[j:]))
        for x in stack[j + 1 :]:
            del where[x]
        del stack[j + 1 :]
        del stack_kinds[j:]
    return out


def _fold(nodes: list[int], kinds: list[int], real: int) -> tuple[list[int], list[int]] | None:
    """A simple cycle with its barrier nodes (ids >= ``real``) folded into real-time edges, starting at a
    txn; None when it has no txn (barriers alone are never cyclic)."""
    body, ks = nodes[:-1], kinds
    first = next((i for i, x in enumerate(body) if x < real), None)
    if first is None:
        return None
    body = body[first:] + body[:first]
    ks = ks[first:] + ks[:first]
    out_nodes = [body[0]]
    out_kinds: list[int] = []
    pending = 0
    for x, k in zip([*body[1:], body[0]], ks, strict=True):
        if x >= real:
            pending = RT
            continue
        out_kinds.append(pending or k)
        pending = 0
        out_nodes.append(x)
    return out_nodes, out_kinds


def _search(
    adj: Sequence[dict[int, int]],
    real: int,
    comp: list[int],
    whole: int,
    search: tuple[int, int, int],
    found: dict[str, Cycle],
) -> None:
    start, mask, mode = search
    members = set(comp)
    subs = [comp] if mask == whole else strongly_connected(comp, adj, mask, members)
    for sub in subs:
        within = members if sub is comp else set(sub)
        tries = MAX_STARTS if len(sub) <= BIG else 2
        for a in sub:
            if tries <= 0:
                break
            for b, bits in adj[a].items():
                s = bits & start & mask
                if not s or b not in within:
                    continue
                first = s & -s
                path = _bfs(adj, within, a, b, first, mask, mode)
                tries -= 1
                if path is not None:
                    for walk in _simple([a, b, *path[0]], [first, *path[1]]):
                        folded = _fold(*walk, real)
                        if folded is None:
                            continue
                        nodes, kinds = folded
                        name = classify(kinds)
                        best = found.get(name)
                        if best is None or len(kinds) < len(best.kinds):
                            size = sum(1 for x in comp if x < real)
                            found[name] = Cycle(name, tuple(nodes), tuple(kinds), size)
                if tries <= 0:
                    break


def find_cycles(adj: Sequence[dict[int, int]], real: int, *, ext: bool) -> tuple[list[Cycle], int]:
    """(one shortest cycle per class and SCC, the number of SCCs); nodes from ``real`` up are barriers."""
    mask = DATA | EXT if ext else DATA
    sccs = strongly_connected(range(len(adj)), adj, mask)
    cycles: list[Cycle] = []
    for comp in sccs:
        found: dict[str, Cycle] = {}
        for search in _SEARCHES + _EXT_SEARCHES if ext else _SEARCHES:
            _search(adj, real, comp, mask, search, found)
        cycles.extend(found.values())
    return cycles, len(sccs)
