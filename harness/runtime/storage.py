"""A run's node data directories on LazyFS-semantics mounts (topology ``storage: lazyfs``).

Each node gets ``<run dir>/storage/<node>/data`` (the durable state: what a disk would hold) served at
``<run dir>/storage/<node>/mnt`` by a ``harness.storage.mount`` daemon, which the node's container
bind-mounts at its data directory. The daemon runs in its own session, so it outlives the process that
started it (``harness up`` hands a run over); any process reaches it through its control socket, found
from the run id and node name alone. The mount's source in /proc/mounts is ``hh-<run id>-<node>``: that
is how ``unmount_run`` and the reaper find what a run (or a crashed one) left mounted (with the namespace:
``hh-<namespace>-<run id>-<node>``, so the reaper of one namespace never touches another's).
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InfraError
from harness.paths import run_dir
from harness.runtime import labels
from harness.storage.mount import LazyMount, MountError, command, force_unmount, is_mounted, mounts_named

log = logging.getLogger(__name__)


def _prefix() -> str:
    """Mount names of this namespace's runs start with it (``hh-<namespace>-``)."""
    return f"hh-{labels.namespace()}-"


def mount_name(run_id: str, node: str) -> str:
    return f"{_prefix()}{run_id}-{node}"


def _control_dir() -> Path:
    return Path(tempfile.gettempdir()) / "ha-harness-storage"  # short: a socket path has ~107 bytes


@dataclass(frozen=True)
class PowerLoss:
    """What one node's power loss dropped: files with un-fsynced changes, and their pending bytes."""

    files: int
    bytes: int


@dataclass(frozen=True)
class NodeStorage:
    run_id: str
    node: str

    @property
    def root(self) -> Path:
        return run_dir(self.run_id) / "storage" / self.node

    @property
    def backing(self) -> Path:
        return self.root / "data"

    @property
    def mountpoint(self) -> Path:
        return self.root / "mnt"

    @property
    def control(self) -> Path:
        return _control_dir() / f"{self.run_id}-{self.node}.sock"

    @property
    def name(self) -> str:
        return mount_name(self.run_id, self.node)

    def ensure(self, seed: Callable[[Path], None] | None = None) -> Path:
        """Mount the node's storage unless it is mounted already; the first time, ``seed(backing)`` fills
        the durable state (the image's data directory). Returns the mount point."""
        if is_mounted(self.mountpoint):
            return self.mountpoint
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if not (self.root / "seeded").exists():
            shutil.rmtree(self.backing, ignore_errors=True)
            self.backing.mkdir(parents=True)
            if seed is not None:
                seed(self.backing)
            (self.root / "seeded").touch()
        self.control.parent.mkdir(parents=True, exist_ok=True)
        mount = LazyMount(self.backing, self.mountpoint, control=self.control,
                          log_path=self.root / "mount.log", name=self.name)  # fmt: skip
        try:
            mount.start()
        except MountError as exc:
            raise InfraError(f"storage of {self.node}: {exc}") from None
        # The daemon is in its own session and outlives this process; `unmount_run` ends it.
        mount.proc = None
        return self.mountpoint

    def replace_disk(self, seed: Callable[[Path], None]) -> None:
        """A new disk under the node (its process must be dead): everything on the mount deleted, then
        ``seed(mountpoint)`` writes the image's data directory afresh, made durable at once."""
        for child in self.mountpoint.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        seed(self.mountpoint)
        self.sync()

    def command(self, cmd: str) -> str:
        try:
            return command(self.control, cmd)
        except (OSError, MountError) as exc:
            raise InfraError(f"storage of {self.node} ({self.name}): {cmd}: {exc}") from None

    def status(self) -> str:
        return self.command("status")

    def power_loss(self) -> PowerLoss:
        """Drop every un-fsynced write, then serve again (the node's process must be dead by now)."""
        reply = self.command("power-loss")
        self.command("resume")
        found = dict(re.findall(r"(\w+)=(\d+)", reply))
        return PowerLoss(int(found.get("dropped_files", 0)), int(found.get("dropped_bytes", 0)))

    def sync(self) -> None:
        """Make everything written so far durable (the kernel's writeback, done at once)."""
        self.command("sync")

    def disk_fault(self, kind: str, ops: list[str], latency_ms: int = 0) -> str:
        from harness.storage.mount import fault_command

        return self.command(fault_command(kind, ops, latency_ms))

    def clear_faults(self) -> None:
        if is_mounted(self.mountpoint):
            self.command("fault clear")


def unmount_run(run_id: str) -> int:
    """Unmount every storage mount of ``run_id`` (their daemons exit with it); returns how many."""
    count = 0
    for mountpoint in mounts_named(f"{_prefix()}{run_id}-"):
        if not force_unmount(mountpoint):
            raise InfraError(f"storage mount {mountpoint} of run {run_id} is still mounted")
        count += 1
    for sock in _control_dir().glob(f"{run_id}-*.sock"):
        with contextlib.suppress(OSError):
            sock.unlink()
    return count


def mounted_run_ids() -> set[str]:
    """Ids of this namespace's runs (under this harness home) that have a storage mount."""
    runs = run_dir("x").parent.resolve()
    found = set()
    for mountpoint in mounts_named(_prefix()):
        path = Path(mountpoint)
        if path.name == "mnt" and path.parent.parent.name == "storage" and path.parents[3] == runs:
            found.add(path.parents[2].name)
    return found
