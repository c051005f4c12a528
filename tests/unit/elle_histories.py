"""Building list-append histories for the elle checker tests (not a test module)."""

from __future__ import annotations

import random
from typing import Any

from harness.checkers import CheckContext, Result, check_elle
from harness.model.history import History

Mop = list[Any]


def A(k: Any, v: int) -> Mop:
    return ["append", k, v]


def R(k: Any, v: list[int] | None = None) -> Mop:
    return ["r", k, v]


def invoked(mops: list[Mop]) -> list[Mop]:
    """What the invoke carries: reads without their values."""
    return [[f, k, None] if f == "r" else [f, k, v] for f, k, v in mops]


def serial(*txns: tuple[str, list[Mop]]) -> History:
    """Each (type, mops) invoked and completed before the next, one process each."""
    ops: list[dict[str, Any]] = []
    for p, (type_, mops) in enumerate(txns):
        n = len(ops)
        ops.append(
            {"index": n, "process": p, "type": "invoke", "f": "txn", "value": invoked(mops), "time": n}
        )
        ops.append({"index": n + 1, "process": p, "type": type_, "f": "txn", "value": mops, "time": n + 1})
    return History.from_ops(ops)


def ops(*events: tuple[int, str, list[Mop]]) -> History:
    """Ops in the order given: (process, type, mops); an invoke's read values are dropped."""
    out: list[dict[str, Any]] = []
    for i, (p, type_, mops) in enumerate(events):
        value = invoked(mops) if type_ == "invoke" else mops
        out.append({"index": i, "process": p, "type": type_, "f": "txn", "value": value, "time": i})
    return History.from_ops(out)


def check(history: History, **options: Any) -> Result:
    return check_elle(history, CheckContext(options={"elle": options}))


def types(result: Result) -> list[str]:
    return list(result.figures["anomaly_types"])


def concurrent(
    n: int, seed: int, *, conc: int = 6, keys: int = 6, stale: float = 0.1, bad: float = 0.01
) -> History:
    """``n`` random txns run in batches of up to ``conc`` (invokes, then completions in shuffled order)
    against a list-append store that misbehaves: a ``stale`` share of txns read an older snapshot (of the keys then active), and a
    ``bad`` share of appends is lost and of reads swap two elements, show a failed append, repeat an
    element or drop the last one. Keys retire after 24 appends. Deterministic in ``seed``."""
    r = random.Random(seed)
    lists: dict[int, list[int]] = {}
    snaps: list[dict[int, list[int]]] = []
    active = list(range(keys))
    appends = dict.fromkeys(active, 0)
    next_key, next_value, index = keys, 1, 0
    process = list(range(conc))
    fresh = conc
    failed: list[tuple[int, int]] = []
    out: list[dict[str, Any]] = []

    def op(p: int, type_: str, value: list[Mop]) -> None:
        nonlocal index
        out.append({"index": index, "process": p, "type": type_, "f": "txn", "value": value, "time": index})
        index += 1

    while index < 2 * n:
        batch: list[tuple[int, list[Mop]]] = []
        for w in range(min(r.randint(1, conc), n - index // 2)):
            plan: list[Mop] = []
            for _ in range(r.randint(1, 4)):
                slot = r.randrange(keys)
                k = active[slot]
                if r.random() < 0.5:
                    plan.append(R(k))
                    continue
                plan.append(A(k, next_value))
                next_value += 1
                appends[k] += 1
                if appends[k] >= 24:
                    del appends[k]
                    active[slot], next_key = next_key, next_key + 1
                    appends[active[slot]] = 0
            op(process[w], "invoke", plan)
            batch.append((w, plan))
        r.shuffle(batch)
        for w, plan in batch:
            x = r.random()
            outcome = "ok" if x < 0.93 else ("fail" if x < 0.96 else "info")
            applied = outcome == "ok" or (outcome == "info" and r.random() < 0.5)
            src = snaps[-r.randint(1, min(len(snaps), 8))] if snaps and r.random() < stale else lists
            done: list[Mop] = []
            for f, k, v in plan:
                if f == "append":
                    if applied and r.random() >= bad:
                        lists.setdefault(k, []).append(v)
                    elif outcome == "fail":
                        failed.append((k, v))
                    done.append(A(k, v))
                    continue
                seen = list(src.get(k, ()))
                y = r.random()
                if y < bad and len(seen) >= 2:
                    i = r.randrange(len(seen) - 1)
                    seen[i], seen[i + 1] = seen[i + 1], seen[i]
                elif y < 2 * bad and failed and failed[-1][0] == k:
                    seen.append(failed[-1][1])
                elif y < 3 * bad and seen:
                    seen.append(seen[0])
                elif y < 4 * bad and seen:
                    seen.pop()
                done.append(R(k, seen))
            op(process[w], outcome, done if outcome == "ok" else plan)
            if outcome == "info":
                process[w], fresh = fresh, fresh + 1
            if r.random() < 0.3:
                snaps = [*snaps[-15:], {k: list(lists.get(k, ())) for k in active}]
    return History.from_ops(out)


def shuffled(n: int, seed: int, *, conc: int = 6, keys: int = 4) -> History:
    """``n`` random txns against a correct serial store, in batches of up to ``conc``: a batch's invokes,
    then its txns applied in one random order and completed in another (serializable, but in neither
    invoke nor completion order). Keys retire after 24 appends. Deterministic in ``seed``."""
    r = random.Random(seed)
    lists: dict[int, list[int]] = {}
    out: list[dict[str, Any]] = []
    next_value, base = 1, 0

    def op(p: int, type_: str, value: list[Mop]) -> None:
        out.append(
            {"index": len(out), "process": p, "type": type_, "f": "txn", "value": value, "time": len(out)}
        )

    while len(out) < 2 * n:
        batch: list[tuple[int, list[Mop]]] = []
        for w in range(min(r.randint(1, conc), n - len(out) // 2)):
            plan: list[Mop] = []
            for _ in range(r.randint(1, 3)):
                k = base + r.randrange(keys)
                if r.random() < 0.5:
                    plan.append(R(k))
                    continue
                plan.append(A(k, next_value))
                next_value += 1
                if next_value % 24 == 0:
                    base += 1
            op(w, "invoke", plan)
            batch.append((w, plan))
        r.shuffle(batch)
        done = [(w, _apply(lists, plan)) for w, plan in batch]
        r.shuffle(done)
        for w, mops in done:
            op(w, "ok", mops)
    return History.from_ops(out)


def _apply(lists: dict[int, list[int]], plan: list[Mop]) -> list[Mop]:
    done: list[Mop] = []
    for f, k, v in plan:
        if f == "append":
            lists.setdefault(k, []).append(v)
            done.append(A(k, v))
        else:
            done.append(R(k, list(lists.get(k, ()))))
    return done
