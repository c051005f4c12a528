"""What the LazyFS-semantics FUSE mount (harness.storage) costs: the same I/O on the mount and on the plain
backing directory.

    python bench/lazyfs_cost.py [--mb 32] [--block 4096] [--every 1,16,256] [--rows 2000] [--dir DIR]

Sequential writes of ``--block`` bytes (``--mb`` MiB in all) with an fsync every N writes, then SQLite
inserts (one transaction each, synchronous=FULL) in WAL and DELETE mode. Needs root, /dev/fuse and
fusermount3. Not a test: it prints a table and exits 0.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from harness.storage.mount import LazyMount


def seq_write(d: Path, total: int, block: int, every: int) -> float:
    """MiB/s of sequential writes with an fsync every `every` writes (and one at the end)."""
    path = d / f"seq-{every}"
    buf = os.urandom(block)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    t0 = time.perf_counter()
    try:
        for i in range(total // block):
            os.write(fd, buf)
            if (i + 1) % every == 0:
                os.fsync(fd)
        os.fsync(fd)
    finally:
        os.close(fd)
    dt = time.perf_counter() - t0
    path.unlink()
    return total / dt / 2**20


def sqlite_inserts(d: Path, mode: str, rows: int) -> float:
    """Inserts/s, one committed transaction each."""
    path = d / f"bench-{mode}.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA journal_mode={mode}")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    t0 = time.perf_counter()
    for i in range(rows):
        db.execute("INSERT INTO t VALUES (?, ?)", (i, "x" * 100))
    dt = time.perf_counter() - t0
    db.close()
    for p in d.glob(f"bench-{mode}.sqlite*"):
        p.unlink()
    return rows / dt


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=int, default=32)
    p.add_argument("--block", type=int, default=4096)
    p.add_argument("--every", default="1,16,256")
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--dir", help="where the backing and mount directories go (default: a tmp dir)")
    args = p.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="lazyfs-bench-"))
    backing, mnt = base / "backing", base / "mnt"
    backing.mkdir(parents=True, exist_ok=True)
    mnt.mkdir(exist_ok=True)
    total = args.mb * 2**20
    cases: list[tuple[str, str, Callable[[Path], float]]] = []
    for n in (int(x) for x in args.every.split(",")):
        cases.append(
            (
                f"seq write {args.block} B, fsync every {n}",
                "MiB/s",
                functools.partial(seq_write, total=total, block=args.block, every=n),
            )
        )
    for mode in ("WAL", "DELETE"):
        cases.append(
            (
                f"sqlite insert ({mode}, sync FULL)",
                "rows/s",
                functools.partial(sqlite_inserts, mode=mode, rows=args.rows),
            )
        )

    plain = {name: fn(backing) for name, _, fn in cases}
    with LazyMount(backing, mnt, base / "control.sock", log_path=base / "lazyfs.log"):
        lazy = {name: fn(mnt) for name, _, fn in cases}

    table = Table(title=f"harness.storage mount vs plain directory ({base})")
    for col in ("case", "unit", "plain", "lazyfs mount", "ratio"):
        table.add_column(col, justify="left" if col in ("case", "unit") else "right")
    for name, unit, _ in cases:
        table.add_row(
            name, unit, f"{plain[name]:,.1f}", f"{lazy[name]:,.1f}", f"{lazy[name] / plain[name]:.2f}"
        )
    Console().print(table)
    if not args.dir:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
