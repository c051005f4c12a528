"""pyfuse3 Operations: a passthrough of a backing directory whose data writes stay in memory until fsync.

The backing directory only ever holds durable state: file data reaches it on fsync/fdatasync (or the
`sync` command), namespace and attribute operations (create, mkdir, rename, link, unlink, rmdir, symlink,
chmod, chown, utimens) immediately, as in LazyFS (see `harness.storage.lazyfs` for the whole semantics).
Pending data is in a `LazyModel` keyed by the backing inode number; FUSE inode numbers are the backing
inode numbers (the root excepted), as in pyfuse3's passthrough example.

After `power_loss()` every request but release/forget/statfs fails with EIO until `resume()`: a machine
without power serves nothing. Everything runs on pyfuse3's single trio loop, so the control commands
(`mount.py`) are atomic with respect to filesystem requests.

Disk faults (`set_fault`, `clear_faults`; see `harness.storage.lazyfs.DiskFault`) are checked when a
request arrives, before it touches anything: `write` covers write and every size change (setattr of the
size, an O_TRUNC open), `fsync` covers fsync, fdatasync and fsyncdir, `read` covers read, `create` covers
create, mkdir and mknod (not symlink, link or rename). A `slow` request waits with `trio` (other requests
keep being served, `delayed` counts the waiting ones); `clear_faults()` ends every wait at once, a power
loss or clear-cache ends them with EIO. The `sync` control command is not subject to faults.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat as stat_m
from collections import defaultdict
from collections.abc import Callable, Sequence
from os import fsdecode, fsencode

import pyfuse3
import trio

from harness.storage.lazyfs import DiskFault, LazyModel, SyncPlan

log = logging.getLogger(__name__)

_ROOT = pyfuse3.ROOT_INODE


class _FdDurable:
    """The durable content of one file, through the backing file's descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def pread(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)


def apply_plan(fd: int, plan: SyncPlan, datasync: bool = False) -> None:
    """Make a file's pending state durable through its backing descriptor."""
    if plan.cut < os.fstat(fd).st_size:
        os.ftruncate(fd, plan.cut)
    for offset, chunk in plan.writes:
        view = memoryview(chunk)
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n
    os.ftruncate(fd, plan.size)
    (os.fdatasync if datasync else os.fsync)(fd)


class LazyOperations(pyfuse3.Operations):
    enable_writeback_cache = False  # every write must reach us, never sit in the kernel's page cache

    def __init__(self, backing: str, page_size: int = 4096) -> None:
        super().__init__()
        self.backing = os.path.abspath(backing)
        self.model = LazyModel(page_size)
        self.down = False  # after a power loss, until resume()
        self._paths: dict[int, set[str]] = {_ROOT: {self.backing}}
        self._lookups: defaultdict[int, int] = defaultdict(int)
        self._fd_inode: dict[int, int] = {}  # backing fd (our file handle) -> inode
        self._inode_fds: defaultdict[int, set[int]] = defaultdict(set)
        self._root_ino = os.lstat(self.backing).st_ino
        self._as_root = os.geteuid() == 0
        self.faults: dict[str, DiskFault] = {}  # operation class (lazyfs.FAULT_OPS) -> its fault
        self.delayed = 0  # requests held by a slow fault right now
        self._wake = trio.Event()  # set (and replaced) to end every delay at once
        self._losses = 0  # power losses and cache clears so far: a delayed request's data may be gone

    # ---- control (called from the control channel, on the same trio loop) ----
    def power_loss(self) -> tuple[int, int]:
        self.down = True
        self._losses += 1
        self._end_delays()
        return self.model.power_loss()

    def clear_cache(self) -> tuple[int, int]:
        self._losses += 1
        self._end_delays()
        return self.model.power_loss()

    def set_fault(self, ops: Sequence[str], fault: DiskFault) -> None:
        """From now on requests of every class in `ops` get `fault` (replacing their previous one)."""
        for op in ops:
            self.faults[op] = fault

    def clear_faults(self) -> None:
        """A healthy disk again; requests waiting on a slow fault go on at once."""
        self.faults.clear()
        self._end_delays()

    def _end_delays(self) -> None:
        self._wake.set()
        self._wake = trio.Event()

    def resume(self) -> None:
        self.down = False

    def sync_all(self) -> int:
        """fsync every pending file (the kernel does not forward sync(2) to FUSE); returns bytes written."""
        written = 0
        for key in list(self.model.dirty_keys()):
            assert isinstance(key, int)
            ino = key
            plan = self.model.plan(ino)
            if plan is None:
                continue
            fds = self._inode_fds.get(ino)
            if fds:
                apply_plan(next(iter(fds)), plan)
            else:
                paths = self._paths.get(ino)
                if not paths:  # no handle and no name left: nothing can read it any more
                    log.warning("sync: inode %d has pending data but no path; dropped", ino)
                    self.model.forget(ino)
                    continue
                fd = os.open(next(iter(paths)), os.O_RDWR | os.O_CLOEXEC)
                try:
                    apply_plan(fd, plan)
                finally:
                    os.close(fd)
            self.model.synced(ino)
            written += plan.nbytes
        return written

    def known_inodes(self) -> list[int]:
        return list(self._paths)

    # ---- helpers ----
    def _check(self) -> None:
        if self.down:
            raise pyfuse3.FUSEError(errno.EIO)

    async def _disk(self, op: str) -> None:
        """`_check`, then the disk fault of operation class `op`: raise its errno, or wait its latency."""
        self._check()
        fault = self.faults.get(op)
        if fault is None:
            return
        if fault.kind != "slow":
            raise pyfuse3.FUSEError(errno.ENOSPC if fault.kind == "enospc" else errno.EIO)
        wake, losses = self._wake, self._losses
        self.delayed += 1
        try:
            with trio.move_on_after(fault.latency_ms / 1000):
                await wake.wait()
        finally:
            self.delayed -= 1
        if self._losses != losses:  # the power went (or the cache was dropped) while it waited
            raise pyfuse3.FUSEError(errno.EIO)
        self._check()

    def _ino(self, st_ino: int) -> int:
        return _ROOT if st_ino == self._root_ino else st_ino

    def _path(self, inode: int) -> str:
        paths = self._paths.get(inode)
        if not paths:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return next(iter(paths))

    def _child(self, inode_p: int, name: bytes) -> str:
        return os.path.join(self._path(inode_p), fsdecode(name))

    def _remember(self, inode: int, path: str) -> None:
        self._lookups[inode] += 1
        self._paths.setdefault(inode, set()).add(path)

    def _drop_path(self, inode: int, path: str) -> None:
        paths = self._paths.get(inode)
        if paths and inode != _ROOT:
            paths.discard(path)

    def _maybe_forget_data(self, st_ino: int, nlink_after: int) -> None:
        if nlink_after <= 0 and not self._inode_fds.get(st_ino):
            self.model.forget(st_ino)

    def _attrs(self, path: str | None = None, fd: int | None = None) -> pyfuse3.EntryAttributes:
        try:
            s = os.fstat(fd) if fd is not None else os.lstat(path)  # type: ignore[arg-type]
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = self._ino(s.st_ino)
        entry.generation = 0
        entry.entry_timeout = 0
        entry.attr_timeout = 0
        entry.st_mode = s.st_mode
        entry.st_nlink = s.st_nlink
        entry.st_uid = s.st_uid
        entry.st_gid = s.st_gid
        entry.st_rdev = s.st_rdev
        entry.st_size = self.model.size(s.st_ino, s.st_size) if stat_m.S_ISREG(s.st_mode) else s.st_size
        entry.st_atime_ns = s.st_atime_ns
        entry.st_mtime_ns = s.st_mtime_ns
        entry.st_ctime_ns = s.st_ctime_ns
        entry.st_blksize = 4096
        entry.st_blocks = (entry.st_size + 511) // 512
        return entry

    def _inode_attrs(self, inode: int) -> pyfuse3.EntryAttributes:
        fds = self._inode_fds.get(inode)
        if fds:
            return self._attrs(fd=next(iter(fds)))
        return self._attrs(path=self._path(inode))

    def _own(self, path: str, ctx: pyfuse3.RequestContext) -> None:
        if self._as_root:
            os.lchown(path, ctx.uid, ctx.gid)

    # ---- namespace ----
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._check()
        path = self._child(parent_inode, name)
        attr = self._attrs(path=path)
        if fsdecode(name) not in (".", ".."):
            self._remember(attr.st_ino, path)
        return attr

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for inode, nlookup in inode_list:
            if inode == _ROOT:
                continue
            self._lookups[inode] -= nlookup
            if self._lookups[inode] <= 0:
                del self._lookups[inode]
                if not self._inode_fds.get(inode) and inode not in self.model.files:
                    self._paths.pop(inode, None)

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        if inode != _ROOT:
            self._check()
        return self._inode_attrs(inode)

    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        if fields.update_size:
            await self._disk("write")
        self._check()
        path = None if fh is not None else self._path(inode)
        try:
            if fields.update_size:
                fd = fh if fh is not None else os.open(path, os.O_RDWR)  # type: ignore[arg-type]
                try:
                    st_ino = os.fstat(fd).st_ino
                    self.model.truncate(st_ino, _FdDurable(fd), attr.st_size)
                finally:
                    if fh is None:
                        os.close(fd)
            target: int | str = fh if fh is not None else path  # type: ignore[assignment]
            if fields.update_mode:
                os.chmod(target, stat_m.S_IMODE(attr.st_mode))
            if fields.update_uid or fields.update_gid:
                uid = attr.st_uid if fields.update_uid else -1
                gid = attr.st_gid if fields.update_gid else -1
                if isinstance(target, int):
                    os.fchown(target, uid, gid)
                else:
                    os.lchown(target, uid, gid)
            if fields.update_atime or fields.update_mtime:
                s = os.fstat(target) if isinstance(target, int) else os.lstat(target)
                atime = attr.st_atime_ns if fields.update_atime else s.st_atime_ns
                mtime = attr.st_mtime_ns if fields.update_mtime else s.st_mtime_ns
                if isinstance(target, int):
                    os.utime(target, ns=(atime, mtime))
                else:
                    os.utime(target, ns=(atime, mtime), follow_symlinks=False)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        return self._inode_attrs(inode)

    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        self._check()
        try:
            return fsencode(os.readlink(self._path(inode)))
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        self._check()
        return inode

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        self._check()
        path = self._path(fh)
        entries = []
        for name in pyfuse3.listdir(path):
            if name in (".", ".."):
                continue
            try:
                attr = self._attrs(path=os.path.join(path, name))
            except pyfuse3.FUSEError:
                continue
            entries.append((attr.st_ino, name, attr))
        for ino, name, attr in sorted(entries):
            if ino <= start_id:
                continue
            if not pyfuse3.readdir_reply(token, fsencode(name), attr, ino):
                break
            self._remember(attr.st_ino, os.path.join(path, name))

    async def releasedir(self, fh: int) -> None:
        return None

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        await self._disk("fsync")  # namespace operations are durable already; pass the fsync through anyway
        fd = os.open(self._path(fh), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        await self._disk("create")
        return self._new_entry(parent_inode, name, ctx, lambda path: os.mkdir(path, mode & ~ctx.umask))

    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        await self._disk("create")
        return self._new_entry(parent_inode, name, ctx, lambda path: os.mknod(path, mode & ~ctx.umask, rdev))

    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self._new_entry(parent_inode, name, ctx, lambda path: os.symlink(fsdecode(target), path))

    def _new_entry(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext, make: Callable[[str], None]
    ) -> pyfuse3.EntryAttributes:
        """``make`` the entry ``name`` in the backing directory, owned by the caller; its attributes."""
        self._check()
        path = self._child(parent_inode, name)
        try:
            make(path)
            self._own(path, ctx)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        attr = self._attrs(path=path)
        self._remember(attr.st_ino, path)
        return attr

    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._check()
        path = self._child(new_parent_inode, new_name)
        try:
            os.link(self._path(inode), path, follow_symlinks=False)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        self._remember(inode, path)
        return self._inode_attrs(inode)

    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._check()
        path = self._child(parent_inode, name)
        try:
            s = os.lstat(path)
            os.unlink(path)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        self._drop_path(s.st_ino, path)
        self._maybe_forget_data(s.st_ino, s.st_nlink - 1)

    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._check()
        path = self._child(parent_inode, name)
        try:
            s = os.lstat(path)
            os.rmdir(path)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        self._drop_path(s.st_ino, path)

    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        self._check()
        if flags != 0:
            raise pyfuse3.FUSEError(errno.EINVAL)
        old = self._child(parent_inode_old, name_old)
        new = self._child(parent_inode_new, name_new)
        try:
            moved = os.lstat(old)
            try:
                replaced: os.stat_result | None = os.lstat(new)
            except FileNotFoundError:
                replaced = None
            os.rename(old, new)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        if replaced is not None and replaced.st_ino != moved.st_ino:
            self._drop_path(replaced.st_ino, new)
            if not stat_m.S_ISDIR(replaced.st_mode):
                self._maybe_forget_data(replaced.st_ino, replaced.st_nlink - 1)
        ino = self._ino(moved.st_ino)
        self._drop_path(ino, old)
        self._paths.setdefault(ino, set()).add(new)
        if stat_m.S_ISDIR(moved.st_mode):  # paths under a renamed directory
            prefix = old + os.sep
            for paths in self._paths.values():
                for p in [p for p in paths if p.startswith(prefix)]:
                    paths.discard(p)
                    paths.add(new + os.sep + p[len(prefix) :])

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        s = os.statvfs(self.backing)
        out = pyfuse3.StatvfsData()
        for attr in (
            "f_bsize",
            "f_frsize",
            "f_blocks",
            "f_bfree",
            "f_bavail",
            "f_files",
            "f_ffree",
            "f_favail",
        ):
            setattr(out, attr, getattr(s, attr))
        out.f_namemax = s.f_namemax
        return out

    # ---- files ----
    def _open_backing(self, path: str, flags: int, mode: int = 0o600) -> int:
        # The backing fd is always readable (pages are filled from it) and never truncates or appends
        # on its own: O_TRUNC becomes a pending truncate, O_APPEND is the kernel's business (offsets).
        wants_write = flags & os.O_ACCMODE != os.O_RDONLY
        bflags = (os.O_RDWR if wants_write else os.O_RDONLY) | (flags & (os.O_CREAT | os.O_EXCL))
        try:
            return os.open(path, bflags | os.O_CLOEXEC, mode)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None

    def _register_fd(self, fd: int, flags: int) -> int:
        st_ino = os.fstat(fd).st_ino
        self._fd_inode[fd] = st_ino
        self._inode_fds[st_ino].add(fd)
        if flags & os.O_TRUNC and flags & os.O_ACCMODE != os.O_RDONLY:
            self.model.truncate(st_ino, _FdDurable(fd), 0)
        return st_ino

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if flags & os.O_TRUNC and flags & os.O_ACCMODE != os.O_RDONLY:
            await self._disk("write")  # the truncate is a size change
        self._check()
        fd = self._open_backing(self._path(inode), flags & ~os.O_CREAT)
        self._register_fd(fd, flags)
        return pyfuse3.FileInfo(fh=fd, keep_cache=False)

    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        await self._disk("create")
        path = self._child(parent_inode, name)
        fd = self._open_backing(path, flags | os.O_CREAT, mode & ~ctx.umask)
        self._own(path, ctx)
        self._register_fd(fd, flags)
        attr = self._attrs(fd=fd)
        self._remember(attr.st_ino, path)
        return pyfuse3.FileInfo(fh=fd, keep_cache=False), attr

    async def read(self, fh: int, off: int, size: int) -> bytes:
        await self._disk("read")
        return self.model.read(self._fd_inode[fh], _FdDurable(fh), off, size)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        await self._disk("write")
        return self.model.write(self._fd_inode[fh], _FdDurable(fh), off, buf)

    async def flush(self, fh: int) -> None:
        self._check()  # close(2) does not sync (LazyFS neither)

    async def fsync(self, fh: int, datasync: bool) -> None:
        await self._disk("fsync")  # a refused fsync leaves the pending data pending
        st_ino = self._fd_inode[fh]
        plan = self.model.plan(st_ino)
        try:
            if plan is not None:
                apply_plan(fh, plan, datasync)
                self.model.synced(st_ino)
            else:
                (os.fdatasync if datasync else os.fsync)(fh)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None

    async def release(self, fh: int) -> None:
        st_ino = self._fd_inode.pop(fh, None)
        nlink = 1
        try:
            nlink = os.fstat(fh).st_nlink
        finally:
            os.close(fh)
        if st_ino is None:
            return
        fds = self._inode_fds.get(st_ino)
        if fds is not None:
            fds.discard(fh)
            if not fds:
                del self._inode_fds[st_ino]
        self._maybe_forget_data(st_ino, nlink)
        ino = self._ino(st_ino)
        if (
            ino not in self._lookups
            and st_ino not in self._inode_fds
            and st_ino not in self.model.files
            and ino != _ROOT
        ):
            self._paths.pop(ino, None)


async def invalidate_all(ops: LazyOperations) -> None:
    """Make the kernel forget what it cached (attributes, pages) of every inode it knows."""

    def run() -> None:
        for inode in ops.known_inodes():
            with contextlib.suppress(OSError):  # ENOENT: the kernel no longer knows it
                pyfuse3.invalidate_inode(inode, attr_only=False)

    await trio.to_thread.run_sync(run)
