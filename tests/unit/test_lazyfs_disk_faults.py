"""Disk faults of a real LazyFS-semantics mount (harness.storage): EIO, ENOSPC and slow operations set
through the control channel; the mount's name in /proc/mounts; `command()` on a bare socket path."""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pyfuse3")
pytest.importorskip("trio")

from harness.storage.lazyfs import DiskFault, fault_ops, format_faults
from harness.storage.mount import (
    LazyMount,
    MountError,
    command,
    is_mounted,
    main,
    mounts_named,
    parse_fault,
)

needs_fuse = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None or os.geteuid() != 0,
    reason="needs /dev/fuse, fusermount3 and root",
)


class Node:
    def __init__(self, tmp: Path, name: str | None = None, mnt: str = "mnt") -> None:
        self.backing = tmp / "backing"
        self.mnt = tmp / mnt
        self.backing.mkdir()
        self.mnt.mkdir()
        self.control = tmp / "control.sock"
        self.mount = LazyMount(self.backing, self.mnt, self.control, log_path=tmp / "lazyfs.log", name=name)

    def status(self) -> dict[str, str]:
        state, *fields = self.mount.command("status").split()
        return {"state": state, **dict(f.split("=", 1) for f in fields)}

    def restart(self) -> None:
        self.mount.stop()
        assert not is_mounted(self.mnt)
        self.mount.start()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    n.mount.start()
    try:
        yield n
    finally:
        n.mount.stop()
        assert not is_mounted(n.mnt), "left mounted"


def _write(path: Path, data: bytes, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _errno(fn: object, *args: object) -> int:
    with pytest.raises(OSError) as info:
        fn(*args)  # type: ignore[operator]
    assert info.value.errno is not None
    return info.value.errno


def _wait_delayed(node: Node, n: int, timeout: float = 5.0) -> None:
    """Until `n` requests are held by a slow fault (polls the daemon: a condition, not a sleep)."""
    deadline = time.monotonic() + timeout
    while node.status()["delayed"] != str(n):
        assert time.monotonic() < deadline, f"never {n} delayed request(s): {node.status()}"


# ---------------------------------------------------------------- failing operations
@needs_fuse
def test_eio_on_write_changes_nothing_then_clear(node: Node) -> None:
    p = node.mnt / "f"
    _write(p, b"abc", fsync=True)
    assert node.mount.disk_fault("eio", ["write"]) == "faults=write:eio"
    fd = os.open(p, os.O_RDWR)
    try:
        assert _errno(os.pwrite, fd, b"XYZW", 0) == errno.EIO
        assert _errno(os.ftruncate, fd, 1) == errno.EIO  # a size change is a write
        assert _errno(os.open, p, os.O_WRONLY | os.O_TRUNC) == errno.EIO
        assert os.pread(fd, 100, 0) == b"abc"  # reads are not affected, and nothing changed
        assert os.fstat(fd).st_size == 3
        assert node.status()["files"] == "0"  # nothing pending either
        assert node.mount.clear_faults() == "faults=none"
        assert node.mount.clear_faults() == "faults=none"  # idempotent
        assert os.pwrite(fd, b"XYZW", 0) == 4
        assert os.pread(fd, 100, 0) == b"XYZW"
    finally:
        os.close(fd)


@needs_fuse
def test_eio_on_fsync_leaves_data_pending_and_power_loss_drops_it(node: Node) -> None:
    p = node.mnt / "f"
    _write(p, b"durable", fsync=True)
    node.mount.disk_fault("eio", ["fsync"])
    fd = os.open(p, os.O_RDWR)
    try:
        os.pwrite(fd, b"LOST", 0)  # writes still work: only fsync is refused
        assert _errno(os.fsync, fd) == errno.EIO
        assert _errno(os.fdatasync, fd) == errno.EIO
        dfd = os.open(node.mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert _errno(os.fsync, dfd) == errno.EIO  # fsyncdir
        finally:
            os.close(dfd)
        assert os.pread(fd, 100, 0) == b"LOSTble"
    finally:
        os.close(fd)
    assert node.status()["files"] == "1"  # still pending
    assert (node.backing / "f").read_bytes() == b"durable"
    assert "dropped_files=1" in node.mount.power_loss()
    node.restart()
    assert p.read_bytes() == b"durable"
    assert node.status()["faults"] == "none"  # faults are the daemon's: a restart heals the disk


@needs_fuse
def test_enospc_on_write_and_create(node: Node) -> None:
    _write(node.mnt / "old", b"0123", fsync=True)
    assert node.mount.disk_fault("enospc", ("write", "create")) == "faults=write:enospc,create:enospc"
    assert _errno(_write, node.mnt / "old", b"more", False) == errno.ENOSPC
    assert (node.mnt / "old").read_bytes() == b"0123"
    assert _errno(os.open, node.mnt / "new", os.O_WRONLY | os.O_CREAT, 0o644) == errno.ENOSPC
    assert _errno(os.mkdir, node.mnt / "dir") == errno.ENOSPC
    assert _errno(os.mkfifo, node.mnt / "fifo") == errno.ENOSPC  # mknod
    assert sorted(os.listdir(node.backing)) == ["old"]  # nothing was created
    # a later command for an op replaces its fault, the others stay
    assert node.mount.disk_fault("eio", "create") == "faults=write:enospc,create:eio"
    assert _errno(os.mkdir, node.mnt / "dir") == errno.EIO
    node.mount.disk_fault("slow", ["write"], latency_ms=1)
    assert node.status()["faults"] == "write:slow:1,create:eio"
    _write(node.mnt / "old", b"ABCD", fsync=True)
    assert (node.backing / "old").read_bytes() == b"ABCD"


@needs_fuse
def test_eio_on_read(node: Node) -> None:
    _write(node.mnt / "f", b"data", fsync=False)
    node.mount.disk_fault("eio", ["read"])
    assert _errno((node.mnt / "f").read_bytes) == errno.EIO
    _write(node.mnt / "f", b"DA", fsync=True)  # writes and fsyncs still work
    node.mount.clear_faults()
    assert (node.mnt / "f").read_bytes() == b"DAta"


# ---------------------------------------------------------------- slow operations
@needs_fuse
def test_slow_fsync_delays_it_but_not_a_concurrent_read(node: Node) -> None:
    latency = 0.5
    _write(node.mnt / "other", b"o" * 10000, fsync=True)
    node.mount.disk_fault("slow", ["fsync"], latency_ms=int(latency * 1000))
    fd = os.open(node.mnt / "f", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"payload")
    took: list[float] = []
    done = threading.Event()

    def fsync() -> None:
        t0 = time.monotonic()
        os.fsync(fd)
        took.append(time.monotonic() - t0)
        done.set()

    t = threading.Thread(target=fsync)
    t.start()
    try:
        _wait_delayed(node, 1)  # the fsync is in the daemon, held
        t0 = time.monotonic()
        assert (node.mnt / "other").read_bytes() == b"o" * 10000
        _write(node.mnt / "third", b"w", fsync=False)  # and writes go on too
        served_in = time.monotonic() - t0
        assert not done.is_set(), "the fsync finished before the concurrent requests: nothing was tested"
    finally:
        t.join(10)
        os.close(fd)
    assert served_in < latency / 2
    assert took and latency <= took[0] < latency + 3
    assert node.status()["delayed"] == "0"
    assert (node.backing / "f").read_bytes() == b"payload"  # a slow fsync is an fsync


@needs_fuse
def test_clear_releases_a_held_request_and_losing_its_data_fails_it(node: Node) -> None:
    node.mount.disk_fault("slow", ["fsync"], latency_ms=60_000)
    fds = [os.open(node.mnt / name, os.O_RDWR | os.O_CREAT, 0o644) for name in ("a", "b")]
    errors: dict[int, int | None] = {}

    def fsync(i: int) -> None:
        try:
            os.fsync(fds[i])
            errors[i] = None
        except OSError as exc:
            errors[i] = exc.errno

    try:
        os.write(fds[0], b"kept")
        t = threading.Thread(target=fsync, args=(0,))
        t.start()
        _wait_delayed(node, 1)
        t0 = time.monotonic()
        node.mount.clear_faults()  # a healed disk: the held fsync goes on at once, and succeeds
        t.join(10)
        assert not t.is_alive() and time.monotonic() - t0 < 5
        assert errors[0] is None
        assert (node.backing / "a").read_bytes() == b"kept"

        node.mount.disk_fault("slow", ["fsync"], latency_ms=60_000)
        os.write(fds[1], b"gone")
        t = threading.Thread(target=fsync, args=(1,))
        t.start()
        _wait_delayed(node, 1)
        node.mount.clear_cache()  # its data is gone: the held fsync must not report success
        t.join(10)
        assert not t.is_alive()
        assert errors[1] == errno.EIO
        assert os.pread(fds[1], 10, 0) == b""
        node.mount.power_loss()
        node.mount.resume()
        assert node.status()["faults"] == "fsync:slow:60000"  # faults survive power-loss / resume
    finally:
        for fd in fds:
            os.close(fd)
    assert (node.backing / "b").read_bytes() == b""


@needs_fuse
def test_stop_is_not_held_up_by_a_slow_request(tmp_path: Path) -> None:
    n = Node(tmp_path)
    n.mount.start()
    try:
        n.mount.disk_fault("slow", ["read"], latency_ms=60_000)
        _write(n.mnt / "f", b"x", fsync=False)
        result: list[bytes | int] = []

        def read() -> None:
            try:
                result.append((n.mnt / "f").read_bytes())
            except OSError as exc:
                result.append(exc.errno or 0)

        t = threading.Thread(target=read)
        t.start()
        _wait_delayed(n, 1)
        t0 = time.monotonic()
        n.mount.stop()
        assert time.monotonic() - t0 < 5
        t.join(10)
        assert not t.is_alive() and result
    finally:
        n.mount.stop()
    assert not is_mounted(n.mnt)


# ---------------------------------------------------------------- the control commands
@needs_fuse
def test_status_lists_faults(node: Node) -> None:
    assert node.status() == {
        "state": "up",
        "files": "0",
        "pending_bytes": "0",
        "faults": "none",
        "delayed": "0",
    }
    node.mount.disk_fault("slow", ["fsync"], 200)
    node.mount.disk_fault("eio", ["write"])
    assert node.mount.command("status").endswith("faults=write:eio,fsync:slow:200 delayed=0")
    node.mount.power_loss()
    assert node.status()["state"] == "down"
    assert node.status()["faults"] == "write:eio,fsync:slow:200"


BAD_COMMANDS = (
    "fault",
    "fault bogus write",
    "fault eio",
    "fault eio bogus",
    "fault eio write,",
    "fault eio write,bogus",
    "fault eio write 5",
    "fault slow fsync",
    "fault slow fsync 0",
    "fault slow fsync -1",
    "fault slow fsync 1.5",
    "fault slow fsync abc",
    "fault slow write,fsync 10 20",
    "fault clear now",
    "faults clear",
)


@needs_fuse
def test_bad_fault_commands_are_refused(node: Node) -> None:
    for cmd in BAD_COMMANDS:
        with pytest.raises(MountError, match=r": err "):
            node.mount.command(cmd)
    assert node.status()["faults"] == "none"  # nothing half-applied
    _write(node.mnt / "f", b"ok", fsync=True)
    assert (node.backing / "f").read_bytes() == b"ok"


@pytest.mark.parametrize(
    ("kind", "ops", "latency_ms"),
    [
        ("bogus", ["write"], 0),
        ("eio", [], 0),
        ("eio", ["bogus"], 0),
        ("eio", "write,", 0),
        ("eio", ["write"], 5),
        ("slow", ["fsync"], 0),
        ("slow", ["fsync"], -3),
        ("slow", ["fsync"], True),
        ("slow", ["fsync"], 1.5),
    ],
)
def test_bad_disk_fault_arguments_raise_before_sending(
    tmp_path: Path, kind: str, ops: list[str], latency_ms: int
) -> None:
    m = LazyMount(tmp_path, tmp_path, tmp_path / "nobody-listens.sock")  # never started
    with pytest.raises(ValueError):
        m.disk_fault(kind, ops, latency_ms)


def test_fault_parsing_both_sides_agree() -> None:
    assert parse_fault(["clear"]) is None
    assert parse_fault(["slow", "read,write,read", "7"]) == (("write", "read"), DiskFault("slow", 7))
    assert parse_fault(["enospc", "create"]) == (("create",), DiskFault("enospc"))
    assert fault_ops("fsync,write") == ("write", "fsync")
    faults = {"create": DiskFault("eio"), "write": DiskFault("slow", 3)}
    assert format_faults(faults) == "write:slow:3,create:eio"
    assert format_faults({}) == "none"


# ---------------------------------------------------------------- name, command() on a path
@needs_fuse
def test_name_is_the_mount_source_and_mounts_named_finds_it(tmp_path: Path) -> None:
    run = f"hh-test-{uuid.uuid4().hex[:8]}"
    n = Node(tmp_path, name=f"{run}-n1", mnt="mnt point")  # a space: escaped in /proc/mounts
    with n.mount:
        with open("/proc/mounts") as f:
            entries = [line.split()[:3] for line in f if line.startswith(f"{run}-n1 ")]
        assert entries == [[f"{run}-n1", str(n.mnt).replace(" ", "\\040"), "fuse.harness"]]
        assert mounts_named(run) == [str(n.mnt)]
        assert mounts_named(f"{run}-n1") == [str(n.mnt)]
        assert mounts_named(f"{run}-n2") == []
        assert mounts_named(run, fstype="ext4") == []
        assert mounts_named(run, fstype=None) == [str(n.mnt)]
    assert mounts_named(run) == []


@needs_fuse
def test_default_name_is_lazyfs(node: Node) -> None:
    assert str(node.mnt) in mounts_named("lazyfs")


def test_bad_names_are_refused(tmp_path: Path) -> None:
    for bad in ("", "a,b", "a b", "a\tb", "a\\b", "a\nb"):
        with pytest.raises(ValueError):
            LazyMount(tmp_path, tmp_path, name=bad)
        with pytest.raises(SystemExit):  # the daemon refuses it before mounting anything
            main([str(tmp_path), str(tmp_path), "--control", str(tmp_path / "c.sock"), "--name", bad])


@needs_fuse
def test_command_on_a_bare_socket_path(node: Node, tmp_path: Path) -> None:
    _write(node.mnt / "f", b"x" * 5000, fsync=False)
    assert command(str(node.control), "status").startswith("up files=1 pending_bytes=8192 ")
    assert command(node.control, "fault eio read") == "faults=read:eio"
    assert command(node.control, "lazyfs::fault clear", timeout=5) == "faults=none"
    with pytest.raises(MountError, match="unknown command"):
        command(node.control, "no-such-command")
    with pytest.raises(OSError):
        command(tmp_path / "nobody-listens.sock", "status", timeout=1)
