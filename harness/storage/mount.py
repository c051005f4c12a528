"""Run a LazyFS-semantics mount as a subprocess, and talk to it.

    python -m harness.storage.mount BACKING MOUNTPOINT --control SOCKET [--name NAME] [--page-size 4096]

serves BACKING at MOUNTPOINT (see `harness.storage.lazyfs` for what is durable when) until SIGTERM,
SIGINT or SIGHUP, or an external unmount; it always unmounts on the way out. NAME (default `lazyfs`) is
the mount's source in /proc/mounts (FUSE `fsname`, type `fuse.harness`): a run's label there
(`hh-galera-3-abcd1234-n1`) lets a reaper find what a dead run left mounted (`mounts_named`).

The control channel is a Unix stream socket taking one command per line and answering one line
(`ok …` or `err …`):

    power-loss    drop every un-fsynced write, then fail every request with EIO until `resume`
    clear-cache   drop every un-fsynced write, keep serving (LazyFS's `lazyfs::clear-cache`)
    sync          write and fsync every pending file (the kernel never forwards sync(2) to FUSE)
    resume        serve again after a power loss (the kernel's caches of the mount are dropped)
    status        `ok up|down files=N pending_bytes=N faults=F delayed=N` (F as below, or `none`;
                  delayed: requests held by a slow fault right now)
    fault eio OPS             the operations OPS fail with EIO
    fault enospc OPS          the operations OPS fail with ENOSPC
    fault slow OPS LATENCY_MS the operations OPS are served LATENCY_MS (> 0) late, others meanwhile
    fault clear               a healthy disk again (idempotent; delayed requests go on at once)

OPS is a comma-separated subset of `write,fsync,read,create`: write = write and size changes (truncate,
O_TRUNC), fsync = fsync, fdatasync and fsyncdir, create = create, mkdir and mknod. A fault command for
an operation replaces that operation's earlier fault and answers the whole set
(`ok faults=write:eio,fsync:slow:200`). A refused write changes nothing, a refused fsync leaves the data
pending; faults survive power-loss/resume, not a restart of the daemon; `sync` ignores them.

A `lazyfs::` prefix is accepted (`lazyfs::clear-cache`). A socket, not LazyFS's FIFO: every command is
acknowledged once it has taken effect, so a caller knows the data is gone before it restarts anything.

`command(path, cmd)` sends one command to a socket path; `LazyMount` is the parent side: start (waits
until the control socket answers), commands, stop (SIGTERM, then `fusermount3 -u`, then a lazy unmount:
nothing stays mounted, also when the daemon died).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from harness.storage.lazyfs import FAULT_KINDS, DiskFault, fault_ops, format_faults

log = logging.getLogger(__name__)

COMMANDS = ("power-loss", "clear-cache", "sync", "resume", "status", "fault")
DEFAULT_NAME = "lazyfs"


def check_name(name: str) -> str:
    """A mount name (FUSE fsname): printable, no whitespace, no comma (the mount option separator)."""
    if not name or not name.isprintable() or any(c.isspace() or c in ",\\" for c in name):
        raise ValueError(f"bad mount name {name!r}: printable, without whitespace, ',' or '\\'")
    return name


# ---------------------------------------------------------------- host helpers
def _unescape(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) + 1 and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounted_at(mountpoint: str | os.PathLike[str]) -> list[str]:
    """The filesystem types mounted at `mountpoint` according to /proc/mounts (empty: nothing)."""
    target = os.path.realpath(mountpoint)
    found = []
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and _unescape(parts[1]) == target:
                found.append(parts[2])
    return found


def is_mounted(mountpoint: str | os.PathLike[str]) -> bool:
    return bool(mounted_at(mountpoint))


def mounts_named(prefix: str, fstype: str | None = "fuse.harness") -> list[str]:
    """The mount points (in /proc/mounts order) whose source starts with `prefix`; only mounts of type
    `fstype` (ours, by default; None: any type), so a reaper never touches a mount that is not ours."""
    found = []
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or (fstype is not None and parts[2] != fstype):
                continue
            if _unescape(parts[0]).startswith(prefix):
                found.append(_unescape(parts[1]))
    return found


def force_unmount(mountpoint: str | os.PathLike[str]) -> bool:
    """Unmount whatever FUSE mount is at `mountpoint`: fusermount3 -u, then lazily. True when none is left."""
    target = os.path.realpath(mountpoint)
    attempts = [["fusermount3", "-u", target], ["fusermount3", "-u", "-z", target]]
    if os.geteuid() == 0:
        attempts.append(["umount", "-l", target])
    for cmd in attempts:
        if not is_mounted(target):
            return True
        with contextlib.suppress(OSError):
            subprocess.run(cmd, capture_output=True, timeout=10, check=False)
    return not is_mounted(target)


# ---------------------------------------------------------------- parent side
class MountError(RuntimeError):
    pass


def command(control_path: str | os.PathLike[str], cmd: str, timeout: float = 60.0) -> str:
    """Send one control command to the daemon listening on `control_path`; returns the text after `ok`.
    Raises MountError on an `err` (or no) reply, OSError when nothing answers at that path."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(os.fspath(control_path))
        s.sendall(cmd.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    reply = buf.decode(errors="replace").strip()
    if reply != "ok" and not reply.startswith("ok "):
        raise MountError(f"{cmd}: {reply or 'no reply'}")
    return reply[2:].strip()


def fault_command(kind: str, ops: str | Sequence[str], latency_ms: int = 0) -> str:
    """The control command for a disk fault (ValueError when it is not one)."""
    fault = DiskFault(kind, latency_ms)
    line = f"fault {kind} {','.join(fault_ops(ops))}"
    return f"{line} {fault.latency_ms}" if fault.kind == "slow" else line


class LazyMount:
    """A mount of `backing` at `mountpoint` served by a `python -m harness.storage.mount` subprocess."""

    def __init__(
        self,
        backing: str | os.PathLike[str],
        mountpoint: str | os.PathLike[str],
        control: str | os.PathLike[str] | None = None,
        page_size: int = 4096,
        log_path: str | os.PathLike[str] | None = None,
        name: str | None = None,
    ) -> None:
        self.name = check_name(name) if name is not None else None
        self.backing = Path(backing).resolve()
        self.mountpoint = Path(mountpoint).resolve()
        if control is None:
            control = Path(tempfile.mkdtemp(prefix="lazyfs-")) / "control.sock"
        self.control = Path(control)
        self.page_size = page_size
        self.log_path = Path(log_path) if log_path else self.control.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> LazyMount:
        if is_mounted(self.mountpoint):
            raise MountError(f"{self.mountpoint} is already a mount point")
        with contextlib.suppress(FileNotFoundError):
            self.control.unlink()
        cmd = [
            sys.executable,
            "-m",
            "harness.storage.mount",
            str(self.backing),
            str(self.mountpoint),
            "--control",
            str(self.control),
            "--page-size",
            str(self.page_size),
        ]
        if self.name is not None:
            cmd += ["--name", self.name]
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise MountError(f"lazyfs mount exited with {self.proc.returncode}: {self._log_tail()}")
            if self.control.exists():
                try:
                    self.command("status", timeout=2)
                except OSError:
                    pass
                else:
                    if is_mounted(self.mountpoint):
                        return self
            time.sleep(0.02)
        self.stop()
        raise MountError(f"lazyfs mount not ready within {timeout:g} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def command(self, cmd: str, timeout: float = 60.0) -> str:
        """Send one control command; returns the text after `ok`, raises MountError on `err`."""
        return command(self.control, cmd, timeout)

    def power_loss(self) -> str:
        return self.command("power-loss")

    def clear_cache(self) -> str:
        return self.command("clear-cache")

    def sync(self) -> str:
        return self.command("sync")

    def resume(self) -> str:
        return self.command("resume")

    def disk_fault(self, kind: str, ops: str | Sequence[str], latency_ms: int = 0) -> str:
        """Make operations `ops` (of `FAULT_OPS`) fail (`eio`, `enospc`) or wait `latency_ms` (`slow`);
        replaces those operations' earlier faults. Returns `faults=…` (all of them)."""
        return self.command(fault_command(kind, ops, latency_ms))

    def clear_faults(self) -> str:
        return self.command("fault clear")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the daemon and make sure nothing is left mounted (whatever state it was in)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # a daemon stuck in a request: cut the mount from under it, then kill it
                force_unmount(self.mountpoint)
                proc.kill()
                proc.wait(timeout)
        if not force_unmount(self.mountpoint):
            raise MountError(f"{self.mountpoint} is still mounted")
        with contextlib.suppress(FileNotFoundError):
            self.control.unlink()

    def __enter__(self) -> LazyMount:
        return self.start() if self.proc is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# ---------------------------------------------------------------- daemon side
def parse_fault(args: Sequence[str]) -> tuple[tuple[str, ...], DiskFault] | None:
    """The arguments of a `fault` command: (ops, fault) to set, None for `clear`; ValueError if bad."""
    if list(args) == ["clear"]:
        return None
    usage = "fault eio|enospc OPS, fault slow OPS LATENCY_MS, or fault clear"
    if not args or args[0] not in FAULT_KINDS:
        raise ValueError(f"usage: {usage} (kinds: {', '.join(FAULT_KINDS)})")
    kind, rest = args[0], list(args[1:])
    if len(rest) != (2 if kind == "slow" else 1):
        raise ValueError(f"usage: {usage}")
    if kind == "slow" and not (rest[1].isascii() and rest[1].isdigit()):
        raise ValueError(f"LATENCY_MS must be a whole number of milliseconds, not {rest[1]!r}")
    return fault_ops(rest[0]), DiskFault(kind, int(rest[1]) if kind == "slow" else 0)


def serve(
    backing: str, mountpoint: str, control: str, page_size: int = 4096, name: str = DEFAULT_NAME
) -> None:
    import pyfuse3
    import trio

    from harness.storage.fuse_ops import LazyOperations, invalidate_all

    ops = LazyOperations(backing, page_size)

    async def handle(stream: trio.SocketStream) -> None:
        buf = b""
        async with stream:
            while True:
                data = await stream.receive_some(4096)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    reply = await run_command(line.decode(errors="replace").strip())
                    await stream.send_all(reply.encode() + b"\n")

    async def run_command(cmd: str) -> str:
        cmd = cmd.removeprefix("lazyfs::")
        try:
            if cmd == "power-loss":
                files, nbytes = ops.power_loss()
                await invalidate_all(ops)
                log.warning("power loss: dropped %d bytes of %d files", nbytes, files)
                return f"ok dropped_files={files} dropped_bytes={nbytes}"
            if cmd == "clear-cache":
                files, nbytes = ops.clear_cache()
                await invalidate_all(ops)
                return f"ok dropped_files={files} dropped_bytes={nbytes}"
            if cmd == "sync":
                return f"ok written_bytes={ops.sync_all()}"
            if cmd == "resume":
                ops.resume()
                await invalidate_all(ops)
                return "ok up"
            if cmd == "status":
                files = sum(1 for _ in ops.model.dirty_keys())
                state = "down" if ops.down else "up"
                return (
                    f"ok {state} files={files} pending_bytes={ops.model.pending_bytes}"
                    f" faults={format_faults(ops.faults)} delayed={ops.delayed}"
                )
            if cmd.split(" ", 1)[0] == "fault":
                try:
                    parsed = parse_fault(cmd.split()[1:])
                except ValueError as exc:
                    return f"err {exc}"
                if parsed is None:
                    ops.clear_faults()
                else:
                    ops.set_fault(*parsed)
                faults = format_faults(ops.faults)
                log.warning("disk faults: %s", faults)
                return f"ok faults={faults}"
            return f"err unknown command {cmd!r} (one of {', '.join(COMMANDS)})"
        except Exception as exc:  # the control channel must survive a failing command
            log.exception("control command %s failed", cmd)
            return f"err {type(exc).__name__}: {exc}"

    async def control_server(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(control)
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(control)
        sock.listen(16)
        task_status.started()
        await trio.serve_listeners(handle, [trio.SocketListener(sock)])

    async def on_signals() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                log.info("signal %d: unmounting", signum)
                ops.clear_faults()  # requests held by a slow fault must not hold up the exit
                pyfuse3.terminate()
                return

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(on_signals)
            await nursery.start(control_server)
            await pyfuse3.main()
            nursery.cancel_scope.cancel()

    options = set(pyfuse3.default_options) | {f"fsname={name}", "subtype=harness"}
    if os.geteuid() == 0:
        options.add("allow_other")  # containers' users (mysql, rabbitmq) are not the daemon's
    pyfuse3.init(ops, mountpoint, options)
    try:
        trio.run(main)
    finally:
        pyfuse3.close(unmount=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(control)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.storage.mount", description=__doc__.split("\n")[0])
    p.add_argument("backing", help="directory holding the durable state")
    p.add_argument("mountpoint")
    p.add_argument("--control", required=True, help="Unix socket for power-loss / clear-cache / sync / …")
    p.add_argument("--name", default=DEFAULT_NAME, help="the mount's source in /proc/mounts (fsname)")
    p.add_argument("--page-size", type=int, default=4096)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        check_name(args.name)
    except ValueError as exc:
        p.error(str(exc))
    if not os.path.isdir(args.backing) or not os.path.isdir(args.mountpoint):
        p.error("BACKING and MOUNTPOINT must be directories")
    serve(args.backing, args.mountpoint, args.control, args.page_size, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
