"""Galera probes: replication lag from a heartbeat row per node, and the wsrep status counters.

Heartbeat: every ``interval`` (100 ms) each node's loop writes its own row ``(origin, seq, ts_ns)`` stamped
with the harness host's wall clock (all containers share it), then reads the newest stamp the node can
see — with ``wsrep_dirty_reads`` so that a non-Primary node still answers with what it has. The node's
lag is how far that stamp trails the newest heartbeat any node has acknowledged: 0 on a node in step
with the cluster, growing on a node cut off from it, back to 0 once it has caught up after a heal.
(For MySQL asynchronous replication, ``pt-heartbeat`` from percona-toolkit is the standard tool; Galera's
multi-writer replication needs a row per writer, hence this loop.)
"""

from __future__ import annotations

import threading
import time
from typing import Any

from harness.probes.base import Probe
from harness.runtime.run import Node

TABLE = "harness_heartbeat"
LAG = "replication_lag_s"
WSREP = ("wsrep_cluster_status", "wsrep_cluster_size", "wsrep_local_recv_queue", "wsrep_flow_control_paused",
         "wsrep_last_committed", "wsrep_local_state_comment")  # fmt: skip


class GaleraProbe(Probe):
    name = "galera"
    interval = 0.1
    status_interval = 0.5  # wsrep status, seconds

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._newest_ack = 0
        self._lock = threading.Lock()

    def setup(self) -> None:
        from harness.systems.mysql import DATABASE

        node = self.system.primary()
        conn = self.system.connect(node, database=DATABASE)  # type: ignore[attr-defined]
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (origin VARCHAR(16) PRIMARY KEY, "
                            "seq BIGINT NOT NULL, ts_ns BIGINT NOT NULL) ENGINE=InnoDB")  # fmt: skip
        finally:
            conn.close()

    def _open(self, node: Node) -> Any:
        from harness.systems.mysql import DATABASE

        conn = self.system.connect(node, timeout=1.0, database=DATABASE)  # type: ignore[attr-defined]
        with conn.cursor() as cur:
            cur.execute("SET SESSION wsrep_dirty_reads = ON")
            cur.execute("SET SESSION wsrep_sync_wait = 0")  # whatever the topology's sync_wait: never block
        return conn

    def tick(self, node: Node, state: dict[str, object]) -> None:
        seq = int(state.get("seq", 0)) + 1  # type: ignore[call-overload]
        state["seq"] = seq
        status_due = self.every(state, self.status_interval)
        try:
            conn = self.connection(state, lambda: self._open(node))
            with conn.cursor() as cur:
                self._beat(cur, node, seq)
                cur.execute(f"SELECT MAX(ts_ns) FROM {TABLE}")
                (visible,) = cur.fetchone()
                with self._lock:
                    newest = self._newest_ack
                if visible is not None and newest:
                    self.samples.record(node.name, LAG, max(0, newest - int(visible)) / 1e9)
                if status_due:
                    self._status(cur, node)
        except Exception:  # unreachable, non-Primary without dirty reads, paused: a gap in the series
            self.samples.record(node.name, LAG, "unreachable")
            self.close(state)

    def _beat(self, cur: Any, node: Node, seq: int) -> None:
        import pymysql

        ts = time.time_ns()
        try:
            cur.execute(
                f"REPLACE INTO {TABLE} (origin, seq, ts_ns) VALUES (%s, %s, %s)", (node.name, seq, ts)
            )
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] in (1047, 1213, 1205):  # non-Primary, conflict: no heartbeat here
                return
            raise
        with self._lock:
            self._newest_ack = max(self._newest_ack, ts)

    def _status(self, cur: Any, node: Node) -> None:
        names = ", ".join(f"'{n}'" for n in WSREP)
        cur.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
        for key, value in cur.fetchall():
            try:
                self.samples.record(node.name, str(key), float(value))
            except ValueError:
                self.samples.record(node.name, str(key), str(value))
