"""MMM probe: replication lag from pt-heartbeat, the replication threads, and the monitor's view, per master.

pt-heartbeat runs in the monitor's container and stamps ``harness.heartbeat`` through HAProxy's writer
frontend every 100 ms, so the stamps come from whichever master holds the writer role (one row per writer's
``server_id``; the newest row is the current writer's). Its ``ts`` is the monitor container's wall clock
in UTC (``--utc``), as text ``YYYY-MM-DDTHH:MM:SS.ffffff``; every container shares the host's clock. Every
100 ms each master's loop reads ``MAX(ts)`` on that master, directly (not through the client proxies, whose
faults are not replication's), and records ``replication_lag_s`` = host now − ts: up to ~0.1 s on the
writer (the stamp's age), more on a master whose replication is slowed or cut, back down once it caught up.

Every 500 ms it also records ``slave_io_running`` and ``slave_sql_running`` (strings: Yes,
Connecting, No), ``seconds_behind_master`` (MariaDB's own figure, "NULL" when the SQL thread is stopped —
it stays 0 when the network, not the applier, is slow), ``read_only`` (0/1), and the monitor's view of the
host as strings: ``mmm_state`` (ONLINE, REPLICATION_FAIL, …) and ``mmm_roles`` ("writer,reader", "-").
"""

from __future__ import annotations

from typing import Any

from harness.probes.base import Probe
from harness.runtime.run import Node
from harness.systems.mysql_replicated import LAG, heartbeat_age

__all__ = ["LAG", "MmmProbe", "heartbeat_age"]


class MmmProbe(Probe):
    name = "mmm"
    interval = 0.1
    status_interval = 0.5  # replication threads and the monitor's view, seconds

    def tick(self, node: Node, state: dict[str, object]) -> None:
        from harness.systems.mmm.cluster import DATABASE, HEARTBEAT_TABLE

        due = self.every(state, self.status_interval)
        if due:  # first, so that a node that no longer answers still gets the monitor's view on time
            self._monitor_view(node)
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

    def _monitor_view(self, node: Node) -> None:
        try:
            host = self.system.monitor_state(timeout=1.0)["hosts"][node.name]  # type: ignore[attr-defined]
        except Exception:
            self.samples.record(node.name, "mmm_state", "monitor unreachable")
            return
        self.samples.record(node.name, "mmm_state", str(host["state"]))
        self.samples.record(node.name, "mmm_roles", ",".join(host["roles"]) or "-")
