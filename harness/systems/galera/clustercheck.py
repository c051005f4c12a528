"""clustercheck, as OpenStack deployments run Percona's under xinetd: HTTP 200 while this Galera node is
Synced in the Primary component, 503 otherwise — what HAProxy's ``option httpchk`` asks on port 9200.

Standalone in the node's container (python3 and pymysql from the node image), started beside MariaDB by
the node's start script when the topology has HAProxy in front: ``python3 clustercheck.py CONFIG.json``
(``port``, ``user``, ``password``: the run's client account, which may read the server's status).
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pymysql

SYNCED = "4"


def verdict(status: dict[str, str]) -> tuple[bool, str]:
    """Percona's rule: available when ``wsrep_local_state`` is 4 (Synced) and the node is in the Primary
    component; a donor, a joiner or a non-Primary node is not."""
    state, cluster = status.get("wsrep_local_state"), status.get("wsrep_cluster_status")
    if state == SYNCED and cluster == "Primary":
        return True, "Galera cluster node is synced.\r\n"
    return False, f"Galera cluster node is not synced (state {state}, {cluster}).\r\n"


class Checker:
    """One connection to the local server, opened again after an error; one query at a time."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.lock = threading.Lock()
        self.conn: Any = None

    def status(self) -> dict[str, str]:
        with self.lock:
            try:
                if self.conn is None:
                    self.conn = pymysql.connect(host="127.0.0.1", port=3306, user=self.cfg["user"],
                                                password=self.cfg["password"], connect_timeout=1,
                                                read_timeout=1, write_timeout=1, autocommit=True)  # fmt: skip
                with self.conn.cursor() as cur:
                    cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN "
                                "('wsrep_local_state', 'wsrep_cluster_status')")  # fmt: skip
                    return {str(k): str(v) for k, v in cur.fetchall()}
            except Exception:
                if self.conn is not None:
                    with contextlib.suppress(Exception):
                        self.conn.close()
                self.conn = None
                return {}


def main(argv: list[str]) -> int:
    with open(argv[1]) as f:
        cfg = json.load(f)
    checker = Checker(cfg)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok, text = verdict(checker.status())
            body = text.encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_OPTIONS = do_GET
        do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            return

    ThreadingHTTPServer(("0.0.0.0", int(cfg.get("port", 9200))), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
