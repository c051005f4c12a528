#!/usr/bin/env python3
"""A replication manager for MariaDB GTID source–replica clusters, the way MHA and orchestrator fail a
dead source over: checks, fence, promote the most advanced replica, move the writer, repoint the rest.

Standalone on purpose: it runs in its own container from the node image (python3 + python3-pymysql) and
imports nothing of the harness. The decisions are the pure state machine in ``failover_state.py`` (its
docstring has the rules), copied next to this script with ``daemon_io.py``; this daemon does the I/O:

* **Checks**, one thread per host every ``check_period`` with ``check_timeout``: through the host's
  *client proxy* (as HAProxy reaches it, so a cut client link is a source the manager cannot see either),
  ``read_only``, ``gtid_binlog_pos`` with ``gtid_slave_pos`` (what the host holds: a host rebuilt by a dump
  and ``RESET MASTER`` has the old source's domain only in its slave position) and ``SHOW SLAVE STATUS``
  (``Gtid_IO_Pos``, the threads).
* **Actions**: HAProxy's servers of the host in the ``writer`` and ``repl`` backends (``fence``: maintenance
  and sessions shut; ``route``: ready) run in the loop, in order; SQL actions go to the host's own worker thread: ``promote`` (``MASTER_GTID_WAIT`` on
  the received position within ``apply_timeout``, ``STOP SLAVE``, ``RESET SLAVE ALL``, semi-sync's source
  side on, ``read_only=0``), ``demote`` (``read_only=1``, the application's connections killed, semi-sync's
  source side off), ``repoint`` (``CHANGE MASTER ... MASTER_USE_GTID=current_pos`` and ``START SLAVE``
  through the host's replication link ``<host>-repl``, which leads to HAProxy's ``repl`` frontend: the
  writer address for replicas, moved with the writer's).
* **State** at ``GET /show`` and in ``state_file``: hosts, the source, the failover phase, diverged hosts,
  and every change with its wall-clock time (the harness turns them into the run's events).
* **pt-heartbeat** through HAProxy's writer frontend, following the source.

Not implemented: a manager that restarts mid-failover resumes from the hosts' read_only (it assumes the
first source from its config), and no operator commands beyond ``GET /show``.

Usage: ``manager.py CONFIG.json`` (the harness renders the config).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

try:
    from harness.systems import daemon_io as io
    from harness.systems.replication import failover_state as fs
except ImportError:  # standalone in the manager container: the state machine and I/O are its siblings
    sys.dont_write_bytecode = True  # no __pycache__ in the run directory the container mounts
    import daemon_io as io  # type: ignore[import-not-found,no-redef]
    import failover_state as fs  # type: ignore[import-not-found,no-redef]

LOOP_S = 0.1


class Manager:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.s = fs.Settings(**cfg["settings"])
        self.hosts = {h["name"]: h for h in cfg["hosts"]}
        order = [h["name"] for h in cfg["hosts"]]
        self.state = fs.initial_state(self.s, order, cfg["source"], time.monotonic())
        self.round_lock = threading.Lock()
        self.lock = threading.Lock()
        self.inbox: list[fs.Observation] = []
        self.wake = threading.Event()
        self.workers: dict[str, queue.Queue[fs.Command]] = {name: queue.Queue() for name in order}
        self.changes: deque[dict[str, Any]] = deque(maxlen=500)
        self.haproxy = io.haproxy_api(cfg["haproxy"])
        self.heartbeat = io.Heartbeat(cfg["heartbeat"], self._routed, lambda: self.state.failovers)
        self.started = time.time()

    def _routed(self) -> bool:
        state = self.state
        return state.source is not None and state.routed == state.source and not state.busy(state.source)

    def note(self, **change: Any) -> None:
        change["time"] = time.time()
        with self.lock:
            self.changes.append(change)
        io.log("change " + " ".join(f"{k}={v}" for k, v in change.items() if k != "time"))

    def observe(self, *observations: fs.Observation) -> None:
        with self.lock:
            self.inbox.extend(observations)
        self.wake.set()

    def connect(self, name: str, *, statements: float | None = None) -> Any:
        """Through the host's client proxy; ``statements``: a longer bound on each statement."""
        host = self.hosts[name]
        timeout = self.cfg["check_timeout"]
        return io.mysql_connect(self.cfg, host["check_host"], host["check_port"], timeout, statements)

    # -- checks
    def check_loop(self, name: str) -> None:
        conn = None
        while True:
            began = time.monotonic()
            try:
                conn = conn or self.connect(name)
                with conn.cursor() as cur:
                    cur.execute("SELECT @@read_only, @@gtid_binlog_pos, @@gtid_slave_pos")
                    read_only, binlog, applied = cur.fetchone()
                    binlog = ",".join(
                        p for p in (str(binlog or ""), str(applied or "")) if p
                    )  # newest per domain
                    slave = io.slave_status(cur)
                result = fs.CheckResult(
                    name, True, time.monotonic(), "OK", int(read_only), str(binlog or ""),
                    str(slave.get("Gtid_IO_Pos") or ""), str(slave.get("Slave_IO_Running") or ""),
                    str(slave.get("Slave_SQL_Running") or ""),
                )  # fmt: skip
            except Exception as exc:
                io.close_quietly(conn)
                conn = None
                result = fs.CheckResult(
                    name, False, time.monotonic(), f"{type(exc).__name__}: {str(exc)[:160]}"
                )
            self.observe(result)
            time.sleep(max(0.0, self.s.check_period - (time.monotonic() - began)))

    # -- SQL actions, one worker per host
    def worker_loop(self, name: str) -> None:
        while True:
            action = self.workers[name].get()
            conn = None
            try:
                conn = self.connect(name, statements=self.s.apply_timeout + self.cfg["check_timeout"])
                message = self._sql(conn, action)
                ok = True
            except Exception as exc:
                ok, message = False, f"{type(exc).__name__}: {str(exc)[:160]}"
                io.log(f"{type(action).__name__.lower()} {name}: {message}")
            finally:
                io.close_quietly(conn)
            self.note(action=type(action).__name__.lower(), host=name, ok=ok, message=message,
                      **({"source": action.source} if isinstance(action, fs.Repoint) else {}))  # fmt: skip
            self.observe(fs.ActionResult(action.seq, ok, time.monotonic(), message))

    def _sql(self, conn: Any, action: fs.Command) -> str:
        semi = bool(self.cfg.get("semi_sync"))
        with conn.cursor() as cur:
            if isinstance(action, fs.Promote):
                waited = ""
                if action.wait_for:
                    cur.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (action.wait_for, self.s.apply_timeout))
                    (code,) = cur.fetchone()
                    waited = (
                        "relay log applied"
                        if code == 0
                        else f"relay log NOT applied in {self.s.apply_timeout:g}s"
                    )
                cur.execute("STOP SLAVE")
                cur.execute("RESET SLAVE ALL")
                if semi:
                    cur.execute("SET GLOBAL rpl_semi_sync_master_enabled = 1")
                cur.execute("SET GLOBAL read_only = 0")
                return ", ".join(filter(None, [waited, "read_only=0"]))
            if isinstance(action, fs.Demote):
                cur.execute("SET GLOBAL read_only = 1")
                if semi:
                    cur.execute("SET GLOBAL rpl_semi_sync_master_enabled = 0")
                cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND ID <> CONNECTION_ID()",
                            (self.cfg["app_user"],))  # fmt: skip
                killed = 0
                for (thread,) in cur.fetchall():
                    try:
                        cur.execute(f"KILL CONNECTION {int(thread)}")
                        killed += 1
                    except Exception:  # it ended by itself meanwhile
                        pass
                return f"read_only=1, {killed} client connection(s) killed"
            if isinstance(action, fs.Repoint):
                repl = self.cfg["repl"]
                port = self.hosts[action.host]["repl_port"]
                cur.execute("STOP SLAVE")
                if semi:
                    cur.execute("SET GLOBAL rpl_semi_sync_master_enabled = 0")
                cur.execute(
                    "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
                    "MASTER_USE_GTID=current_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
                    (repl["host"], port, repl["user"], repl["password"]),
                )
                cur.execute("START SLAVE")
                return (
                    f"replicating from {action.source} (via {action.host}-repl and HAProxy's repl frontend)"
                )
        raise ValueError(f"not an SQL action: {action}")

    # -- the loop
    def round(self) -> None:
        with self.round_lock:
            with self.lock:
                observations, self.inbox = self.inbox, []
            self.state, actions = fs.step(self.state, observations, time.monotonic())
            self.execute(actions)

    def execute(self, actions: Sequence[fs.Action]) -> None:
        results: list[fs.Observation] = []
        for action in actions:
            if isinstance(action, fs.Note):
                self.note(event=action.kind, host=action.host, message=action.message)
            elif isinstance(action, fs.Fence | fs.Route):
                ready = isinstance(action, fs.Route)
                try:
                    for backend in ("writer", "repl"):  # clients' way in, and the replicas'
                        self.haproxy.set_state(backend, action.host, ready)
                    ok, message = True, "ready" if ready else "maint"
                except Exception as exc:
                    ok, message = False, f"{type(exc).__name__}: {exc}"
                self.note(action=type(action).__name__.lower(), host=action.host, ok=ok, message=message)
                results.append(fs.ActionResult(action.seq, ok, time.monotonic(), message))
            else:
                self.workers[action.host].put(action)
        if results:
            self.observe(*results)

    def show(self) -> dict[str, Any]:
        state = self.state
        hosts = {
            name: {"answers": h.answers, "message": h.message, "read_only": h.read_only,
                   "binlog": h.binlog, "received": h.received_text, "io_running": h.io_running,
                   "sql_running": h.sql_running, "upstream": state.upstream.get(name),
                   "fenced": name in state.fenced, "diverged": state.diverged.get(name)}
            for name, h in state.hosts.items()
        }  # fmt: skip
        with self.lock:
            changes = list(self.changes)
        return {"time": time.time(), "started": self.started, "source": state.source,
                "routed": state.routed if state.routed == state.source else None, "phase": state.phase,
                "failovers": state.failovers, "diverged": sorted(state.diverged), "hosts": hosts,
                "changes": changes, "heartbeat": self.heartbeat.status(),
                "settings": asdict(self.s)}  # fmt: skip

    def run(self) -> None:
        for name in self.state.order:
            for loop in (self.check_loop, self.worker_loop):
                threading.Thread(
                    target=loop, args=(name,), name=f"{loop.__name__}-{name}", daemon=True
                ).start()
        threading.Thread(target=self.heartbeat.loop, name="heartbeat", daemon=True).start()
        io.StateServer(
            self.show, {}, int(self.cfg.get("http_port", 8080)), self.cfg.get("state_file")
        ).start()
        io.log(
            f"replication manager up: hosts {', '.join(self.state.order)}, source {self.state.source}; {self.s}"
        )
        while True:
            try:
                self.round()
            except Exception as exc:  # the loop must survive anything
                io.log(f"manager loop: {type(exc).__name__}: {exc}")
            self.wake.wait(LOOP_S)
            self.wake.clear()


def main(argv: list[str]) -> int:
    return io.main(argv, "manager.py", Manager)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
