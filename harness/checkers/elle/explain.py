"""Words for what the checker found: a txn as its op index, process and micro-ops; each cycle edge with the
key and values that force it ("T2 read key 5 = [1, 2] which includes T1's append of 2 (wr)")."""

from __future__ import annotations

from typing import Any

from harness.checkers.elle.cycles import Cycle
from harness.checkers.elle.graph import PROC, RT, RW, WR, WW, edge_name
from harness.checkers.elle.mops import MopIndex
from harness.checkers.elle.txn import STATUS_NAMES, Txns
from harness.checkers.elle.versions import Versions

__all__ = ["Explainer"]


def _ext_reads(mops: list[Any]) -> list[tuple[Any, list[int]]]:
    touched: set[Any] = set()
    out: list[tuple[Any, list[int]]] = []
    for f, k, v in mops:
        if f == "r" and k not in touched:
            out.append((k, [] if v is None else v))
        touched.add(k)
    return out


def _appends(mops: list[Any]) -> list[tuple[Any, int]]:
    return [(k, v) for f, k, v in mops if f == "append"]


class Explainer:
    def __init__(self, txns: Txns, ix: MopIndex, vs: Versions) -> None:
        self.txns, self.ix, self.vs = txns, ix, vs

    def txn(self, t: int, name: str | None = None) -> dict[str, Any]:
        tx = self.txns
        d: dict[str, Any] = {"txn": t, "index": int(tx.index[t]), "invoke_index": int(tx.invoke_index[t]),
                             "process": int(tx.process[t]), "type": STATUS_NAMES[tx.status[t]], "value": tx.mops[t]}  # fmt: skip
        if name is not None:
            d = {"name": name, **d}
        return d

    def _writer(self, k: Any, v: int) -> int | None:
        return self.ix.writer.get(k, {}).get(v)

    def _previous(self, k: Any, v: int | None) -> tuple[int | None, int | None]:
        """(value, writer) of the last element with a known writer before ``v`` in ``k``'s order (before
        the end when ``v`` is None or unobserved)."""
        order = self.vs.order.get(k, [])
        pos = self.vs.pos.get(k, {})
        j = pos[v] - 1 if v is not None and v in pos else len(order) - 1
        while j >= 0:
            w = self._writer(k, order[j])
            if w is not None:
                return order[j], w
            j -= 1
        return None, None

    def edge(self, a: int, b: int, kind: int, na: str, nb: str) -> str:
        tx = self.txns
        if kind == WW:
            for k, v2 in _appends(tx.mops[b]):
                v1, w = self._previous(k, v2)
                if w == a:
                    return f"{nb} appended {v2} to key {k} after {na} appended {v1} (ww)"
        elif kind == WR:
            for k, read in _ext_reads(tx.mops[b]):
                if read and self._writer(k, read[-1]) == a:
                    return f"{nb} read key {k} = {read} which includes {na}'s append of {read[-1]} (wr)"
        elif kind == RW:
            for k, read in _ext_reads(tx.mops[a]):
                order = self.vs.order.get(k, [])
                pos = self.vs.pos.get(k, {})
                j = (pos[read[-1]] + 1 if read[-1] in pos else len(order)) if read else 0
                mine = [v for kk, v in _appends(tx.mops[b]) if kk == k]
                nxt = [order[j]] if j < len(order) else [v for v in mine if v not in pos]
                for v in nxt:
                    if v in mine:
                        return f"{na} read key {k} = {read} without {v}, which {nb} appended (rw)"
        elif kind == RT:
            return (f"{na} completed (op {int(tx.index[a])}) before {nb} was invoked (op {int(tx.invoke_index[b])}) "
                    "(realtime)")  # fmt: skip
        elif kind == PROC:
            return f"{na} then {nb} on process {int(tx.process[a])} (process)"
        return f"{na} precedes {nb} ({edge_name(kind)})"

    def cycle(self, c: Cycle) -> dict[str, Any]:
        names = {t: f"T{i + 1}" for i, t in enumerate(c.nodes[:-1])}
        steps = []
        for a, b, kind in zip(c.nodes[:-1], c.nodes[1:], c.kinds, strict=True):
            steps.append({"from": names[a], "to": names[b], "kind": edge_name(kind),
                          "why": self.edge(a, b, kind, names[a], names[b])})  # fmt: skip
        return {
            "type": c.anomaly,
            "scc_size": c.scc_size,
            "txns": [self.txn(t, names[t]) for t in c.nodes[:-1]],
            "steps": steps,
        }

    @staticmethod
    def text(explained: dict[str, Any]) -> str:
        """The cycle as lines: ``Let T1 = …`` then each step."""
        lines = [f"{explained['type']}: a cycle of {len(explained['txns'])} txn(s). Let:"]
        for t in explained["txns"]:
            lines.append(
                f"  {t['name']} = op {t['index']} ({t['type']}, process {t['process']}): {t['value']}"
            )
        lines.append("Then:")
        lines.extend(f"  - {s['why']}" for s in explained["steps"])
        return "\n".join(lines)
