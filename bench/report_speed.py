"""How long ``harness check`` and ``harness report`` take on a big run: a synthetic run directory of
``--ops`` ops (default 10^6), timed end to end (a fresh ``harness`` process, as a person runs it) and step
by step in this process.

    python bench/report_speed.py [--big] [--steps] [--span 1000] [--dir DIR] [--repeat 3] [--seed 1]

It prints, for runs of 10^5 and 10^6 ops (and 10^7 with ``--big``; ``--ops N`` for one size of your own),
the MB of history.jsonl and the median seconds of ``harness check`` and ``harness report`` (fresh
processes), uncached (no ``history.columns.npz`` beside the history: the first command after a run) and
cached (the columnar cache the first read leaves there). ``--steps`` adds the step-by-step table of the
largest run (in this process).

The run looks like a Galera sql-set run of ``--span`` seconds: four clients over three nodes (each with one
op in flight; an ``info`` retires the process), a partition isolating n1 (its writes fail or time out, three
acknowledged ids end up lost), a kill of n2, the harness's own full-cluster recovery, a link fault on n3;
probe samples (replication lag every 200 ms, six wsrep figures every second, per node); final reads per
node (one of them reading two ids twice); checksums, logs and a harness.log. ``--dir`` keeps the run
there (made once, reused when present). Not a test: it prints a table and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "tests" / "data" / "runs" / "set-partition"
NODES = ("n1", "n2", "n3")
S = 1_000_000_000
MS = 1_000_000
CLIENTS = 4
TYPES = ("invoke", "ok", "fail", "info")


def _ops(
    n_ops: int, span_s: float, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], list[int], list[int]]:
    """Columns of the add ops (invoke/completion pairs, time-sorted) and the acknowledged ids."""
    pairs = max((n_ops - 2 * len(NODES)) // 2, CLIENTS)
    per = -(-pairs // CLIENTS)
    t0, t1 = 3 * S, int(span_s * S)
    gap = (t1 - t0) // per
    worker = np.repeat(np.arange(CLIENTS), per)[:pairs]
    k = np.tile(np.arange(per), CLIENTS)[:pairs]
    t_inv = t0 + k * gap + worker * (gap // CLIENTS) + rng.integers(0, max(gap // 8, 1), pairs)
    latency = np.minimum(rng.lognormal(np.log(1.5 * MS), 0.5, pairs).astype(np.int64), gap // 2)
    node = ((worker + k) % len(NODES)).astype(np.int64)
    outcome = np.where(rng.random(pairs) < 0.995, 1, np.where(rng.random(pairs) < 0.5, 2, 3))
    # the partition isolates n1 from 30% to 31.5% of the span: its writes fail or time out
    p0, p1 = int(t1 * 0.30), int(t1 * 0.30) + 15 * S
    cut = ((node == 0) & (t_inv >= p0) & (t_inv < p1)) | ((t_inv >= p0) & (t_inv < p0 + 3 * S))  # 3 s: none
    outcome[cut] = np.where(k[cut] % 3 == 0, 3, 2)
    latency[cut] = gap // 2
    # a process retires after an info completion: worker + CLIENTS * (infos of the worker before)
    infos = (outcome == 3).astype(np.int64)
    order = np.lexsort((k, worker))
    prior = np.zeros(pairs, np.int64)
    per_worker = infos[order].reshape(-1)
    cum = np.cumsum(per_worker) - per_worker
    start_of = np.searchsorted(worker[order], np.arange(CLIENTS))
    cum -= np.repeat(cum[start_of], np.diff(np.append(start_of, pairs)))
    prior[order] = cum
    process = worker + CLIENTS * prior
    ids = np.arange(1, pairs + 1, dtype=np.int64)
    rows_t = np.concatenate((t_inv, t_inv + latency))
    rows_type = np.concatenate((np.zeros(pairs, np.int64), outcome))
    rows_p = np.concatenate((process, process))
    rows_node = np.concatenate((node, node))
    rows_v = np.concatenate((ids, ids))
    o = np.argsort(rows_t, kind="stable")
    cols = {"time": rows_t[o], "type": rows_type[o], "process": rows_p[o], "node": rows_node[o],
            "value": rows_v[o]}  # fmt: skip
    acked = outcome == 1
    after = np.flatnonzero(acked[np.argsort(t_inv)] & (np.sort(t_inv) >= p0 + 3 * S))[:3]
    lost = ids[np.argsort(t_inv)][after].tolist()  # acknowledged by n2/n3 during the partition, then lost
    return cols, ids[acked].tolist(), lost


def _lines(cols: dict[str, np.ndarray]) -> list[str]:
    """history.jsonl lines exactly as ``HistoryWriter`` writes them."""
    errors = {2: ',"error":"Deadlock found when trying to get lock"', 3: ',"error":"timeout"'}
    out = []
    for i, (t, ty, p, nd, v) in enumerate(zip(cols["time"].tolist(), cols["type"].tolist(),
                                              cols["process"].tolist(), cols["node"].tolist(),
                                              cols["value"].tolist(), strict=True)):  # fmt: skip
        out.append(f'{{"index":{i},"process":{p},"type":"{TYPES[ty]}","f":"add","value":{v},"time":{t},'
                   f'"node":"{NODES[nd]}"{errors.get(ty, "")}}}\n')  # fmt: skip
    return out


def make_run(directory: Path, n_ops: int = 1_000_000, span_s: float = 1000.0, seed: int = 1) -> Path:
    """Write a synthetic run of about ``n_ops`` ops into ``directory`` (created)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    cols, acked, lost_ids = _ops(n_ops, span_s, rng)
    lines = _lines(cols)
    t_end = int(cols["time"][-1]) + 2 * S
    p_end = int(cols["process"].max()) + 1
    p0 = int(span_s * S * 0.30)
    lost = set(lost_ids)
    kept = [i for i in acked if i not in lost]
    index = len(lines)
    for j, node in enumerate(NODES):
        read = kept + kept[:2] if node == "n2" else kept
        t = t_end + j * 50 * MS
        lines.append(f'{{"index":{index},"process":{p_end + j},"type":"invoke","f":"read","value":null,'
                     f'"time":{t},"node":"{node}"}}\n')  # fmt: skip
        lines.append(f'{{"index":{index + 1},"process":{p_end + j},"type":"ok","f":"read","value":'
                     f'{json.dumps(read, separators=(",", ":"))},"time":{t + 20 * MS},"node":"{node}"}}\n')  # fmt: skip
        index += 2
    (directory / "history.jsonl").write_text("".join(lines))

    span = int(span_s * S)
    events = [
        {"id": "partition-1", "name": "partition", "mechanism": "iptables(nsenter)", "target": "[n1] | [n2,n3]",
         "detail": {"shape": "isolate", "components": [["n1"], ["n2", "n3"]]}, "start": p0, "end": p0 + 15 * S},
        {"id": "kill-2", "name": "kill", "mechanism": "signal", "target": ["n2"], "detail": {"signal": "SIGKILL"},
         "start": span * 6 // 10, "end": span * 6 // 10 + 20 * S},
        {"id": "full-cluster-recovery-3", "name": "full-cluster-recovery", "mechanism": "wsrep-recover + bootstrap",
         "target": ["n2"], "detail": {"by": "harness"}, "start": span * 6 // 10 + 20 * S,
         "end": span * 6 // 10 + 26 * S},
        {"id": "link-4", "name": "link", "mechanism": "toxiproxy", "target": "n3",
         "detail": {"kind": "latency", "spec": {"latency_ms": 300}}, "start": span * 8 // 10,
         "end": span * 8 // 10 + 20 * S},
    ]  # fmt: skip
    (directory / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))

    samples = []
    for node in NODES:
        for t in range(S, span, 200 * MS):
            lag: float | str = round(abs(float(rng.normal(0.002, 0.002))), 6)
            if node == "n1" and p0 <= t < p0 + 15 * S:
                lag = round((t - p0) / S, 3)
            if node == "n2" and span * 6 // 10 <= t < span * 6 // 10 + 26 * S:
                lag = "unreachable"
            samples.append({"time": t + 1000, "node": node, "metric": "replication_lag_s", "value": lag})
        for t in range(S, span, S):
            cut = node == "n1" and p0 <= t < p0 + 15 * S
            down = node == "n2" and span * 6 // 10 <= t < span * 6 // 10 + 26 * S
            if down:
                continue
            size = 1 if cut else (2 if p0 <= t < p0 + 15 * S or span * 6 // 10 <= t < span * 6 // 10 + 26 * S
                                  else 3)  # fmt: skip
            for metric, value in (("wsrep_cluster_status", "non-Primary" if cut else "Primary"),
                                  ("wsrep_cluster_size", float(size)), ("wsrep_local_recv_queue", 0.0),
                                  ("wsrep_flow_control_paused", 0.0), ("wsrep_last_committed", float(t // S)),
                                  ("wsrep_local_state_comment", "Initialized" if cut else "Synced")):  # fmt: skip
                samples.append({"time": t + 2000, "node": node, "metric": metric, "value": value})
    samples.sort(key=lambda s: s["time"])
    (directory / "samples.jsonl").write_text("".join(json.dumps(s, separators=(",", ":")) + "\n"
                                                     for s in samples))  # fmt: skip
    for name in ("scenario.json", "topology.json"):
        shutil.copy(STORED / name, directory / name)
    (directory / "meta.json").write_text(
        json.dumps({"run_id": "bench-1", "seed": seed, "subnet": "10.0.0.0/24"})
    )
    rows = len(acked) - len(lost)
    (directory / "checksums.json").write_text(json.dumps({n: {"hh_set": {"rows": rows, "checksum": "1"}}
                                                          for n in NODES}))  # fmt: skip
    (directory / "logs").mkdir(exist_ok=True)
    for node in NODES:
        (directory / "logs" / f"{node}.log").write_text(f"{node} started\n")
    (directory / "harness.log").write_text("bench run\n")
    return directory


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _uncached(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    from harness.model.history import oplog

    oplog._LAST.clear()  # as in a fresh process
    return fn(*args, **kw)


def _exact(path: Path) -> Any:
    """The reader every file that is not plainly well-formed still goes through (and every file did)."""
    from harness.model.history import HistoryBuilder
    from harness.model.history.jsonl import iter_jsonl

    b = HistoryBuilder()
    for _, d in iter_jsonl(path, "op"):
        b.append_dict(d)
    return b.build()


def _cold(cache: Path, *argv: str) -> None:
    cache.unlink(missing_ok=True)
    _cli(*argv)


def _cli(*argv: str) -> None:
    exe = Path(sys.executable).with_name("harness")
    cmd = [str(exe), *argv] if exe.exists() else [sys.executable, "-m", "harness.cli", *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1, 3):
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-2000:]}")


def _figures(directory: Path, repeat: int) -> dict[str, float]:
    """Median seconds of the four end-to-end figures of one run directory."""
    from harness.model.history.oplog import cache_path

    cache = cache_path(directory / "history.jsonl")
    out = {}
    for cmd in ("check", "report"):
        out[f"{cmd} uncached"], _ = _timed(lambda c=cmd: _cold(cache, c, str(directory)), repeat)
        _cli(cmd, str(directory))  # leaves the cache (the uncached command above already did)
        out[f"{cmd} cached"], _ = _timed(lambda c=cmd: _cli(c, str(directory)), repeat)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--ops", default="", help="one size of your own instead of 1e5 and 1e6")
    ap.add_argument("--big", action="store_true", help="also 10^7 ops (about 1.1 GB of JSONL)")
    ap.add_argument("--steps", action="store_true", help="the step-by-step table of the largest run too")
    ap.add_argument("--span", type=float, default=1000.0, help="seconds the run lasts")
    ap.add_argument("--dir", default="", help="keep the runs under here (made once, reused)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)

    console = Console()
    sizes = [int(float(a.ops))] if a.ops else [10**5, 10**6] + ([10**7] if a.big else [])
    tmp = None
    if a.dir:
        base = Path(a.dir)
    else:
        tmp = tempfile.mkdtemp(prefix="report-speed-")
        base = Path(tmp)
    try:
        table = Table(title=f"harness check / report, median of {a.repeat} (s)", title_justify="left")
        for col in (
            "ops",
            "history MB",
            "check uncached",
            "check cached",
            "report uncached",
            "report cached",
        ):
            table.add_column(col, justify="right")
        directory = base
        for n in sizes:
            directory = base / f"ops-{n:.0e}".replace("+0", "")
            t = time.perf_counter()
            if not (directory / "history.jsonl").exists():
                make_run(directory, n, a.span, a.seed)
                console.print(f"made {directory} in {time.perf_counter() - t:.1f} s", style="dim")
            mb = (directory / "history.jsonl").stat().st_size / 1e6
            f = _figures(directory, a.repeat)
            table.add_row(f"{n:,}", f"{mb:.0f}", *(f"{f[k]:.2f}" for k in ("check uncached", "check cached",
                                                                              "report uncached", "report cached")))  # fmt: skip
        console.print(table)
        if a.steps:
            console.print(_steps(directory, a.repeat))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _steps(directory: Path, repeat: int) -> Table:
    """Each step in this process: what the end-to-end figures are made of."""
    from harness.model.history import read_history, read_samples, samples
    from harness.model.history.oplog import cache_path
    from harness.report.html import build_report, write_report
    from harness.runner import check_report
    from harness.stored_run import load_stored_run

    cache = cache_path(directory / "history.jsonl")
    size = (directory / "history.jsonl").stat().st_size
    table = Table(title=f"{directory}: history.jsonl {size / 2**20:.0f} MiB", title_justify="left")
    table.add_column("step")
    table.add_column("median s", justify="right")
    table.add_column("note")

    def fresh(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        cache.unlink(missing_ok=True)
        samples._LAST.clear()
        return _uncached(fn, *args, **kw)

    dt, history = _timed(lambda: fresh(read_history, directory / "history.jsonl"), repeat)
    table.add_row("read_history", f"{dt:.3f}", f"{len(history):,} ops, decoded (and the cache written)")
    dt, _ = _timed(lambda: _exact(directory / "history.jsonl"), 1)
    table.add_row("exact line-by-line reader", f"{dt:.3f}", "json per line: the reader of any odd file")
    dt, _ = _timed(lambda: read_history(directory / "history.jsonl"), repeat)
    table.add_row("read_history again", f"{dt:.3f}", "same file, same process: the history already built")
    dt, _ = _timed(lambda: _uncached(read_history, directory / "history.jsonl"), repeat)
    table.add_row("read_history (cache)", f"{dt:.3f}", "from history.columns.npz, fresh")
    dt, got = _timed(lambda: (samples._LAST.clear(), read_samples(directory / "samples.jsonl")), repeat)
    table.add_row("read_samples", f"{dt:.3f}", f"{len(got[1]):,} samples")
    dt, _ = _timed(lambda: fresh(load_stored_run, directory), repeat)
    table.add_row("load_stored_run", f"{dt:.3f}", "every file, history decoded")
    dt, result = _timed(lambda: _uncached(check_report, directory, write=False), repeat)
    table.add_row("check_report", f"{dt:.3f}", f"load (cached) + checkers: valid={result.valid}")
    stored = load_stored_run(directory)
    dt, page = _timed(lambda: build_report(stored, result), repeat)
    table.add_row("build_report", f"{dt:.3f}", f"report.html {len(page) / 2**20:.1f} MiB")
    dt, _ = _timed(lambda: write_report(directory, result), repeat)
    table.add_row("write_report", f"{dt:.3f}", "load again (same process) + html + junit")
    return table


if __name__ == "__main__":
    raise SystemExit(main())
