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

import numpy as np

from harness.checkers.elle.mops import MopIndex
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
    """``adj`` over txn ids ``0..txns-1`` and, after them, the real-time barriers."""

    adj: list[dict[int, int]]
    edges: int
    txns: int

    def kinds(self) -> dict[str, int]:
        """How many txn pairs have an edge of each kind."""
        counts = dict.fromkeys(EDGE_NAMES.values(), 0)
        for d in self.adj:
            for bits in d.values():
                for bit, name in EDGE_NAMES.items():
                    if bits & bit:
                        counts[name] += 1
        return counts


def build_graph(txns: Txns, ix: MopIndex, vs: Versions, *, realtime: bool, process: bool) -> Graph:
    n = len(txns)
    adj: list[dict[int, int]] = [{} for _ in range(n)]
    writer, ok_values = ix.writer, ix.ok_values
    for k, rs in ix.reads.items():
        order = vs.order[k]
        pos = vs.pos[k]
        wk = writer.get(k, _EMPTY)
        wget = wk.get
        bad = vs.bad_reads.get(k)
        dedup = k in vs.deduped
        nv = len(order)
        prev = None
        for v in order:
            w = wget(v)
            if w is None:
                continue
            if prev is not None and w != prev:
                d = adj[prev]
                d[w] = d.get(w, 0) | WW
            prev = w
        ov = ok_values.get(k)
        unobserved = sorted({wk[v] for v in set(ov).difference(pos)}) if ov else []
        if unobserved and prev is not None:
            d = adj[prev]
            for u in unobserved:
                if u != prev:
                    d[u] = d.get(u, 0) | WW
        if bad is None and not dedup:  # the usual key: every read a prefix, the next version at len(seen)
            for t, seen, ext in rs:
                if not ext:
                    continue
                j = len(seen)
                if j:
                    w = wget(seen[-1])
                    if w is not None and w != t:
                        d = adj[w]
                        d[t] = d.get(t, 0) | WR
                if j < nv:
                    w = wget(order[j])
                    if w is not None and w != t:
                        d = adj[t]
                        d[w] = d.get(w, 0) | RW
                elif unobserved:
                    d = adj[t]
                    for u in unobserved:
                        if u != t:
                            d[u] = d.get(u, 0) | RW
            continue
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
            d = adj[t]
            if j < nv:
                w = wget(order[j])
                if w is not None and w != t:
                    d[w] = d.get(w, 0) | RW
            else:
                for u in unobserved:
                    if u != t:
                        d[u] = d.get(u, 0) | RW
    if realtime:
        _realtime(txns, adj)
    if process:
        _process(txns, adj)
    return Graph(adj, sum(len(d) for d in adj), n)


def _members(txns: Txns) -> np.ndarray:
    """Txn ids that may take part: not failed, not malformed."""
    keep = np.asarray(txns.status, dtype=np.int64) != FAILED
    if txns.malformed:
        keep[np.asarray(txns.malformed, dtype=np.int64)] = False
    return np.flatnonzero(keep)


def _realtime(txns: Txns, adj: list[dict[int, int]]) -> None:
    """Real-time order through *barriers*, virtual nodes appended after the txns: each ok completion of
    ``t`` makes a new barrier ``B'`` with ``B → B'`` (the previous barrier) and ``t → B'``; each invoke of
    ``x`` gets ``B → x`` from the current one. A path ``p → … → x`` then exists exactly when ``p`` completed
    before ``x`` was invoked, with three edges per txn instead of one per earlier txn."""
    ids = _members(txns)
    if len(ids) == 0:
        return
    inv = np.asarray(txns.invoke_row, dtype=np.int64)[ids]
    comp = np.asarray(txns.complete_row, dtype=np.int64)[ids]
    done = comp >= 0
    rows = np.concatenate((inv, comp[done]))
    # events: 2*t+1 an invoke of t, 2*t its ok completion; by history row (= time order)
    codes = np.concatenate((ids * 2 + 1, ids[done] * 2))
    events = codes[np.argsort(rows, kind="stable")].tolist()
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


def _process(txns: Txns, adj: list[dict[int, int]]) -> None:
    ids = _members(txns)
    if len(ids) < 2:
        return
    proc = np.asarray(txns.process, dtype=np.int64)[ids]
    inv = np.asarray(txns.invoke_row, dtype=np.int64)[ids]
    order = np.lexsort((inv, proc))
    s_ids, s_proc = ids[order], proc[order]
    same = np.flatnonzero(s_proc[1:] == s_proc[:-1])
    for a, b in zip(s_ids[same].tolist(), s_ids[same + 1].tolist(), strict=True):
        d = adj[a]
        d[b] = d.get(b, 0) | PROC
