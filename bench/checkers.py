"""Checker throughput and peak memory on synthetic histories.

    python bench/checkers.py [--sizes 1e5,1e6,1e7] [--checkers set,queue,availability,bank,lag,elle]
                             [--no-mem] [--io 1e6] [--seed 1] [--stages]
    python bench/checkers.py --checkers elle --no-mem --stages   # elle: size = txns, throughput txns/s

Histories are generated column-wise with numpy (ops in batches of ``--concurrency`` workers: the batch's
invokes, then its completions in shuffled order; 97% ok, 1% fail, 2% info with process retirement;
three nodes; a partition event with an outage of failed writes; per-node final reads with a few losses).
Each checker is timed once without tracemalloc (throughput = history ops / s; lag: samples / s), then run
again under tracemalloc for its peak traced allocation (numpy buffers included). ``--io N`` also times
writing and reading an N-op JSONL history. Without ``--sizes`` each checker runs at its default sizes
(elle: 1e4, 1e5, 1e6 txns; the others 1e5, 1e6, 1e7 ops). ``--stages`` also times the elle checker stage
by stage (one more run, without tracemalloc). Not a test: it prints a table and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from harness.checkers import CHECKERS, CheckContext
from harness.model.history import (
    FAIL,
    INFO,
    INVOKE,
    OK,
    Event,
    History,
    HistoryBuilder,
    Sample,
    read_history,
    write_history,
)

NODES = ("n1", "n2", "n3")
MS = 1_000_000


@dataclass
class Case:
    history: History
    ctx: CheckContext
    units: int  # what throughput is counted in (ops or samples)
    unit: str


def _batched(n_pairs: int, conc: int, rng: np.random.Generator, t0: int = 0) -> dict[str, np.ndarray]:
    """Columns of ``n_pairs`` invoke/completion pairs, ``conc`` workers, 1 ms per batch."""
    n_b = -(-n_pairs // conc)
    total = n_b * conc
    worker = np.tile(np.arange(conc), n_b)
    op_id = np.arange(total)  # the value (id) of each pair, in invoke order
    r = rng.random(total)
    ctype = np.where(r < 0.97, OK, np.where(r < 0.98, FAIL, INFO)).astype(np.int8)
    # retire a worker's process after an info: process = worker + conc * (infos before, same worker)
    infos = (ctype == INFO).reshape(n_b, conc).astype(np.int64)
    prior = np.cumsum(infos, axis=0) - infos
    process = worker + conc * prior.reshape(-1)
    # rows: per batch, conc invokes then conc completions (shuffled within the batch)
    perm = np.argsort(rng.random((n_b, conc)), axis=1) + (np.arange(n_b) * conc)[:, None]
    comp_pair = perm.reshape(-1)
    pair_of_row = np.concatenate((op_id.reshape(n_b, conc), comp_pair.reshape(n_b, conc)), axis=1).reshape(-1)
    is_comp = np.tile(np.concatenate((np.zeros(conc, bool), np.ones(conc, bool))), n_b)
    batch = np.repeat(np.arange(n_b), 2 * conc)
    offs = np.tile(np.arange(2 * conc), n_b)
    times = t0 + batch * MS + np.where(is_comp, 500_000 + offs * 10_000, offs * 10_000)
    typ = np.where(is_comp, ctype[pair_of_row], INVOKE).astype(np.int8)
    keep = pair_of_row < n_pairs
    return {
        "process": process[pair_of_row][keep],
        "type": typ[keep],
        "time": times[keep].astype(np.int64),
        "node": (worker[pair_of_row] % len(NODES)).astype(np.int32)[keep],
        "ival": pair_of_row[keep].astype(np.int64),
    }


def _history(
    cols: list[dict[str, np.ndarray]], fcodes: list[int], f_names: tuple[str, ...], obj: dict
) -> History:
    n = sum(len(c["type"]) for c in cols)
    has = np.ones(n, dtype=bool)
    for r in obj:
        has[r] = False
    return History(
        index=np.arange(n, dtype=np.int64),
        process=np.concatenate([c["process"] for c in cols]),
        type=np.concatenate([c["type"] for c in cols]),
        f=np.concatenate([np.full(len(c["type"]), fc, np.int32) for c, fc in zip(cols, fcodes, strict=True)]),
        time=np.concatenate([c["time"] for c in cols]),
        node=np.concatenate([c["node"] for c in cols]),
        ival=np.concatenate([c["ival"] for c in cols]),
        has_ival=has,
        f_names=f_names,
        node_names=NODES,
        objvals=obj,
    )


def _outage(c: dict[str, np.ndarray], start: int, end: int) -> None:
    """Writes completing in [start, end) fail or time out."""
    m = (c["type"] != INVOKE) & (c["time"] >= start) & (c["time"] < end)
    c["type"][m] = np.where(c["ival"][m] % 2 == 0, FAIL, INFO)


def _reads(acked_sorted: np.ndarray, rng: np.random.Generator, t0: int, p0: int) -> tuple[dict, dict]:
    """Three final reads (one per node), each missing a few ids; returns columns and objvals."""
    k = len(NODES)
    lst = acked_sorted.tolist()
    drop = set(rng.choice(len(lst), size=min(5, len(lst)), replace=False).tolist()) if lst else set()
    partial = [x for i, x in enumerate(lst) if i not in drop]
    cols = {
        "process": np.repeat(np.arange(p0, p0 + k), 2),
        "type": np.tile(np.array([INVOKE, OK], np.int8), k),
        "time": t0 + np.arange(2 * k, dtype=np.int64) * MS,
        "node": np.repeat(np.arange(k, dtype=np.int32), 2),
        "ival": np.zeros(2 * k, np.int64),
    }
    return cols, {1: partial, 3: lst, 5: lst}  # rows relative to the read block


def _acked(c: dict[str, np.ndarray]) -> np.ndarray:
    return np.sort(c["ival"][c["type"] == OK])


def gen_set(n: int, conc: int, rng: np.random.Generator) -> Case:
    c = _batched((n - 6) // 2, conc, rng)
    span = int(c["time"][-1])
    ev = Event("partition-1", "partition", "iptables", ("n1",), {}, span // 3, span // 3 + 2_000 * MS)
    _outage(c, ev.start + 50 * MS, ev.start + 1_500 * MS)
    rc, robj = _reads(_acked(c), rng, span + 1_000 * MS, int(c["process"].max()) + 1)
    base = len(c["type"])
    obj = {base + r: v for r, v in robj.items()}
    h = _history([c, rc], [0, 1], ("add", "read"), obj)
    return Case(h, CheckContext(events=(ev,)), len(h), "ops")


def gen_queue(n: int, conc: int, rng: np.random.Generator) -> Case:
    enq = _batched((n - 2) // 4, conc, rng)
    span = int(enq["time"][-1])
    ev = Event("kill-1", "kill", "signal", ("n2",), {}, span // 2, span // 2 + 2_000 * MS)
    _outage(enq, ev.start + 50 * MS, ev.start + 1_500 * MS)
    acked = _acked(enq)
    n_deq = max(0, (n - 2) // 2 - len(enq["type"]) // 2)
    deq = _batched(n_deq, conc, rng, t0=span + 10 * MS)
    deq["type"][deq["type"] != INVOKE] = OK
    comp = np.flatnonzero(deq["type"] == OK)
    k = min(len(comp), len(acked))
    deq_ids = acked[:k]
    deq["ival"][comp[:k]] = deq_ids
    deq["type"][comp[k:]] = FAIL
    deq["type"][comp[rng.choice(k, size=min(k, 5), replace=False)]] = FAIL  # 5 messages never delivered: lost
    base_deq = len(enq["type"])
    obj: dict[int, Any] = {}
    # 1% of deliveries are redeliveries flagged as such
    for j in rng.choice(k, size=k // 100, replace=False).tolist() if k else []:
        obj[base_deq + int(comp[j])] = {"id": int(deq_ids[j]), "redelivered": True}
    for j in np.flatnonzero(deq["type"] == INVOKE).tolist():
        deq["ival"][j] = 0
    rest = acked[k:].tolist()
    t_end = int(deq["time"][-1]) if len(deq["time"]) else span
    drain = {
        "process": np.array([10**6, 10**6]),
        "type": np.array([INVOKE, OK], np.int8),
        "time": np.array([t_end + MS, t_end + 2 * MS], np.int64),
        "node": np.zeros(2, np.int32),
        "ival": np.zeros(2, np.int64),
    }
    base_drain = base_deq + len(deq["type"])
    obj[base_drain + 1] = rest
    h = _history([enq, deq, drain], [0, 1, 2], ("enqueue", "dequeue", "drain"), obj)
    inv_rows = base_deq + np.flatnonzero(deq["type"] == INVOKE)
    h.has_ival[inv_rows] = False
    h.has_ival[base_drain] = False
    return Case(h, CheckContext(events=(ev,)), len(h), "ops")


def gen_bank(n: int, conc: int, rng: np.random.Generator) -> Case:
    c = _batched(n // 2, conc, rng)
    pairs = len(c["type"]) // 2
    is_read = (c["ival"] % 50) == 0  # 2% of pairs are reads
    f = np.where(is_read, 1, 0).astype(np.int32)
    accounts = 5
    obj: dict[int, Any] = {}
    balances = {str(a): 20 for a in range(accounts)}
    for r in np.flatnonzero(is_read).tolist():
        if c["type"][r] == OK:
            obj[r] = balances
        elif c["type"][r] != INVOKE:
            c["type"][r] = FAIL
    transfer = {"from": 0, "to": 1, "amount": 1}
    for r in np.flatnonzero(~is_read).tolist()[: min(pairs, 1000)]:
        obj[r] = transfer
    h = _history([c], [0], ("transfer", "read"), {})
    h.f = f
    h.objvals = obj
    h.has_ival[:] = False
    return Case(h, CheckContext(options={"bank": {"expected_total": 20 * accounts}}), len(h), "ops")


def gen_lag(n: int, conc: int, rng: np.random.Generator) -> Case:
    m = max(1, n // 10)
    per = m // len(NODES)
    samples = []
    heal = per * 100 * MS // 2
    for node in NODES:
        t = np.arange(per, dtype=np.int64) * 100 * MS
        v = np.abs(rng.normal(0.05, 0.02, per))
        v[(t > heal - 5_000 * MS) & (t < heal + 3_000 * MS)] += 4.0
        samples.extend(Sample(int(a), node, "replication_lag_s", float(b)) for a, b in zip(t, v, strict=True))
    ev = Event("pause-1", "pause", "signal", ("n3",), {}, heal - 5_000 * MS, heal)
    return Case(History.empty(), CheckContext(events=(ev,), samples=tuple(samples)), len(samples), "samples")


def gen_elle(n: int, conc: int, rng: np.random.Generator) -> Case:
    """``n`` list-append txns (1-4 micro-ops, half appends, over 8 keys retired after 32 appends) in batches
    of ``conc``: a batch's invokes, then its txns applied and completed one by one (97% ok, 1% fail, 2% info
    applied or not): serial in effect and concurrent in time. Throughput counts txns."""
    import random

    r = random.Random(int(rng.integers(1 << 62)))
    lists: dict[int, list[int]] = {}
    active = list(range(8))
    appends = dict.fromkeys(active, 0)
    next_key, next_value = 8, 1
    b = HistoryBuilder()
    index = 0
    process = list(range(conc))
    fresh = conc
    for start in range(0, n, conc):
        batch: list[tuple[int, list[list[Any]]]] = []
        for w in range(min(conc, n - start)):
            plan: list[list[Any]] = []
            for _ in range(r.randint(1, 4)):
                slot = r.randrange(8)
                k = active[slot]
                if r.random() < 0.5:
                    plan.append(["r", k, None])
                else:
                    plan.append(["append", k, next_value])
                    next_value += 1
                    appends[k] += 1
                    if appends[k] >= 32:
                        del appends[k]
                        active[slot] = next_key
                        appends[next_key] = 0
                        next_key += 1
            b.append(index, process[w], "invoke", "txn", plan, index)
            index += 1
            batch.append((w, plan))
        for w, plan in batch:
            x = r.random()
            outcome = "ok" if x < 0.97 else ("fail" if x < 0.98 else "info")
            applied = outcome == "ok" or (outcome == "info" and x < 0.99)
            done: list[list[Any]] = []
            for f, k, v in plan:
                if f == "append":
                    if applied:
                        lists.setdefault(k, []).append(v)
                    done.append([f, k, v])
                else:
                    done.append([f, k, list(lists.get(k, ()))])
            b.append(index, process[w], outcome, "txn", done if outcome == "ok" else plan, index)
            index += 1
            if outcome == "info":
                process[w] = fresh
                fresh += 1
    opts = {"elle": {"model": "strict-serializable"}}
    return Case(b.build(), CheckContext(options=opts), n, "txns")


def elle_stages(case: Case) -> dict[str, float]:
    """Seconds per stage of the elle checker on ``case`` (its steps, in order, with the collector off as
    ``check_elle`` has it); ``rest``: what else a whole check takes (explaining, the verdict, freeing)."""
    from harness.checkers.elle import ElleOptions
    from harness.checkers.elle.cycles import find_cycles
    from harness.checkers.elle.direct import g1a, g1b, lost_updates
    from harness.checkers.elle.graph import build_graph
    from harness.checkers.elle.mops import index_mops
    from harness.checkers.elle.txn import parse_txns
    from harness.checkers.elle.versions import infer_versions

    o = case.ctx.options_for("elle", ElleOptions)
    realtime = o.model == "strict-serializable" if o.realtime is None else o.realtime
    h = case.history
    h.drop_caches()
    gc.collect()
    out: dict[str, float] = {}
    t = t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        out[name] = now - t
        t = now

    gc.disable()
    try:
        txns = parse_txns(h, o.f)
        lap("parse")
        ix = index_mops(txns)
        lap("mops")
        vs = infer_versions(ix)
        lap("versions")
        g1a(ix, vs), g1b(ix, vs), lost_updates(ix, vs)
        lap("direct")
        g = build_graph(txns, ix, vs, realtime=realtime, process=o.process)
        lap("graph")
        acyclic = g.acyclic()
        lap("acyclic")
        if not acyclic:
            g.complete()
            find_cycles(g.adj, g.txns, ext=realtime or o.process)
            lap("search")
        staged = time.perf_counter() - t0
    finally:
        gc.enable()
    del txns, ix, vs, g
    h.drop_caches()
    gc.collect()
    t = time.perf_counter()
    CHECKERS["elle"](h, case.ctx)
    out["rest"] = max(0.0, time.perf_counter() - t - staged)
    return out


GENERATORS: dict[str, Callable[[int, int, np.random.Generator], Case]] = {
    "set": gen_set,
    "queue": gen_queue,
    "availability": gen_set,
    "bank": gen_bank,
    "lag": gen_lag,
    "elle": gen_elle,
}


def _measure(name: str, case: Case, mem: bool) -> tuple[float, int | None, Any]:
    check = CHECKERS[name]
    case.history.drop_caches()
    gc.collect()
    t = time.perf_counter()
    result = check(case.history, case.ctx)
    dt = time.perf_counter() - t
    peak = None
    if mem:
        case.history.drop_caches()
        gc.collect()
        tracemalloc.start()
        check(case.history, case.ctx)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return dt, peak, result


def _hist_bytes(h: History) -> int:
    cols = (h.index, h.process, h.type, h.f, h.time, h.node, h.ival, h.has_ival, h.error)
    return sum(c.nbytes for c in cols)


def _io(n: int, conc: int, console: Console) -> None:
    case = gen_set(n, conc, np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "h.jsonl")
        t = time.perf_counter()
        write_history(p, case.history)
        tw = time.perf_counter() - t
        t = time.perf_counter()
        h = read_history(p)
        tr = time.perf_counter() - t
        size = os.path.getsize(p)
    assert len(h) == len(case.history)
    console.print(
        f"JSONL io, {n:,} ops ({size / 2**20:.0f} MiB): write {n / tw:,.0f} ops/s, read {n / tr:,.0f} ops/s"
    )


DEFAULT_SIZES = {"elle": "1e4,1e5,1e6"}  # txns: a 1e7-txn history takes minutes to generate


def _sizes(spec: str) -> list[int]:
    return [int(float(s)) for s in spec.split(",") if s]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="", help="sizes for every checker (default: each checker's own)")
    ap.add_argument("--checkers", default=",".join(GENERATORS))
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-mem", action="store_true", help="skip the tracemalloc pass")
    ap.add_argument("--io", default="", help="also time JSONL write+read at this size, e.g. 1e6")
    ap.add_argument("--stages", action="store_true", help="also time the elle checker stage by stage")
    a = ap.parse_args(argv)
    names = [s for s in a.checkers.split(",") if s]
    sizes_of = {name: _sizes(a.sizes or DEFAULT_SIZES.get(name, "1e5,1e6,1e7")) for name in names}
    sizes = sorted(set().union(*sizes_of.values()))
    console = Console(width=max(Console().width, 130))
    table = Table(title="checker throughput")
    for col in ("checker", "size", "gen s", "check s", "throughput", "peak MiB", "history MiB", "valid"):
        table.add_column(col, justify="right" if col not in ("checker", "valid") else "left")
    for n in sizes:
        cache: dict[str, Case] = {}
        for name in (name for name in names if n in sizes_of[name]):
            gen = GENERATORS[name]
            t = time.perf_counter()
            key = gen.__name__
            if key not in cache:
                cache.clear()
                cache[key] = gen(n, a.concurrency, np.random.default_rng(a.seed))
            case = cache[key]
            tg = time.perf_counter() - t
            dt, peak, result = _measure(name, case, not a.no_mem)
            table.add_row(
                name,
                f"{n:.0e}",
                f"{tg:.2f}",
                f"{dt:.3f}",
                f"{case.units / dt:,.0f} {case.unit}/s",
                "-" if peak is None else f"{peak / 2**20:.0f}",
                f"{_hist_bytes(case.history) / 2**20:.0f}",
                str(result.valid),
            )
            console.print(f"  {name} {n:.0e}: {dt:.3f} s", style="dim")
            if a.stages and name == "elle":
                stages = elle_stages(case)
                parts = ", ".join(f"{k} {v:.3f}" for k, v in stages.items())
                console.print(f"  elle {n:.0e} stages (s): {parts}", style="dim")
        cache.clear()
        gc.collect()
    console.print(table)
    if a.io:
        _io(int(float(a.io)), a.concurrency, console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
