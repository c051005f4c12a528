"""How long does it take to put a link fault in effect, and to take it away again?

Starts the real toxiproxy-server locally (no Docker), creates one proxy in front of a local echo listener
and, for 50 repetitions each, times `LinkFaults.apply` from the call to the server's acknowledgement and
`LinkFaults.heal` likewise, for a latency toxic and for `down` (proxy disabled). For `down` it also checks
that a new connection is already refused right after the acknowledgement, i.e. that "acknowledged" really
means "in effect".

    HARNESS_TOXIPROXY_SERVER=/path/to/toxiproxy-server python bench/fault_latency_toxiproxy.py [-n 50]

Percentiles are nearest-rank (with 50 samples p99 is the maximum). Target: p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, when run as a script

from harness.faults.link import LinkFaults
from harness.model.faults import Down, Latency, LinkFaultBase
from harness.runtime.toxiproxy import Proxy, find_toxiproxy_server
from tests.support.toxiproxy_process import ToxiproxyProcess

TARGET_P99_MS = 50.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def start_listener() -> tuple[socket.socket, str]:
    """An upstream that accepts and echoes (the proxy only needs something to forward to)."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    host, port = srv.getsockname()[:2]
    return srv, f"{host}:{port}"


def refused(proxy: Proxy) -> bool:
    try:
        with socket.create_connection((proxy.listen_host, proxy.listen_port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True


def measure(
    faults: LinkFaults, spec: LinkFaultBase, n: int, check: Callable[[], bool] | None
) -> tuple[list[float], list[float], int]:
    apply_ms: list[float] = []
    heal_ms: list[float] = []
    in_effect = 0
    for _ in range(n):
        applied = faults.apply(spec)
        if check is not None and check():
            in_effect += 1
        healed = faults.heal(applied)
        apply_ms.append((applied.acked_ns - applied.called_ns) / 1e6)
        heal_ms.append((healed.acked_ns - healed.called_ns) / 1e6)
    return apply_ms, heal_ms, in_effect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=50, help="repetitions per fault (default 50)")
    args = parser.parse_args(argv)

    binary = find_toxiproxy_server()
    if binary is None:
        print("toxiproxy-server not found (set HARNESS_TOXIPROXY_SERVER)", file=sys.stderr)
        return 2
    srv, upstream = start_listener()
    worst = 0.0
    with ToxiproxyProcess(binary) as tp:
        client = tp.client
        print(f"toxiproxy-server {client.version()} at {tp.base_url} ({binary}); n={args.n}")
        proxy = client.create_proxy("bench", "127.0.0.1:0", upstream)
        faults = LinkFaults(client, {"bench": "bench"})
        # warm up the keep-alive connection and the server
        faults.heal(faults.apply(Latency(target="bench", latency_ms=1)))

        cases: list[tuple[str, LinkFaultBase, Callable[[], bool] | None]] = [
            ("latency 200ms downstream", Latency(target="bench", latency_ms=200), None),
            ("latency 200ms both", Latency(target="bench", latency_ms=200, direction="both"), None),
            ("down", Down(target="bench"), lambda: refused(proxy)),
        ]
        print(f"{'fault':<26} {'apply p50':>10} {'apply p99':>10} {'heal p50':>10} {'heal p99':>10}  (ms)")
        for label, spec, check in cases:
            apply_ms, heal_ms, in_effect = measure(faults, spec, args.n, check)
            row = [
                percentile(apply_ms, 50),
                percentile(apply_ms, 99),
                percentile(heal_ms, 50),
                percentile(heal_ms, 99),
            ]
            worst = max(worst, row[1], row[3])
            note = f"  refused right after ack: {in_effect}/{args.n}" if check is not None else ""
            print(f"{label:<26} " + " ".join(f"{v:>10.3f}" for v in row) + note)
        faults.heal_all()
        client.delete_proxy("bench")
    srv.close()
    verdict = "OK" if worst < TARGET_P99_MS else "OVER TARGET"
    print(f"worst p99 {worst:.3f} ms; target < {TARGET_P99_MS:.0f} ms: {verdict}")
    return 0 if worst < TARGET_P99_MS else 1


if __name__ == "__main__":
    sys.exit(main())
