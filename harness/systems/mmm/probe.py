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
On a slave (``settings.slaves``) it records ``replicates_from`` too: the node its IO thread is connected to
(by ``Master_Server_Id``), "-" while it is not connected — which shows it following the writer.
"""

from __future__ import annotations

from typing import Any

from harness.runtime.run import Node
from harness.systems.heartbeat_probe import HeartbeatProbe
from harness.systems.mysql_replicated import LAG, heartbeat_age

__all__ = ["LAG", "MmmProbe", "heartbeat_age"]


class MmmProbe(HeartbeatProbe):
    name = "mmm"

    def view(self, node: Node) -> None:
        self._monitor_view(node)

    def _replication(self, cur: Any, node: Node) -> None:
        super()._replication(cur, node)
        if not self.system.is_slave(node):  # type: ignore[attr-defined]
            return
        cur.execute("SHOW SLAVE STATUS")
        row = cur.fetchone()
        names = [d[0] for d in cur.description] if cur.description else []
        slave = dict(zip(names, row, strict=False)) if row else {}
        self.samples.record(node.name, "replicates_from", self.system.source_of(slave) or "-")  # type: ignore[attr-defined]

    def _monitor_view(self, node: Node) -> None:
        try:
            host = self.system.monitor_state(timeout=1.0)["hosts"][node.name]  # type: ignore[attr-defined]
        except Exception:
            self.samples.record(node.name, "mmm_state", "monitor unreachable")
            return
        self.samples.record(node.name, "mmm_state", str(host["state"]))
        self.samples.record(node.name, "mmm_roles", ",".join(host["roles"]) or "-")
