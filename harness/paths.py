"""Where the harness keeps things on the host."""

from __future__ import annotations

import os
from pathlib import Path

TOXIPROXY_VERSION = "v2.12.0"


def harness_home() -> Path:
    """Tools and per-run rendered configs: ``$HARNESS_HOME`` or ``~/.local/share/ha-harness``."""
    return Path(os.environ.get("HARNESS_HOME") or Path.home() / ".local/share/ha-harness")


def run_dir(run_id: str) -> Path:
    """Rendered configuration files of one run (bind-mounted into its containers)."""
    return harness_home() / "runs" / run_id


def toxiproxy_server_path() -> Path:
    return harness_home() / "bin" / "toxiproxy-server"
