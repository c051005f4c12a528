"""A node's wall clock, made to lie through Debian's libfaketime (topology ``clock: faketime``).

Every process of the node's container runs with libfaketime preloaded, reading its offset from
``<run dir>/clock/<node>/faketime`` (bind-mounted read-only at ``/run/ha-harness-clock``) on every time
call (``FAKETIME_NO_CACHE``), so the harness changes a node's clock by rewriting that file: no restart per
change. Only the wall clock (``CLOCK_REALTIME``, ``time()``, ``gettimeofday``) is faked; monotonic clocks
are left true (``FAKETIME_DONT_FAKE_MONOTONIC``), as when NTP steps a machine's clock. The harness's own
probes and checkers run on the host's clocks, so their measurements stay true while nodes' clocks lie.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.paths import run_dir

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"  # Debian's libfaketime package
IN_CONTAINER = "/run/ha-harness-clock"
FILE = "faketime"


class NodeClock:
    """The control file of one node's clock."""

    def __init__(self, run_id: str, node: str) -> None:
        self.directory = run_dir(run_id) / "clock" / node

    @property
    def path(self) -> Path:
        return self.directory / FILE

    def ensure(self) -> Path:
        """The directory to mount, with a true clock in it unless one is set already."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self.set_offset(0.0)
        return self.directory

    def set_offset(self, seconds: float) -> None:
        """The node's wall clock reads true time + ``seconds`` from its next time call on (atomically:
        a reader sees the old offset or the new one, never a torn line)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{FILE}.tmp"
        tmp.write_text(f"{seconds:+.6f}\n")
        os.replace(tmp, self.path)

    def offset(self) -> float:
        """The offset the file holds now (0 when there is none)."""
        try:
            return float(self.path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0.0

    @staticmethod
    def env() -> dict[str, str]:
        return {
            "LD_PRELOAD": LIBFAKETIME,
            "FAKETIME_TIMESTAMP_FILE": f"{IN_CONTAINER}/{FILE}",
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
