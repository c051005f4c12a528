"""Strongly connected components: Tarjan's algorithm, iterative (no recursion limit), over ``adj`` edges
whose kind bits meet ``mask`` and (optionally) whose ends both lie in ``within``."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

__all__ = ["strongly_connected"]


def strongly_connected(
    nodes: Iterable[int], adj: Sequence[dict[int, int]], mask: int, within: Collection[int] | None = None
) -> list[list[int]]:
    """The components of two or more nodes (a txn never depends on itself), each in discovery order."""
    if within is None:
        return _whole(adj, mask)
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
