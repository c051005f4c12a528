"""Anomalies seen without a cycle: aborted reads (G1a), intermediate reads (G1b), lost updates.

* **G1a**: an ok read shows an element a *failed* txn appended (never for info txns: they may have
  committed). Compatible reads are prefixes of the version order, so the order and the incompatible reads
  hold every element any read showed;
* **G1b**: an ok read ends at an append its writer followed with another append to the same key (it saw
  the txn half done);
* **lost-update**: two or more ok txns read the same version of a key and each then appended to it.
"""

from __future__ import annotations

from typing import Any

from harness.checkers.elle.mops import MopIndex
from harness.checkers.elle.versions import Versions

__all__ = ["g1a", "g1b", "lost_updates"]


def g1a(ix: MopIndex, vs: Versions) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k, fk in ix.failed.items():
        rs = ix.reads.get(k)
        if not rs:
            continue
        pos = vs.pos[k]
        bad = vs.bad_reads.get(k, set())
        seen_pairs: set[tuple[int, int]] = set()
        for e in [e for e in pos if e in fk]:
            for i, (t, read, _) in enumerate(rs):
                if (i in bad or len(read) > pos[e]) and e in read and (t, e) not in seen_pairs:
                    seen_pairs.add((t, e))
                    out.append({"txn": t, "writer": fk[e], "key": k, "element": e, "read": read})
                    break
        for i in sorted(bad):
            t, read, _ = rs[i]
            for e in read:
                if e in fk and (t, e) not in seen_pairs:
                    seen_pairs.add((t, e))
                    out.append({"txn": t, "writer": fk[e], "key": k, "element": e, "read": read})
    return out


def g1b(ix: MopIndex, vs: Versions) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    reads = ix.reads
    for k, ik in ix.intermediate.items():
        rs = reads.get(k)
        if not rs:
            continue
        # a compatible read is a prefix of the longest, so it ends at an intermediate append exactly when its
        # length is one of these (no need to look inside it); an incompatible one is looked at
        ends = {i for i, v in enumerate(vs.longest[k], 1) if v in ik}
        bad = vs.bad_reads.get(k)
        if not ends and bad is None:
            continue
        get = ik.get
        for i, m in enumerate(vs.lens[k]):
            if m in ends or (bad is not None and m and i in bad):
                t, read, _ = rs[i]
                w = get(read[-1])
                if w is not None and w != t:
                    out.append({"txn": t, "writer": w, "key": k, "element": read[-1], "read": read})
    return out


def lost_updates(ix: MopIndex, vs: Versions) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, Any], list[int]] = {}
    for t, k, read in ix.rmw:
        longest = vs.longest.get(k, [])
        version: Any = len(read) if read == longest[: len(read)] else tuple(read)
        groups.setdefault((k, version), []).append(t)
    out: list[dict[str, Any]] = []
    for (k, version), ts in groups.items():
        distinct = sorted(set(ts))
        if len(distinct) > 1:
            value = vs.longest[k][:version] if isinstance(version, int) else list(version)
            out.append({"key": k, "value": value, "txns": distinct})
    return out
