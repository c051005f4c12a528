"""iptables rules in a node's network namespace: the mechanism behind peer-mesh partitions.

The harness owns the ``filter`` table of every node's namespace (Docker keeps its own rules in ``nat``),
so a partition is one atomic ``iptables-restore`` of that table per node and a heal is the same with no
rules: idempotent, and nothing else to track. As root on the Docker host the rules are entered with
``nsenter -t <pid> -n`` and containers need no capabilities; otherwise (Docker Desktop, a remote engine)
they are applied from inside the container, which then gets NET_ADMIN.

From the host the legacy (xtables) backend is preferred when the kernel has it: an nft-backed
``iptables-restore`` costs ~15 ms of kernel time per call here, the legacy one ~1.7 ms, and that is most
of a partition's latency (``bench/fault_latency.py``). ``HARNESS_IPTABLES=nft|legacy`` forces one. Docker's
own rules in the namespace (``nat``, embedded DNS) are untouched either way: the kernel runs both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from functools import cache

from harness.errors import InfraError
from harness.runtime.base import Runtime

COMMENT = "ha-harness"


def mode() -> str:
    """``nsenter`` (root on the Docker host) or ``exec`` (inside the container, with NET_ADMIN)."""
    forced = os.environ.get("HARNESS_NETFILTER_MODE")
    if forced in ("nsenter", "exec"):
        return forced
    if os.geteuid() == 0 and shutil.which("nsenter") and shutil.which("iptables-restore"):
        return "nsenter"
    return "exec"


@cache
def backend() -> str:
    """``legacy`` or ``nft``: which iptables the host side uses (the same in every process)."""
    forced = os.environ.get("HARNESS_IPTABLES")
    if forced in ("legacy", "nft"):
        return forced
    if shutil.which("iptables-legacy-restore"):
        probe = subprocess.run(["iptables-legacy-save", "-t", "filter"], capture_output=True, check=False)
        if probe.returncode == 0:
            return "legacy"
    return "nft"


def host_tool(name: str) -> str:
    """``iptables-restore`` → ``iptables-legacy-restore`` when the legacy backend is in use."""
    return name.replace("iptables-", f"iptables-{backend()}-") if backend() == "legacy" else name


def ruleset(drop_from: Iterable[str], isolate: str | None = None) -> str:
    """The whole filter table: drop every packet arriving from the given peer addresses; with ``isolate``
    (a subnet), every packet from or to that subnet on any interface but loopback, both ways."""
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [f'-A INPUT -s {ip}/32 -m comment --comment "{COMMENT}" -j DROP' for ip in sorted(drop_from)]
    if isolate:
        lines += [f'-A INPUT ! -i lo -s {isolate} -m comment --comment "{COMMENT}" -j DROP',
                  f'-A OUTPUT ! -o lo -d {isolate} -m comment --comment "{COMMENT}" -j DROP']  # fmt: skip
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def apply(runtime: Runtime, container: str, drop_from: Iterable[str], how: str | None = None, *,
          isolate: str | None = None) -> None:  # fmt: skip
    """Replace the node's filter table so that it drops packets from ``drop_from`` (and, with ``isolate``,
    everything from or to that subnet); nothing given: heal."""
    text = ruleset(drop_from, isolate)
    how = how or mode()
    if how == "nsenter":
        pid = runtime.state(container).pid
        if not pid:
            return  # not running: a stopped node has no namespace; a restarted one starts clean
        done = subprocess.run(["nsenter", "-t", str(pid), "-n", host_tool("iptables-restore"), "-w", "5"],
                              input=text, capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            raise InfraError(f"iptables-restore in {container} failed: {done.stderr.strip()[:200]}")
        return
    if runtime.state(container).status != "running":
        return
    result = runtime.exec(container, ["sh", "-c", f"printf '%s' '{text}' | iptables-restore -w 5"])
    if result.exit_code != 0:
        raise InfraError(f"iptables-restore in {container} failed: {result.output.strip()[:200]}")


def current(runtime: Runtime, container: str) -> list[str]:
    """Source addresses the node currently drops (for tests and status)."""
    pid = runtime.state(container).pid
    if not pid:
        return []
    if mode() == "nsenter":
        out = subprocess.run(["nsenter", "-t", str(pid), "-n", host_tool("iptables-save"), "-t", "filter"],
                             capture_output=True, text=True, check=False).stdout  # fmt: skip
    else:
        out = runtime.exec(container, ["iptables-save", "-t", "filter"]).output
    drops = []
    for line in out.splitlines():
        if line.startswith("-A INPUT -s ") and line.endswith("-j DROP") and COMMENT in line:
            drops.append(line.split()[3].removesuffix("/32"))
    return sorted(drops)
