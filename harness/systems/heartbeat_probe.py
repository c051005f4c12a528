"""What the MMM and async replication probes share: pt-heartbeat lag and the replication threads per node.

Every ``interval`` (100 ms) each node's loop reads ``MAX(ts)`` of pt-heartbeat's table on that node,
directly (not through the client proxies, whose faults are not replication's), and records
``replication_lag_s`` = host now − ts. Every ``status_interval`` (500 ms) it also records
``slave_io_running`` and ``slave_sql_running`` (Yes, Connecting, No, "none"), ``seconds_behind_master``
("NULL" when the SQL thread is stopped) and ``read_only``, and first calls ``view`` for what the system's
own daemon says of the node (so that a node that no longer answers still gets it on time).
"""

from __future__ import annotations

from typing import Any

from harness.probes.base import Probe
from harness.runtime.run import Node
from harness.systems.mysql import DATABASE
from harness.systems.mysql_replicated import HEARTBEAT_TABLE, LAG, heartbeat_age


class HeartbeatProbe(Probe):
    interval = 0.1
    status_interval = 0.5  # replication threads and the daemon's view, seconds

    def view(self, node: Node) -> None:
        """Record the monitor's or manager's view of ``node``."""

    def tick(self, node: Node, state: dict[str, object]) -> None:
        due = self.every(state, self.status_interval)
        if due:
            self.view(node)
        try:
            conn = self.connection(state, lambda: self.system.connect(node, timeout=1.0))  # type: ignore[attr-defined]
            with conn.cursor() as cur:
                try:
                    cur.execute(f"SELECT MAX(ts) FROM {DATABASE}.{HEARTBEAT_TABLE}")
                    (ts,) = cur.fetchone()
                except Exception as exc:
                    if "doesn't exist" not in str(exc):
                        raise
                    ts = None
                self.samples.record(node.name, LAG, heartbeat_age(ts) if ts else "NULL")
                if due:
                    self._replication(cur, node)
        except Exception:  # down, paused, unreachable: a visible gap in the series
            self.samples.record(node.name, LAG, "unreachable")
            self.close(state)

    def _replication(self, cur: Any, node: Node) -> None:
        cur.execute("SHOW SLAVE STATUS")
        row = cur.fetchone()
        names = [d[0] for d in cur.description] if cur.description else []
        slave = dict(zip(names, row, strict=False)) if row else {}
        self.samples.record(node.name, "slave_io_running", str(slave.get("Slave_IO_Running") or "none"))
        self.samples.record(node.name, "slave_sql_running", str(slave.get("Slave_SQL_Running") or "none"))
        behind = slave.get("Seconds_Behind_Master")
        self.samples.record(
            node.name, "seconds_behind_master", float(behind) if behind is not None else "NULL"
        )
        cur.execute("SELECT @@read_only")
        self.samples.record(node.name, "read_only", float(cur.fetchone()[0]))
