"""The dependency graph between txns: Adya's ww / wr / rw edges from the version orders, and optionally
real-time and process order.

Nodes are txn ids; ``adj[a]`` maps each successor ``b`` to the bits of the edge kinds ``a → b`` (one int
per pair, several kinds or'ed together). For a key ``k`` with version order ``x1 … xn``:

* **ww** ``writer(x_i) → writer(x_{i+1})`` when they differ; and ``writer(xn) → T`` for every ok txn ``T``
  whose append to ``k`` no read shows (it must have come later);
* **wr** ``writer(last element of a read) → reader`` (external reads only);
* **rw** ``reader → writer(the next version after what it read)``; a read of the whole order anti-depends
  on every unobserved append.
* **realtime** ``T1 → T2`` when T1 completed ok before T2 was invoked, kept linear in size through
  virtual *barrier* nodes (ids from ``Graph.txns`` up; see ``_realtime``): every real-time path is kept and
  no other is made, and the cycle search folds barriers back into single real-time edges;
* **process** each process's txns in order.

Failed and malformed txns take part in nothing; info txns only through their observed appends (and as the
later end of real-time and process edges).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np

from harness.checkers.elle.mops import MopIndex, Read
from harness.checkers.elle.txn import FAILED, Txns
from harness.checkers.elle.versions import Versions

__all__ = ["DATA", "EDGE_NAMES", "EXT", "PROC", "RT", "RW", "WR", "WW", "Graph", "build_graph", "edge_name"]

WW, WR, RW, PROC, RT = 1, 2, 4, 8, 16
DATA = WW | WR | RW
EXT = PROC | RT
EDGE_NAMES = {WW: "ww", WR: "wr", RW: "rw", PROC: "process", RT: "realtime"}
_EMPTY: dict[int, int] = {}


def edge_name(bit: int) -> str:
    return EDGE_NAMES[bit]


@dataclass(slots=True)
class Graph:
    """``adj`` over txn ids ``0..txns-1`` and, once ``complete``, the real-time barriers after them.

    ``build_graph`` leaves out the real-time and process edges (``edges`` counts them all the same):
    ``acyclic`` decides a valid history without them (as arrays, never as barrier dicts), and only a graph
    with a cycle needs them in ``adj`` (``complete``, which adds them just as if they had been built with
    the rest, so the search sees the graph it always did).
    """

    adj: list[dict[int, int]]
    edges: int
    txns: int
    source: Txns
    realtime: bool
    process: bool
    completed: bool = False

    def kinds(self) -> dict[str, int]:
        """How many txn pairs have an edge of each kind (in ``adj``: ``complete`` it first for them all)."""
        counts = dict.fromkeys(EDGE_NAMES.values(), 0)
        for d in self.adj:
            for bits in d.values():
                for bit, name in EDGE_NAMES.items():
                    if bits & bit:
                        counts[name] += 1
        return counts

    def acyclic(self) -> bool:
        """Whether the whole graph (real-time and process edges too) has no cycle, decided without building
        it. Rank every txn somewhere between its invoke and its completion (both rows, doubled), and each
        barrier just after the completion that made it: real-time edges then all go forward, and so do
        process edges (a process's ops are sequential) and, for a good choice of ranks, most data edges. A
        cycle must step back, and every rank it spans is stepped over backwards by one of its edges, so it
        lies within one span of overlapping backward edges: only the nodes inside those spans need peeling
        (none, for a history serial in the order of the ranks)."""
        if self.completed:
            raise ValueError("acyclic() is for the data graph, before complete()")
        txns = self.source
        src, dst = _data_edges(self.adj)
        if self.process:
            a, b = _process_pairs(txns)
            src, dst = np.concatenate((src, a)), np.concatenate((dst, b))
        rank, back = _best_rank(txns, src, dst)
        if not back.any():
            return True
        spans = _spans(rank[dst[back]], rank[src[back]])
        parts = [_inside(spans, src, dst, rank[src], rank[dst])]
        if self.realtime:
            rs, rd, rrank = _realtime_arrays(txns, len(self.adj))
            full = np.concatenate((rank, rrank))
            parts.append(_inside(spans, rs, rd, full[rs], full[rd]))
        return _peels(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def complete(self) -> None:
        """Add the real-time (barriers) and process edges to ``adj``."""
        if self.completed:
            return
        if self.realtime:
            _realtime(self.source, self.adj)
        if self.process:
            _process(self.source, self.adj)
        self.completed = True


def build_graph(txns: Txns, ix: MopIndex, vs: Versions, *, realtime: bool, process: bool) -> Graph:
    """The data edges in ``adj``, and how many edges the whole graph has (see ``Graph``)."""
    n = len(txns)
    adj: list[dict[int, int]] = [{} for _ in range(n)]
    writer, ok_values = ix.writer, ix.ok_values
    for k, rs in ix.reads.items():
        wk = writer.get(k, _EMPTY)
        order = vs.order[k]
        wo = list(map(wk.get, order))  # the writer of each version, None when unknown
        last = _ww(adj, wo)
        ov = ok_values.get(k)
        pos = vs.pos[k]
        unobserved = sorted({wk[v] for v in set(ov).difference(pos)}) if ov else []
        if unobserved and last is not None:
            _link(adj, last, unobserved, WW)
        bad = vs.bad_reads.get(k)
        if bad is None and k not in vs.deduped:
            _prefix_reads(adj, rs, vs.lens[k], wo, unobserved)
        else:
            _other_reads(adj, rs, order, pos, wk, bad, k in vs.deduped, unobserved)
    edges = sum(map(len, adj))
    if realtime:
        edges += _realtime_edges(txns)
    if process:
        edges += _process_edges(txns, adj)
    return Graph(adj, edges, n, txns, realtime, process)


def _ww(adj: list[dict[int, int]], wo: list[int | None]) -> int | None:
    """ww edges along a key's version order (``wo``: their writers); returns the last known writer."""
    prev = None
    for w in wo:
        if w is None:
            continue
        if prev is not None and w != prev:
            d = adj[prev]
            d[w] = d.get(w, 0) | WW
        prev = w
    return prev


def _link(adj: list[dict[int, int]], a: int, targets: list[int], kind: int) -> None:
    """``a → u`` of ``kind`` for each ``u`` in ``targets`` but ``a`` itself."""
    d = adj[a]
    for u in targets:
        if u != a:
            d[u] = d.get(u, 0) | kind


def _prefix_reads(
    adj: list[dict[int, int]], rs: list[Read], lens: list[int], wo: list[int | None], unobserved: list[int]
) -> None:
    """wr / rw edges of a key whose reads are all prefixes of its version order (the usual key): a read
    of length ``j`` ends at version ``j - 1`` and misses version ``j`` (or, when it saw them all, every
    unobserved append); only lengths are needed, not the reads themselves."""
    nv = len(wo)
    for (t, _, ext), j in zip(rs, lens, strict=True):
        if not ext:
            continue
        if j:
            w = wo[j - 1]
            if w is not None and w != t:
                d = adj[w]
                d[t] = d.get(t, 0) | WR
        if j < nv:
            w = wo[j]
            if w is not None and w != t:
                d = adj[t]
                d[w] = d.get(w, 0) | RW
        elif unobserved:
            _link(adj, t, unobserved, RW)


def _other_reads(
    adj: list[dict[int, int]],
    rs: list[Read],
    order: list[int],
    pos: dict[int, int],
    wk: dict[int, int],
    bad: set[int] | None,
    dedup: bool,
    unobserved: list[int],
) -> None:
    """wr / rw edges of a key with incompatible reads (they get wr edges only) or duplicate elements
    (versions placed by ``pos``)."""
    wget = wk.get
    nv = len(order)
    for i, (t, seen, ext) in enumerate(rs):
        if not ext:
            continue
        if seen:
            w = wget(seen[-1])
            if w is not None and w != t:
                d = adj[w]
                d[t] = d.get(t, 0) | WR
        if bad is not None and i in bad:
            continue
        j = (pos[seen[-1]] + 1 if seen else 0) if dedup else len(seen)
        if j < nv:
            w = wget(order[j])
            if w is not None and w != t:
                d = adj[t]
                d[w] = d.get(w, 0) | RW
        else:
            _link(adj, t, unobserved, RW)


def _members(txns: Txns) -> np.ndarray:
    """Txn ids that may take part: not failed, not malformed."""
    keep = np.asarray(txns.status, dtype=np.int64) != FAILED
    if txns.malformed:
        keep[np.asarray(txns.malformed, dtype=np.int64)] = False
    return np.flatnonzero(keep)


def _data_edges(adj: list[dict[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """``adj`` as (source, target) arrays."""
    lens = np.fromiter(map(len, adj), dtype=np.int64, count=len(adj))
    dst = np.fromiter(chain.from_iterable(adj), dtype=np.int64, count=int(lens.sum()))
    return np.repeat(np.arange(len(adj), dtype=np.int64), lens), dst


def _best_rank(txns: Txns, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of three ranks (each txn at its completion, midway, at its invoke), the one fewest edges go back
    on (ties count as back), and that mask. Every rank lies in ``[2 * invoke_row, 2 * end_row]``, so no
    txn ties a barrier (odd, ``2 * completion + 1``) and real-time edges go strictly forward."""
    end, inv = txns.end_row, txns.invoke_row
    best: tuple[np.ndarray, np.ndarray] | None = None
    for rank in (2 * end, inv + end, 2 * inv):
        back = rank[src] >= rank[dst]
        if best is None or np.count_nonzero(back) < np.count_nonzero(best[1]):
            best = rank, back
        if not best[1].any():
            break
    assert best is not None
    return best


def _spans(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The closed intervals ``[start, end]`` merged where they overlap or touch, as (starts, ends)."""
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], np.maximum.accumulate(ends[order])
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > e[:-1]
    last = np.flatnonzero(np.append(new[1:], True))
    return s[new], e[last]


def _inside(
    spans: tuple[np.ndarray, np.ndarray], src: np.ndarray, dst: np.ndarray, rs: np.ndarray, rd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The edges (``rs`` / ``rd`` their ends' ranks) with both ends in the same span."""
    starts, ends = spans
    gs = np.searchsorted(starts, rs, side="right") - 1
    gd = np.searchsorted(starts, rd, side="right") - 1
    keep = (gs == gd) & (gs >= 0)
    keep &= rs <= ends[np.maximum(gs, 0)]
    keep &= rd <= ends[np.maximum(gd, 0)]
    return src[keep], dst[keep]


def _peels(src: np.ndarray, dst: np.ndarray) -> bool:
    """Kahn's algorithm over the edges ``src → dst``: True when every node peels (no cycle)."""
    nodes, ends = np.unique(np.concatenate((src, dst)), return_inverse=True)
    m = len(nodes)
    s, d = ends[: len(src)], ends[len(src) :]
    order = np.argsort(s, kind="stable")
    targets = d[order].tolist()
    first = np.searchsorted(s[order], np.arange(m + 1)).tolist()
    indeg = np.bincount(d, minlength=m).tolist()
    queue = [v for v in range(m) if not indeg[v]]
    for v in queue:  # grows while it is walked: each node once, when its last predecessor is peeled
        for w in targets[first[v] : first[v + 1]]:
            c = indeg[w] - 1
            indeg[w] = c
            if not c:
                queue.append(w)
    return len(queue) == m


def _realtime_arrays(txns: Txns, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The real-time edges ``_realtime`` would add, as (source, target) arrays (barriers numbered from
    ``first``), and each barrier's rank (just after the completion that made it: ``2 * row + 1``)."""
    events = _realtime_events(txns)
    done = (events & 1) == 0
    made = np.cumsum(done) - 1  # per event: the barrier current after it (-1: none yet)
    t = events >> 1
    comp = np.flatnonzero(done)
    barrier = first + made[comp]
    inv = np.flatnonzero(~done & (made >= 0))
    src = np.concatenate((t[comp], barrier[:-1], first + made[inv]))
    dst = np.concatenate((barrier, barrier[1:], t[inv]))
    return src, dst, 2 * txns.end_row[t[comp]] + 1


def _realtime_events(txns: Txns) -> np.ndarray:
    """The real-time events by history row (= time order): ``2*t+1`` the invoke of ``t``, ``2*t`` its ok
    completion."""
    ids = _members(txns)
    inv = txns.invoke_row[ids]
    comp = txns.complete_row[ids]
    done = comp >= 0
    rows = np.concatenate((inv, comp[done]))
    codes = np.concatenate((ids * 2 + 1, ids[done] * 2))
    return codes[np.argsort(rows, kind="stable")]


def _realtime_edges(txns: Txns) -> int:
    """How many edges ``_realtime`` adds: per ok completion ``t → B'`` and (but for the first) ``B → B'``;
    per invoke after the first completion ``B → x``."""
    events = _realtime_events(txns)
    done = np.flatnonzero((events & 1) == 0)
    if len(done) == 0:
        return 0
    later_invokes = len(events) - int(done[0]) - len(done)
    return 2 * len(done) - 1 + later_invokes


def _realtime(txns: Txns, adj: list[dict[int, int]]) -> None:
    """Real-time order through *barriers*, virtual nodes appended after the txns: each ok completion of
    ``t`` makes a new barrier ``B'`` with ``B → B'`` (the previous barrier) and ``t → B'``; each invoke of
    ``x`` gets ``B → x`` from the current one. A path ``p → … → x`` then exists exactly when ``p`` completed
    before ``x`` was invoked, with three edges per txn instead of one per earlier txn."""
    events = _realtime_events(txns).tolist()
    # each key below is new to its dict (a txn is invoked once and completes once, barriers are fresh), so
    # plain stores give what or-ing kind bits would; before the first completion ``current`` is scratch
    b = len(adj)
    current: dict[int, int] = {}
    new_barrier = adj.append
    for e in events:
        if e & 1:
            current[e >> 1] = RT
        else:
            nxt: dict[int, int] = {}
            new_barrier(nxt)
            current[b] = RT
            adj[e >> 1][b] = RT
            current = nxt
            b += 1


def _process_pairs(txns: Txns) -> tuple[np.ndarray, np.ndarray]:
    """Each process's consecutive txns (by invoke) as ``(earlier, later)`` id arrays."""
    ids = _members(txns)
    if len(ids) < 2:
        return ids[:0], ids[:0]
    proc = txns.process[ids]
    order = np.lexsort((txns.invoke_row[ids], proc))
    s_ids, s_proc = ids[order], proc[order]
    same = np.flatnonzero(s_proc[1:] == s_proc[:-1])
    return s_ids[same], s_ids[same + 1]


def _process_edges(txns: Txns, adj: list[dict[int, int]]) -> int:
    """How many edges ``_process`` adds to the data graph ``adj`` (pairs it has no edge for yet)."""
    a, b = _process_pairs(txns)
    return sum(1 for x, y in zip(a.tolist(), b.tolist(), strict=True) if y not in adj[x])


def _process(txns: Txns, adj: list[dict[int, int]]) -> None:
    a, b = _process_pairs(txns)
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        d = adj[x]
        d[y] = d.get(y, 0) | PROC
