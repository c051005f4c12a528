"""What is durable and what is pending: the page model behind the "power loss" filesystem.

This is the pure half of `harness.storage` (no I/O of its own; the durable content is read through a
`Durable` the caller passes in). `fuse_ops.py` serves a backing directory through it, `mount.py` runs the
mount as a subprocess with a control channel.

The semantics, after Jepsen's LazyFS (github.com/dsrhaslab/lazyfs: "a FUSE file system with an internal
dedicated page cache that only flushes data if explicitly requested by the application"):

* **Data.** A `write` (or a size change: `truncate`, `ftruncate`, an `O_TRUNC` open, a write past the end)
  goes to memory only: per file, page-sized dirty pages over the durable content, plus the file's pending
  size and the lowest size it was cut to since it was last synced (`floor`: durable bytes at or past it are
  hidden, they read as zeros). Reads merge both, so a reader always sees the latest writes.
* **fsync / fdatasync** of a file write its pending pages and size to the backing file and fsync it: from
  then on that state is durable. Both behave the same (the size is data here). `close` does not sync.
* **sync of the whole filesystem**: the kernel does not forward `sync(2)`/`syncfs(2)` to a FUSE daemon, so
  it is the control command `sync` (every pending file written and fsynced).
* **power loss** (`power_loss()`): every pending page and size is dropped; what remains is exactly each
  file's content at its last fsync (or its content before the mount if it never had one). No torn or
  partial flushes are simulated: pending data is lost as a whole, never half-written (LazyFS's clear-cache;
  its separate torn-write faults are not implemented).
* **Metadata (namespace)**: LazyFS passes create, mkdir, rename, link, unlink, rmdir, chmod, chown and
  utimens straight to the underlying filesystem: they are *durable immediately*, a directory fsync is not
  needed (and is passed through, harmlessly). We follow LazyFS here, which is more lenient than a real disk
  (ext4/xfs need the parent directory fsynced for a new name to survive): a file created and fsynced
  survives a power loss even when its directory was never fsynced, and a rename survives at once. The
  pending *data* stays with the inode across a rename, so the classic bug "write tmp, rename over the
  target, no fsync" shows as the target present with its old durable size/content (often empty).
  Truncate is different: LazyFS caches it like a write, and so do we (pending until fsync).

**Disk faults** (`DiskFault`, set through the mount's control channel): a faulty disk under the cache.
An operation class (`FAULT_OPS`: `write` = write and size changes, `fsync` = fsync, fdatasync and
fsyncdir, `read`, `create` = create, mkdir and mknod) fails with EIO or ENOSPC, or is held for a latency
before it is served. A failing request changes nothing: a refused write leaves the file as it was, a
refused fsync leaves the pending data pending (a later power loss drops it). A delayed request is failed
with EIO if a power loss (or clear-cache) happens while it waits: its data is gone, it must not report
success. Faults are per operation class; a new fault for a class replaces the old one.

Known limits: pending data lives in process memory without bound (LazyFS has a cache size and eviction;
there is none here); reopening a mount after a crash of the FUSE daemon itself is a power loss.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

PAGE_SIZE = 4096

FAULT_KINDS = ("eio", "enospc", "slow")
FAULT_OPS = ("write", "fsync", "read", "create")  # the order faults are listed in


@dataclass(frozen=True)
class DiskFault:
    """What a faulty disk does to one class of operations: fail (`eio`, `enospc`) or delay (`slow`)."""

    kind: str
    latency_ms: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (one of {', '.join(FAULT_KINDS)})")
        if isinstance(self.latency_ms, bool) or not isinstance(self.latency_ms, int):
            raise ValueError(f"latency_ms must be an int, not {self.latency_ms!r}")
        if self.kind == "slow" and self.latency_ms <= 0:
            raise ValueError(f"a slow fault needs a latency > 0 ms, not {self.latency_ms}")
        if self.kind != "slow" and self.latency_ms != 0:
            raise ValueError(f"only a slow fault takes a latency (got {self.latency_ms} ms for {self.kind})")

    def __str__(self) -> str:
        return f"slow:{self.latency_ms}" if self.kind == "slow" else self.kind


def fault_ops(ops: str | Iterable[str]) -> tuple[str, ...]:
    """Validate operation classes (a sequence, or one comma-separated string); in `FAULT_OPS` order."""
    names = ops.split(",") if isinstance(ops, str) else list(ops)
    if not names:
        raise ValueError(f"no operation given (a subset of {','.join(FAULT_OPS)})")
    for name in names:
        if name not in FAULT_OPS:
            raise ValueError(f"unknown operation {name!r} (a subset of {','.join(FAULT_OPS)})")
    return tuple(op for op in FAULT_OPS if op in names)


def format_faults(faults: Mapping[str, DiskFault]) -> str:
    """`write:eio,fsync:slow:200`, or `none`."""
    return ",".join(f"{op}:{faults[op]}" for op in FAULT_OPS if op in faults) or "none"


class Durable(Protocol):
    """The durable content of one file: its backing file, or a bytearray in tests."""

    def size(self) -> int: ...

    def pread(self, offset: int, length: int) -> bytes: ...


class MemoryDurable:
    """A durable file held in memory (tests, the reference model): applies `SyncPlan`s."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)

    def size(self) -> int:
        return len(self.data)

    def pread(self, offset: int, length: int) -> bytes:
        return bytes(self.data[offset : offset + length])

    def apply(self, plan: SyncPlan) -> None:
        del self.data[plan.cut :]
        for offset, chunk in plan.writes:
            if offset > len(self.data):
                self.data.extend(bytes(offset - len(self.data)))
            self.data[offset : offset + len(chunk)] = chunk
        if plan.size < len(self.data):
            del self.data[plan.size :]
        else:
            self.data.extend(bytes(plan.size - len(self.data)))


@dataclass(frozen=True)
class SyncPlan:
    """How to make a file's pending state durable, in this order: truncate the backing file to `cut` (when
    it is shorter than the durable size), write every `(offset, bytes)`, set the size to `size`, fsync."""

    cut: int
    writes: tuple[tuple[int, bytes], ...]
    size: int

    @property
    def nbytes(self) -> int:
        return sum(len(chunk) for _, chunk in self.writes)


@dataclass
class FileState:
    """The pending state of one file over its durable content.

    Invariants: `floor <= min(size, durable_size)`; visible byte p (< size) is `pages[p // page][p % page]`
    when that page is dirty, else the durable byte when p < floor, else 0; dirty-page bytes at or past
    `size` are 0.
    """

    durable_size: int
    page_size: int = PAGE_SIZE
    size: int = field(init=False)
    floor: int = field(init=False)
    pages: dict[int, bytearray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.size = self.durable_size
        self.floor = self.durable_size

    @property
    def dirty(self) -> bool:
        return bool(self.pages) or self.size != self.durable_size or self.floor != self.durable_size

    @property
    def pending_bytes(self) -> int:
        return len(self.pages) * self.page_size

    def _clean(self, durable: Durable, start: int, end: int) -> bytes:
        """Visible bytes of [start, end) where no page is dirty: durable below floor, zeros above."""
        end = min(end, self.size)
        if end <= start:
            return b""
        top = min(end, self.floor)
        got = durable.pread(start, top - start) if top > start else b""
        return got + bytes(end - start - len(got))

    def read(self, durable: Durable, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        if end <= offset:
            return b""
        out: list[bytes] = []
        run_start: int | None = None  # a run of clean pages, read in one go
        pos = offset
        ps = self.page_size
        while pos < end:
            idx = pos // ps
            stop = min(end, (idx + 1) * ps)
            page = self.pages.get(idx)
            if page is None:
                if run_start is None:
                    run_start = pos
            else:
                if run_start is not None:
                    out.append(self._clean(durable, run_start, pos))
                    run_start = None
                out.append(bytes(page[pos - idx * ps : stop - idx * ps]))
            pos = stop
        if run_start is not None:
            out.append(self._clean(durable, run_start, end))
        return b"".join(out)

    def write(self, durable: Durable, offset: int, data: bytes) -> int:
        ps = self.page_size
        end = offset + len(data)
        pos = offset
        while pos < end:
            idx = pos // ps
            base = idx * ps
            stop = min(end, base + ps)
            page = self.pages.get(idx)
            if page is None and pos == base and stop == base + ps:  # a whole page: nothing to fill in
                self.pages[idx] = bytearray(data[pos - offset : stop - offset])
                pos = stop
                continue
            if page is None:
                clean = self._clean(durable, base, base + ps)
                page = bytearray(clean) + bytearray(ps - len(clean))
                self.pages[idx] = page
            page[pos - base : stop - base] = data[pos - offset : stop - offset]
            pos = stop
        self.size = max(self.size, end)
        return len(data)

    def truncate(self, new_size: int) -> None:
        if new_size < self.size:
            ps = self.page_size
            for idx in [i for i in self.pages if i * ps >= new_size]:
                del self.pages[idx]
            tail = self.pages.get(new_size // ps)
            if tail is not None:
                cut = new_size % ps
                tail[cut:] = bytes(ps - cut)
            self.floor = min(self.floor, new_size)
        self.size = new_size

    def plan(self) -> SyncPlan:
        ps = self.page_size
        runs: list[tuple[int, list[bytes]]] = []  # adjacent pages coalesce (joined once: linear time)
        end = -1
        for idx in sorted(self.pages):
            base = idx * ps
            chunk = bytes(self.pages[idx][: max(0, min(ps, self.size - base))])
            if not chunk:
                continue
            if base == end:
                runs[-1][1].append(chunk)
            else:
                runs.append((base, [chunk]))
            end = base + len(chunk)
        writes = tuple((offset, b"".join(chunks)) for offset, chunks in runs)
        return SyncPlan(cut=self.floor, writes=writes, size=self.size)


class LazyModel:
    """Pending state of every file, keyed by the caller's file identity (the backing inode number)."""

    def __init__(self, page_size: int = PAGE_SIZE) -> None:
        self.page_size = page_size
        self.files: dict[Hashable, FileState] = {}

    def state(self, key: Hashable, durable: Durable) -> FileState:
        st = self.files.get(key)
        if st is None:
            st = self.files[key] = FileState(durable.size(), self.page_size)
        return st

    def size(self, key: Hashable, durable_size: int) -> int:
        st = self.files.get(key)
        return durable_size if st is None else st.size

    def read(self, key: Hashable, durable: Durable, offset: int, length: int) -> bytes:
        st = self.files.get(key)
        if st is None:
            return durable.pread(offset, length)
        return st.read(durable, offset, length)

    def write(self, key: Hashable, durable: Durable, offset: int, data: bytes) -> int:
        return self.state(key, durable).write(durable, offset, data)

    def truncate(self, key: Hashable, durable: Durable, size: int) -> None:
        self.state(key, durable).truncate(size)

    def plan(self, key: Hashable) -> SyncPlan | None:
        """The plan that makes `key` durable, or None when nothing is pending. Call `synced` once the
        caller has applied it (and fsynced)."""
        st = self.files.get(key)
        if st is None or not st.dirty:
            return None
        return st.plan()

    def synced(self, key: Hashable) -> None:
        self.files.pop(key, None)

    def forget(self, key: Hashable) -> None:
        """The file is gone (unlinked, no handle left): its pending state goes with it."""
        self.files.pop(key, None)

    def dirty_keys(self) -> Iterator[Hashable]:
        return iter([k for k, st in self.files.items() if st.dirty])

    @property
    def pending_bytes(self) -> int:
        return sum(st.pending_bytes for st in self.files.values())

    def power_loss(self) -> tuple[int, int]:
        """Drop every un-fsynced write and size change; returns (files, pending bytes) dropped."""
        dropped = (sum(1 for st in self.files.values() if st.dirty), self.pending_bytes)
        self.files.clear()
        return dropped
