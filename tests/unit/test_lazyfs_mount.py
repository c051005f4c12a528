"""A real LazyFS-semantics FUSE mount (harness.storage) in a tmp dir: what survives a power loss."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pyfuse3")
pytest.importorskip("trio")

from harness.storage.mount import LazyMount, MountError, is_mounted

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None or os.geteuid() != 0,
    reason="needs /dev/fuse, fusermount3 and root",
)


class Node:
    """A backing dir and a mount point; `restart()` = power back on: a fresh daemon over the backing."""

    def __init__(self, tmp: Path) -> None:
        self.backing = tmp / "backing"
        self.mnt = tmp / "mnt"
        self.backing.mkdir()
        self.mnt.mkdir()
        self.control = tmp / "control.sock"
        self.mount = LazyMount(self.backing, self.mnt, self.control, log_path=tmp / "lazyfs.log")

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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_fsynced_write_survives_unsynced_is_lost(node: Node) -> None:
    _write(node.mnt / "synced", b"durable", fsync=True)
    _write(node.mnt / "synced", b"DUR", fsync=False)  # overwrite in place, not synced
    _write(node.mnt / "lazy", b"pending" * 1000, fsync=False)
    assert (node.mnt / "synced").read_bytes() == b"DURable"  # readers see the latest writes
    assert (node.mnt / "lazy").stat().st_size == 7000
    assert (node.backing / "synced").read_bytes() == b"durable"  # backing: durable state only
    assert (node.backing / "lazy").read_bytes() == b""
    reply = node.mount.power_loss()
    assert "dropped_files=2" in reply
    with pytest.raises(OSError):  # refuses I/O until resume or remount
        (node.mnt / "synced").read_bytes()
    node.restart()
    assert (node.mnt / "synced").read_bytes() == b"durable"
    # LazyFS semantics: the creation is durable at once, the unsynced data is not
    assert (node.mnt / "lazy").read_bytes() == b""


def test_resume_after_power_loss_and_fdatasync_truncate(node: Node) -> None:
    p = node.mnt / "f"
    _write(p, b"0123456789", fsync=True)
    fd = os.open(p, os.O_RDWR)
    try:
        os.ftruncate(fd, 4)
        assert os.pread(fd, 100, 0) == b"0123"
        node.mount.power_loss()
        with pytest.raises(OSError):
            os.pread(fd, 100, 0)
        node.mount.resume()
        assert os.pread(fd, 100, 0) == b"0123456789"  # the truncate was never synced
        os.ftruncate(fd, 4)
        os.pwrite(fd, b"AB", 6)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    node.mount.power_loss()
    node.restart()
    assert p.read_bytes() == b"0123\0\0AB"


def test_created_and_fsynced_without_dir_fsync_survives(node: Node) -> None:
    # LazyFS passes creation through to the backing fs: durable without a directory fsync (a real ext4
    # may lose the name). Documented in harness.storage.lazyfs.
    (node.mnt / "sub").mkdir()
    _write(node.mnt / "sub" / "new", b"x" * 5000, fsync=True)
    node.mount.power_loss()
    node.restart()
    assert (node.mnt / "sub" / "new").read_bytes() == b"x" * 5000


def test_rename_is_durable_at_once_data_is_not(node: Node) -> None:
    _write(node.mnt / "target", b"old", fsync=True)
    _write(node.mnt / "tmp", b"new content", fsync=False)
    os.rename(node.mnt / "tmp", node.mnt / "target")  # the classic: rename without fsync
    _write(node.mnt / "a", b"A", fsync=True)
    os.rename(node.mnt / "a", node.mnt / "b")
    _fsync_dir(node.mnt)  # passed through, harmless
    assert (node.mnt / "target").read_bytes() == b"new content"
    node.mount.power_loss()
    node.restart()
    assert sorted(os.listdir(node.mnt)) == ["b", "target"]
    assert (node.mnt / "target").read_bytes() == b""  # the name moved; the data never made it
    assert (node.mnt / "b").read_bytes() == b"A"


def test_unlink_of_file_with_pending_data(node: Node) -> None:
    _write(node.mnt / "gone", b"zzz", fsync=False)
    os.unlink(node.mnt / "gone")
    _write(node.mnt / "keep", b"k", fsync=False)
    assert "files=1" in node.mount.command("status")  # the unlinked file's pages went with it
    node.mount.sync()
    node.mount.power_loss()
    node.restart()
    assert os.listdir(node.mnt) == ["keep"]
    assert (node.mnt / "keep").read_bytes() == b"k"


def test_clear_cache_keeps_serving(node: Node) -> None:
    _write(node.mnt / "f", b"abc", fsync=True)
    _write(node.mnt / "f", b"XYZW", fsync=False)
    node.mount.clear_cache()
    assert (node.mnt / "f").read_bytes() == b"abc"
    assert node.mount.command("lazyfs::status").startswith("up")
    with pytest.raises(MountError):
        node.mount.command("no-such-command")


def _sqlite(path: Path, mode: str, synchronous: str = "FULL") -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    assert db.execute(f"PRAGMA journal_mode={mode}").fetchone()[0].upper() == mode
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA wal_autocheckpoint=0")  # WAL: keep the committed frames in the WAL file
    return db


# The writer runs in its own process and is SIGKILLed before the power loss, as `docker kill` would: a
# process still touching the mount after it (SQLite's WAL -shm is mmap'ed) gets EIO, or SIGBUS.
WRITER = """
import sqlite3, sys
path, mode, sync, committed, pending = sys.argv[1:6]
db = sqlite3.connect(path, isolation_level=None)
db.execute(f"PRAGMA journal_mode={mode}")
db.execute(f"PRAGMA synchronous={sync}")
db.execute("PRAGMA wal_autocheckpoint=0")
db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
db.execute("PRAGMA wal_checkpoint(TRUNCATE)") if mode == "WAL" else None
db.execute("PRAGMA synchronous=" + sync)
for i in range(int(committed)):
    db.execute("INSERT INTO t VALUES (?, ?)", (i, "x" * 200))
db.execute("BEGIN")
for i in range(int(committed), int(committed) + int(pending)):
    db.execute("INSERT INTO t VALUES (?, ?)", (i, "y" * 200))
db.execute("UPDATE t SET v = 'changed' WHERE id < 10")
print("ready", flush=True)
sys.stdin.read()
"""


def _crash_writer(node: Node, mode: str, sync: str, committed: int, pending: int) -> str:
    args = [str(node.mnt / "db.sqlite"), mode, sync, str(committed), str(pending)]
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    finally:
        proc.kill()
        proc.wait()
    reply = node.mount.power_loss()
    node.restart()
    return reply


def _rows(node: Node, mode: str) -> list[tuple[int, str]]:
    db = _sqlite(node.mnt / "db.sqlite", mode)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT id, v FROM t ORDER BY id").fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("mode", ["WAL", "DELETE"])
def test_sqlite_keeps_committed_rows_only(node: Node, mode: str) -> None:
    reply = _crash_writer(node, mode, "FULL", committed=50, pending=300)  # 300 x 200 B: spills to disk
    assert "dropped_bytes=0" not in reply  # the uncommitted transaction did reach the filesystem
    rows = _rows(node, mode)
    assert [r[0] for r in rows] == list(range(50))
    assert {r[1] for r in rows} == {"x" * 200}


def test_sqlite_wal_synchronous_normal_loses_commits(node: Node) -> None:
    # Proof the layer bites: in WAL mode with synchronous=NORMAL a commit does not fsync, so committed
    # rows since the last checkpoint are lost at power loss (as SQLite documents).
    _crash_writer(node, "WAL", "NORMAL", committed=20, pending=0)
    assert _rows(node, "WAL") == []


def test_nothing_left_mounted_when_the_test_body_fails(tmp_path: Path) -> None:
    n = Node(tmp_path)
    with pytest.raises(RuntimeError), n.mount:
        (n.mnt / "f").write_bytes(b"x")
        raise RuntimeError("boom")
    assert not is_mounted(n.mnt)


def test_nothing_left_mounted_when_the_daemon_dies(tmp_path: Path) -> None:
    n = Node(tmp_path)
    n.mount.start()
    assert n.mount.proc is not None
    n.mount.proc.kill()  # SIGKILL: no clean-up of its own; the mount is left dangling
    n.mount.proc.wait()
    assert is_mounted(n.mnt)
    n.mount.stop()
    assert not is_mounted(n.mnt)


def test_sigterm_unmounts(tmp_path: Path) -> None:
    n = Node(tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "harness.storage.mount",
        str(n.backing),
        str(n.mnt),
        "--control",
        str(n.control),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (is_mounted(n.mnt) and n.control.exists()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert is_mounted(n.mnt)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert not is_mounted(n.mnt)
        assert not n.control.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        n.mount.stop()


def test_append_mode_writes_land_at_the_pending_end(node: Node) -> None:
    p = node.mnt / "log"
    for i in range(3):
        with open(p, "ab") as f:
            f.write(b"line%d\n" % i)
            if i < 2:
                f.flush()
                os.fsync(f.fileno())
    assert p.read_bytes() == b"line0\nline1\nline2\n"
    node.mount.power_loss()
    node.restart()
    assert p.read_bytes() == b"line0\nline1\n"
