"""One pass over every txn's micro-ops: who appended what, every read, and what a txn alone shows wrong.

* ``writer[k][v]``: the txn (ok or info) that appended ``v`` to ``k``; ``failed[k][v]`` the same for failed
  txns; ``intermediate[k][v]``: appends a txn followed with another append to ``k`` (a read ending there is
  an intermediate read, G1b);
* ``ok_values[k]``: the values ok txns appended to ``k`` (those no read shows are the unobserved writes);
* ``reads[k]``: every read of an ok txn as ``(txn, list, external)``; a read is *external* when it is the
  txn's first touch of ``k`` (no own earlier read or append): only those are evidence of other txns;
* ``rmw``: external reads followed by an append to the same key in the same txn (lost-update candidates);
* ``internal``: a read that does not show the txn's own earlier reads and appends of the key;
* ``duplicate_appends``: a value appended to a key more than once (values must be unique per key).

Info txns contribute only their appends (their reads are unknown); failed ones only ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.checkers.elle.txn import FAILED, SUCCEEDED, Txns

__all__ = ["MopIndex", "Read", "index_mops"]

Read = tuple[int, list[int], bool]


@dataclass(slots=True)
class MopIndex:
    writer: dict[Any, dict[int, int]] = field(default_factory=dict)
    failed: dict[Any, dict[int, int]] = field(default_factory=dict)
    intermediate: dict[Any, dict[int, int]] = field(default_factory=dict)
    ok_values: dict[Any, list[int]] = field(default_factory=dict)
    reads: dict[Any, list[Read]] = field(default_factory=dict)
    rmw: list[tuple[int, Any, list[int]]] = field(default_factory=list)
    internal: list[dict[str, Any]] = field(default_factory=list)
    duplicate_appends: list[dict[str, Any]] = field(default_factory=list)


def index_mops(txns: Txns) -> MopIndex:
    ix = MopIndex()
    writer, failed, intermediate = ix.writer, ix.failed, ix.intermediate
    ok_values, reads = ix.ok_values, ix.reads
    writer_get, failed_get, ok_values_get, reads_get = writer.get, failed.get, ok_values.get, reads.get
    for t, (status, mops) in enumerate(zip(txns.status, txns.mops, strict=True)):
        if not mops:
            continue
        if status == FAILED:
            for f, k, v in mops:
                if f == "append":
                    fk = failed.get(k)
                    if fk is None:
                        fk = failed[k] = {}
                    if v in fk or v in writer.get(k, ()):
                        ix.duplicate_appends.append({"key": k, "value": v, "txn": t})
                    fk[v] = t
            continue
        ok = status == SUCCEEDED
        nm = len(mops)
        if nm == 1 or (mops[0][1] != mops[1][1] if nm == 2 else len({m[1] for m in mops}) == nm):
            # each key touched once (the usual txn): every read is external, nothing intermediate, no
            # read-modify-write, nothing internal to check
            for f, k, v in mops:
                if f == "append":
                    wk = writer_get(k)
                    if wk is None:
                        wk = writer[k] = {}
                    if v in wk or v in failed_get(k, ()):
                        ix.duplicate_appends.append({"key": k, "value": v, "txn": t})
                    wk[v] = t
                    if ok:
                        ov = ok_values_get(k)
                        if ov is None:
                            ok_values[k] = [v]
                        else:
                            ov.append(v)
                elif ok:
                    rk = reads_get(k)
                    if rk is None:
                        reads[k] = [(t, [] if v is None else v, True)]
                    else:
                        rk.append((t, [] if v is None else v, True))
            continue
        # per key touched so far: [known prefix or None, own appends since]
        state: dict[Any, list[Any]] = {}
        last_append: dict[Any, int] = {}
        first_reads: dict[Any, list[int]] | None = None
        for i, (f, k, v) in enumerate(mops):
            if f == "append":
                wk = writer.get(k)
                if wk is None:
                    wk = writer[k] = {}
                if v in wk or v in failed.get(k, ()):
                    ix.duplicate_appends.append({"key": k, "value": v, "txn": t})
                wk[v] = t
                prev = last_append.get(k)
                if prev is not None:
                    ik = intermediate.get(k)
                    if ik is None:
                        ik = intermediate[k] = {}
                    ik[prev] = t
                last_append[k] = v
                if ok:
                    ov = ok_values.get(k)
                    if ov is None:
                        ok_values[k] = [v]
                    else:
                        ov.append(v)
                    st = state.get(k)
                    if st is None:
                        state[k] = [None, [v]]
                    else:
                        st[1].append(v)
            elif ok:
                seen = [] if v is None else v
                st = state.get(k)
                rk = reads.get(k)
                if rk is None:
                    rk = reads[k] = []
                if st is None:
                    rk.append((t, seen, True))
                    state[k] = [seen, []]
                    if first_reads is None:
                        first_reads = {k: seen}
                    else:
                        first_reads[k] = seen
                    continue
                rk.append((t, seen, False))
                prefix, own = st
                if prefix is None:
                    n = len(own)
                    good = len(seen) >= n and seen[len(seen) - n :] == own
                    expected: list[Any] = ["...", *own]
                else:
                    expected = prefix + own if own else prefix
                    good = seen == expected
                if not good:
                    ix.internal.append({"txn": t, "mop": i, "mop_value": ["r", k, v], "expected": expected})
                st[0] = seen
                st[1] = []
        if first_reads is not None and last_append:
            for k in last_append:
                r = first_reads.get(k)
                if r is not None:  # an external read, then an own append of the key: read-modify-write
                    ix.rmw.append((t, k, r))
    return ix
