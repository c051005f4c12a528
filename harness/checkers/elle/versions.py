"""Each key's version order, inferred from reads.

A list-append key's value only grows, so every read of it must be a prefix of the longest read, and the
longest read *is* the version order (as far as anyone observed it). A read that is not a prefix of the
longest is an ``incompatible-order`` anomaly; a read showing an element twice, ``duplicate-elements``. The
order keeps the first occurrence of each element.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from harness.checkers.elle.mops import MopIndex

__all__ = ["Versions", "infer_versions"]

_seen = itemgetter(1)


@dataclass(slots=True)
class Versions:
    """``order[k]``: the version order of ``k`` (distinct elements); ``pos[k]``: element → position;
    ``longest[k]``: the longest read as read (duplicates kept); ``bad_reads[k]``: positions in
    ``MopIndex.reads[k]`` of the reads that are not prefixes of it; ``deduped``: keys whose longest read
    had duplicates (positions then come from ``pos``, not from read lengths); ``lens[k]``: the length of
    each read in ``MopIndex.reads[k]`` (a compatible read of length ``m`` is ``longest[:m]``, so later
    passes need not look at the read itself, scattered in memory as it is)."""

    order: dict[Any, list[int]] = field(default_factory=dict)
    pos: dict[Any, dict[int, int]] = field(default_factory=dict)
    longest: dict[Any, list[int]] = field(default_factory=dict)
    bad_reads: dict[Any, set[int]] = field(default_factory=dict)
    deduped: set[Any] = field(default_factory=set)
    lens: dict[Any, list[int]] = field(default_factory=dict)
    incompatible: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)


def infer_versions(ix: MopIndex) -> Versions:
    vs = Versions()
    for k, rs in ix.reads.items():
        lens = list(map(len, map(_seen, rs)))
        n = max(lens)
        longest = rs[lens.index(n)][1]  # the first of the longest
        bad: set[int] | None = None
        for i, (_, seen, _) in enumerate(rs):
            m = lens[i]
            if m and seen is not longest and seen != longest[:m]:
                if bad is None:
                    bad = set()
                bad.add(i)
        pos = dict(zip(longest, range(n), strict=True))
        order = longest
        if len(pos) != n:  # duplicates: the first occurrence places an element
            vs.deduped.add(k)
            pos = {}
            for v in longest:
                if v not in pos:
                    pos[v] = len(pos)
            order = list(pos)
        vs.order[k] = order
        vs.pos[k] = pos
        vs.longest[k] = longest
        vs.lens[k] = lens
        if bad is not None:
            vs.bad_reads[k] = bad
            values = sorted({tuple(rs[i][1]) for i in bad})
            vs.incompatible.append({"key": k, "values": [list(v) for v in values[:5]], "order": longest,
                                    "reads": len(bad), "txns": sorted({rs[i][0] for i in bad})[:5]})  # fmt: skip
        # duplicates: compatible reads are prefixes of the longest, so it and the bad reads say it all
        suspects = [longest] if len(pos) != n else []
        if bad is not None:
            suspects.extend(rs[i][1] for i in sorted(bad) if len(set(rs[i][1])) != len(rs[i][1]))
        for seen in suspects:
            dups = {v: c for v, c in Counter(seen).items() if c > 1}
            txn = next(t for t, r, _ in rs if r is seen)
            vs.duplicates.append({"key": k, "txn": txn, "value": list(seen), "duplicates": dups})
    return vs
