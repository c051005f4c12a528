"""Strongly connected components: Tarjan's algorithm, iterative (no recursion limit), over ``adj`` edges
whose kind bits meet ``mask`` and (optionally) whose ends both lie in ``within``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from itertools import chain

__all__ = ["strongly_connected"]

ALL_KINDS = 31  # every edge kind bit ``graph`` defines


def strongly_connected(
    nodes: Iterable[int], adj: Sequence[dict[int, int]], mask: int, within: Collection[int] | None = None
) -> list[list[int]]:
    """The components of two or more nodes (a txn never depends on itself), each in discovery order."""
    if within is None:
        return [] if _acyclic(adj, mask) else _whole(adj, mask)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in nodes:
        if root in index or not adj[root]:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(adj[root].items()))]
        while work:
            v, it = work[-1]
            descended = False
            for w, bits in it:
                if not bits & mask or (within is not None and w not in within):
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(adj[w].items())))
                    descended = True
                    break
                if w in on_stack and index[w] < low[v]:
                    low[v] = index[w]
            if descended:
                continue
            work.pop()
            lv = low[v]
            if work:
                u = work[-1][0]
                if lv < low[u]:
                    low[u] = lv
            if lv == index[v]:
                w = stack.pop()
                on_stack.discard(w)
                if w == v:
                    continue
                comp = [w]
                while w != v:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                comp.reverse()
                out.append(comp)
    return out


def _acyclic(adj: Sequence[dict[int, int]], mask: int) -> bool:
    """No cycle over ``mask`` edges: Kahn's algorithm peels every node (in-degrees counted in C). Much
    cheaper than Tarjan's bookkeeping, and the usual answer for a valid history."""
    n = len(adj)
    indeg = [0] * n
    if mask & ALL_KINDS == ALL_KINDS:
        counts = Counter(chain.from_iterable(adj))
    else:
        counts = Counter(w for d in adj for w, bits in d.items() if bits & mask)
    for w, c in counts.items():
        indeg[w] = c
    queue = [v for v in range(n) if not indeg[v]]
    if mask & ALL_KINDS == ALL_KINDS:
        for v in queue:  # grows while it is walked: each node once, when its last predecessor is peeled
            for w in adj[v]:
                c = indeg[w] - 1
                indeg[w] = c
                if not c:
                    queue.append(w)
    else:
        for v in queue:
            for w, bits in adj[v].items():
                if bits & mask:
                    c = indeg[w] - 1
                    indeg[w] = c
                    if not c:
                        queue.append(w)
    return len(queue) == n


def _whole(adj: Sequence[dict[int, int]], mask: int) -> list[list[int]]:
    """``strongly_connected`` over every node, with lists for the bookkeeping (the hot case)."""
    n = len(adj)
    index = [-1] * n
    low = [0] * n
    on_stack = bytearray(n)
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] >= 0 or not adj[root]:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = 1
        work = [(root, iter(adj[root].items()))]
        while work:
            v, it = work[-1]
            descended = False
            for w, bits in it:
                if not bits & mask:
                    continue
                iw = index[w]
                if iw < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = 1
                    work.append((w, iter(adj[w].items())))
                    descended = True
                    break
                if on_stack[w] and iw < low[v]:
                    low[v] = iw
            if descended:
                continue
            work.pop()
            lv = low[v]
            if work:
                u = work[-1][0]
                if lv < low[u]:
                    low[u] = lv
            if lv == index[v]:
                w = stack.pop()
                on_stack[w] = 0
                if w == v:
                    continue
                comp = [w]
                while w != v:
                    w = stack.pop()
                    on_stack[w] = 0
                    comp.append(w)
                comp.reverse()
                out.append(comp)
    return out
