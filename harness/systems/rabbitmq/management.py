"""The management plugin's HTTP API on a node: what the probe samples.

Cheap (milliseconds), where ``rabbitmqctl`` starts an Erlang VM per call (about a CPU-second each). Not
the health check: its node statistics (partitions among them) are refreshed every few seconds, so just
after a recovery they still show the split ``cluster_status`` no longer has. The run's client account
(per-run password) reads it; nodes are reached on their own address, port 15672.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

from harness.runtime.run import Node

PORT = 15672


def api_get(node: Node, path: str, credentials: tuple[str, str], *, timeout: float = 2.0) -> Any:
    """``GET http://<node>:15672<path>`` as the run's client; the decoded JSON (raises on any failure)."""
    request = urllib.request.Request(f"http://{node.ip}:{PORT}{path}")
    token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
