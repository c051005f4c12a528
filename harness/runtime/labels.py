"""The labels every container, network and volume of a run carries (the reaper's only source of truth)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

PREFIX = "io.ha-harness"
RUN_ID = f"{PREFIX}.run-id"
KIND = f"{PREFIX}.kind"  # node | toxiproxy | marker | network
NODE = f"{PREFIX}.node"
SYSTEM = f"{PREFIX}.system"
TOPOLOGY = f"{PREFIX}.topology"  # the validated topology, as JSON (on the network)
SUBNET = f"{PREFIX}.subnet"
OWNER = f"{PREFIX}.owner"  # host:pid:start-time of the process that created the run
SECRET = f"{PREFIX}.secret"  # on the network: the run's secret, whence its passwords (runtime.run)
STATE = f"{PREFIX}.state"  # on the marker volume: "up" once the run is ready and handed over
NAMESPACE = f"{PREFIX}.namespace"  # $HARNESS_NAMESPACE: isolates concurrent users of one engine


def namespace() -> str:
    """Runs, `status`, `down --all` and the reaper only see resources of this namespace."""
    return os.environ.get("HARNESS_NAMESPACE") or "default"


def process_start_time(pid: int) -> str | None:
    """Kernel start time of ``pid`` (clock ticks since boot), to tell a live owner from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner_token(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{process_start_time(pid) or '?'}"


def owner_alive(token: str) -> bool:
    """Is the process named by an owner token still running (on this host)?"""
    try:
        host, pid_text, start = token.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # another host's run: never ours to sweep
    return process_start_time(pid) == start
