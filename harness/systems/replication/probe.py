"""Async replication probe: replication lag from pt-heartbeat, the replication threads, the manager's view
per node, and the manager's failover steps as events of the run.

* Every 100 ms per node, directly (not through the client proxies, whose faults are not replication's):
  ``replication_lag_s`` = host now − the newest pt-heartbeat stamp the node holds (pt-heartbeat stamps
  through the writer frontend, so the source's row is the newest: ~0.1 s there, more where replication is
  slow or cut). Same metric and meaning as MMM's, so the ``lag`` checker reads both.
* Every 500 ms: ``slave_io_running``, ``slave_sql_running``, ``seconds_behind_master``, ``read_only``, and the
  manager's ``async_role`` (source / replica / diverged / unreachable).
* The manager's changes since the probe started become events (mechanism ``manager``, ``by: manager``): a
  ``failover`` from the source's failure to the new source's writer server being enabled, and one short
  event per step (fence, promote, route, repoint, demote, diverged), at the manager's own times.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from harness.model.history import Event
from harness.runtime.run import Node
from harness.systems.heartbeat_probe import HeartbeatProbe

STEPS = ("fence", "promote", "route", "repoint", "demote")
CHANGES_EVERY_S = 0.3


class AsyncProbe(HeartbeatProbe):
    name = "mysql-async"

    def setup(self) -> None:
        self._since = time.time()
        self._seen: set[tuple[float, str]] = set()
        self._failover: Event | None = None
        self._lock = threading.Lock()

    def tick(self, node: Node, state: dict[str, object]) -> None:
        if node == self.system.run.nodes[0] and self.every(state, CHANGES_EVERY_S, "changes"):
            self._changes()
        super().tick(node, state)

    def view(self, node: Node) -> None:
        self._manager_view(node)

    def _manager_view(self, node: Node) -> None:
        try:
            show = self.system.manager_state(timeout=1.0)  # type: ignore[attr-defined]
        except Exception:
            self.samples.record(node.name, "async_role", "manager unreachable")
            return
        host = show["hosts"][node.name]
        if show.get("source") == node.name:
            role = "source"
        elif host.get("diverged"):
            role = "diverged"
        elif not host.get("answers"):
            role = "unreachable"
        else:
            role = "replica"
        self.samples.record(node.name, "async_role", role)

    # -- the manager's changes as events
    def _changes(self) -> None:
        try:
            changes = self.system.manager_state(timeout=1.0)["changes"]  # type: ignore[attr-defined]
        except Exception:
            return
        with self._lock:
            for change in changes:
                key = (float(change["time"]), str(sorted(change.items())))
                if change["time"] < self._since or key in self._seen:
                    continue
                self._seen.add(key)
                self._event(change)

    def _at(self, wall: float) -> int:
        events = self.system.events
        return events.clock.now() - max(0, int((time.time() - wall) * 1e9))

    def _event(self, change: dict[str, Any]) -> None:
        events = self.system.events
        at = self._at(float(change["time"]))
        host = str(change.get("host", ""))
        kind = change.get("event") or change.get("action")
        if kind == "source-failed":
            if self._failover is None:
                detail = {"by": "manager", "failed": host, "why": change.get("message", "")}
                self._failover = events.open("failover", "manager", host, detail, at=at)
            return
        if kind == "route" and change.get("ok") and self._failover is not None:
            self._failover.detail["promoted"] = host
            events.close(self._failover, at=at)
            self._failover = None
        if kind in (*STEPS, "diverged", "promoted", "candidate"):
            if kind in STEPS and not change.get("ok"):
                kind = f"{kind}-failed"
            detail = {"by": "manager", "message": change.get("message", "")}
            if change.get("source"):
                detail["source"] = change["source"]
            ev = events.open(f"manager-{kind}", "manager", host, detail, at=at)
            events.close(ev, at=at)
