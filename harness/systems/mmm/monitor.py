#!/usr/bin/env python3
"""An MMM-style monitor for two MariaDB masters and their read-only slaves: mmm_mond's checks, states and
roles, the parts of mmm_agentd it needs (``read_only``, ``set_active_master``), HAProxy in place of moving
IPs, and a supervised pt-heartbeat.

Standalone on purpose: it runs in its own container from the node image (python3 + python3-pymysql) and
imports nothing of the harness. mysql-mmm itself (unmaintained Perl) is not installed; this follows its
documented model. The decisions — checks with trap periods, host states, roles, the safety rule, what to
set where — are the pure state machine in ``monitor_state.py`` (its docstring has the rules), copied next
to this script; this daemon only does the I/O around it:

* **Checks**, per host every ``check_period`` with ``timeout``, one thread per host and kind: ``ping`` (a
  TCP connection to a closed port is accepted *or refused*; no ICMP here) and ``mysql`` (one query for
  ``read_only`` and Uptime, then ``SHOW SLAVE STATUS`` for ``rep_threads`` and ``rep_backlog``). Their
  results are observations for the state machine's next round.
* **The loop**: every 100 ms (at once when an agent reports back or a HAProxy batch went through) one
  ``step`` of the state machine with the observations since the last, then its actions: state and role
  changes are noted, HAProxy commands run in order (the rest of the batch is skipped after a failure),
  read_only actions go to the host's agent thread. Every result goes back as an observation.
* **Agents** (what mmm_agentd does on each host), one thread and connection per host: a promotion applies
  what the relay log already holds (``MASTER_GTID_WAIT`` on its received position, at most ``timeout``),
  then ``read_only=0``; a demotion sets ``read_only=1`` and kills the application's connections; an
  enforcement sets back a value the host reported against the monitor's. On a slave, ``set_active_master``
  is MMM's: catch up on what it has (the relay log, bounded), ``STOP SLAVE``, ``CHANGE MASTER`` to the
  new master, ``START SLAVE`` — with GTID (``MASTER_USE_GTID=slave_pos``) where MMM reads the new
  master's binlog coordinates, and through the slave's own replication link (``repl_port`` on the run's
  Toxiproxy), which leads to HAProxy's ``repl`` frontend, whose one ready server is the writer.
* **HAProxy** instead of moving IPs: the writer role is server ``writer/<host>`` in state ``ready`` (all
  others ``maint``, with their sessions shut down), reader roles likewise in backend ``reader``, set through
  HAProxy's runtime API.
* **State** (``mmm_control show``): JSON at ``GET /show`` on ``http_port`` and in ``state_file``: hosts with
  state, roles, checks and read_only, the writer, and the last changes with wall-clock times (all containers
  share the host clock). ``POST /set_online/<host>`` and ``/set_offline/<host>`` are mmm_control's commands.
* **pt-heartbeat** (percona-toolkit) ``--update`` through HAProxy's writer frontend every ``interval``, so
  heartbeats follow the writer; started once the writer's server is ready, restarted when it exits and
  whenever the writer moves. Not with ``--create-table``: combined with ``--replace`` that TRUNCATEs the
  table at every start, and a TRUNCATE on the new writer breaks the apply of the old writer's last
  heartbeat once it rejoins; the cluster creates the table once on each master instead.

Not implemented: the monitor's own network check and passive/manual/wait modes, move_role/set_ip,
preferred hosts, turning a slave's replication off at set_offline, the kill-host hook, saving and reloading the state across restarts
(a restarted monitor rediscovers the writer from the hosts' read_only instead).

Usage: ``mmm_monitor.py CONFIG.json`` (the harness renders the config).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

try:
    from harness.systems import daemon_io as io
    from harness.systems.mmm import monitor_state as ms
except ImportError:  # standalone in the monitor container: the state machine and I/O are its siblings
    sys.dont_write_bytecode = True  # no __pycache__ in the run directory the container mounts
    import daemon_io as io  # type: ignore[import-not-found,no-redef]
    import monitor_state as ms  # type: ignore[import-not-found,no-redef]

SLAVE_FIELDS = ("Slave_IO_Running", "Slave_SQL_Running", "Seconds_Behind_Master", "Last_IO_Error",
                "Last_SQL_Error", "Gtid_IO_Pos", "Master_Server_Id")  # fmt: skip
LOOP_S = 0.1  # the main loop's period
MAX_BURST = 10  # follow-up rounds run at once before the loop waits again


def rep_threads(slave: dict[str, Any]) -> tuple[bool, str]:
    if not slave:
        return False, "ERROR: replication is not configured"
    io, sql = slave.get("Slave_IO_Running"), slave.get("Slave_SQL_Running")
    if io == "Yes" and sql == "Yes":
        return True, "OK"
    error = slave.get("Last_IO_Error") or slave.get("Last_SQL_Error") or ""
    return False, f"ERROR: Replication is broken (IO {io}, SQL {sql}) {error}"[:200].rstrip()


def rep_backlog(slave: dict[str, Any], max_backlog: float) -> tuple[bool, str]:
    behind = slave.get("Seconds_Behind_Master") if slave else None
    if behind is None:
        return True, "OK: Backlog is null"
    if float(behind) <= max_backlog:
        return True, f"OK: Backlog is {behind}s"
    return False, f"ERROR: Backlog is too big ({behind}s > {max_backlog:g}s)"


class Monitor:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.s = ms.Settings(**cfg["settings"])
        hosts = [(h["name"], h["ip"], h.get("peer")) for h in cfg["hosts"]]
        self.ips = {name: ip for name, ip, _ in hosts}
        self.repl_ports = {h["name"]: h["repl_port"] for h in cfg["hosts"] if h.get("repl_port")}
        slaves = [h["name"] for h in cfg["hosts"] if h.get("mode") == ms.SLAVE]
        # replaced, never changed in place
        self.state = ms.initial_state(self.s, hosts, time.monotonic(), slaves=slaves)
        self.round_lock = threading.RLock()  # one round (step + its actions) at a time
        self.lock = threading.Lock()  # the inbox, the changes, the heartbeat's figures
        self.inbox: list[ms.Observation] = []
        self.wake = threading.Event()
        self.agents: dict[str, queue.Queue[ms.SetReadOnly | ms.SetMaster]] = {
            n: queue.Queue() for n in self.ips
        }
        self.changes: deque[dict[str, Any]] = deque(maxlen=200)
        self.haproxy = io.haproxy_api(cfg["haproxy"])
        self.heartbeat = io.Heartbeat(
            cfg["heartbeat"], lambda: self.state.writer_routed(), lambda: self.state.writer_epoch
        )
        self.started = time.time()

    # -- clocks: decisions on the monotonic clock, reports in wall time (shared with the harness host)
    def wall(self, mono: float) -> float:
        return time.time() - (time.monotonic() - mono)

    def note(self, **change: Any) -> None:
        change["time"] = time.time()
        with self.lock:
            self.changes.append(change)
        text = " ".join(f"{k}={v}" for k, v in change.items() if k != "time")
        io.log(f"change {text}")

    def observe(self, *observations: ms.Observation, wake: bool = False) -> None:
        with self.lock:
            self.inbox.extend(observations)
        if wake:
            self.wake.set()

    # -- checks (one thread per host and kind)
    def ping_loop(self, name: str) -> None:
        port = int(self.cfg.get("ping_port", 7))  # a closed port: the host's kernel answers with a reset
        while True:
            began = time.monotonic()
            try:
                with socket.create_connection((self.ips[name], port), timeout=self.s.timeout):
                    ok, msg = True, "OK"
            except ConnectionRefusedError:
                ok, msg = True, "OK: host answers (connection refused)"
            except OSError as exc:
                ok, msg = False, f"ERROR: {type(exc).__name__}: {exc}"
            self.observe(ms.CheckResult(name, "ping", ok, msg, time.monotonic()))
            time.sleep(max(0.0, self.s.check_period - (time.monotonic() - began)))

    def mysql_loop(self, name: str) -> None:
        conn = None
        port = self.cfg.get("mysql_port", 3306)
        while True:
            began = time.monotonic()
            results: dict[str, tuple[bool, str]] = {}
            facts: list[ms.Observation] = []
            try:
                if conn is None:
                    conn = io.mysql_connect(self.cfg, self.ips[name], port, self.s.timeout)
                asked = time.monotonic()
                with conn.cursor() as cur:
                    cur.execute("SELECT @@read_only, VARIABLE_VALUE, @@server_id FROM "
                                "information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'")  # fmt: skip
                    read_only, uptime, server_id = cur.fetchone()
                    cur.execute("SHOW SLAVE STATUS")
                    row = cur.fetchone()
                    names = [d[0] for d in cur.description] if cur.description else []
                slave = dict(zip(names, row, strict=False)) if row else {}
                results["mysql"] = (True, "OK")
                results["rep_threads"] = rep_threads(slave)
                results["rep_backlog"] = rep_backlog(slave, self.s.max_backlog)
                facts.append(ms.HostFacts(name, int(read_only), float(uptime), {k: slave.get(k) for k in
                                          SLAVE_FIELDS}, asked, int(server_id)))  # fmt: skip
            except Exception as exc:
                io.close_quietly(conn)
                conn = None
                msg = f"ERROR: {type(exc).__name__}: {str(exc)[:160]}"
                results = {c: (False, msg) for c in ("mysql", "rep_threads", "rep_backlog")}
                facts = []
            now = time.monotonic()
            checks = [ms.CheckResult(name, check, ok, msg, now) for check, (ok, msg) in results.items()]
            self.observe(*checks, *facts)
            time.sleep(max(0.0, self.s.check_period - (time.monotonic() - began)))

    # -- the agent on each host (mmm_agentd): runs the state machine's agent actions, one at a time
    def agent_loop(self, name: str) -> None:
        conn = None
        port = self.cfg.get("mysql_port", 3306)
        last_error = ""
        while True:
            action = self.agents[name].get()
            try:
                conn = conn or io.mysql_connect(self.cfg, self.ips[name], port, self.s.timeout)
                if isinstance(action, ms.SetMaster):
                    conn.ping(reconnect=True)  # after a slave's restart its old connection is dead
                    self._set_active_master(conn, name, action.master)
                elif action.kind == "promote":
                    self._allow_write(conn, name)
                elif action.kind == "demote":
                    self._deny_write(conn, name)
                else:
                    self._enforce(conn, name, action.read_only)
                ok, message = True, "OK"
                last_error = ""
            except Exception as exc:
                io.close_quietly(conn)
                conn = None
                ok, message = False, f"{type(exc).__name__}: {str(exc)[:160]}"
                if message != last_error:
                    io.log(f"agent {name}: {message}")
                last_error = message
            result: ms.Observation
            if isinstance(action, ms.SetMaster):
                result = ms.SetMasterResult(name, action.seq, action.master, ok, message, time.monotonic())
            else:
                result = ms.ReadOnlyResult(name, action.seq, action.read_only, ok, message, time.monotonic())
            self.observe(result, wake=True)

    def _allow_write(self, conn: Any, name: str) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT @@server_id")
            (own,) = cur.fetchone()
            cur.execute("SHOW SLAVE STATUS")
            row = cur.fetchone()
            names = [d[0] for d in cur.description] if cur.description else []
            io_pos = str(dict(zip(names, row, strict=False)).get("Gtid_IO_Pos") or "") if row else ""
            # the peer's transactions it has received (its own come back through the ring and are skipped)
            received = ",".join(
                g for g in io_pos.split(",") if g.strip() and g.strip().split("-")[1] != str(own)
            )
            if received:  # apply what the relay log already holds before taking writes
                cur.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (received, self.s.timeout))
                (waited,) = cur.fetchone()
                if waited != 0:
                    io.log(f"agent {name}: relay log not applied within {self.s.timeout:g}s; taking writes")
            cur.execute("SET GLOBAL read_only = 0")
        self.note(host=name, action="read_only=0 (writer)")

    def _set_active_master(self, conn: Any, name: str, master: str) -> None:
        """mmm_agentd's set_active_master on slave ``name``: apply what the relay log holds (at most half
        ``timeout``, within the connection's read timeout), then replicate from ``master`` by GTID through
        the slave's replication link, which reaches the writer's server of HAProxy's ``repl`` backend."""
        repl = self.cfg["repl"]
        with conn.cursor() as cur:
            received = str(io.slave_status(cur).get("Gtid_IO_Pos") or "")
            if received:
                cur.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (received, self.s.timeout / 2))
                (waited,) = cur.fetchone()
                if waited != 0:
                    io.log(f"agent {name}: relay log not applied within {self.s.timeout / 2:g}s; moving on")
            cur.execute("STOP SLAVE")
            cur.execute(
                "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
                "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
                (repl["host"], self.repl_ports[name], repl["user"], repl["password"]),
            )
            cur.execute("START SLAVE")
        self.note(host=name, action=f"set_active_master {master}")

    def _deny_write(self, conn: Any, name: str) -> None:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL read_only = 1")
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND ID <> CONNECTION_ID()",
                (self.cfg["app_user"],),
            )
            killed = 0
            for (thread,) in cur.fetchall():
                with contextlib.suppress(Exception):
                    cur.execute(f"KILL CONNECTION {int(thread)}")
                    killed += 1
        self.note(host=name, action=f"read_only=1, {killed} client connection(s) killed")

    @staticmethod
    def _enforce(conn: Any, name: str, read_only: bool) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT @@read_only")
            (current,) = cur.fetchone()
            if int(current) != int(read_only):
                cur.execute(f"SET GLOBAL read_only = {int(read_only)}")
                io.log(f"agent {name}: read_only was {current}, set to {int(read_only)}")

    # -- the main loop: one step of the state machine, then its actions
    def round(self) -> bool:
        """One round; True when it ran HAProxy commands that all went through (a follow-up may be due)."""
        with self.round_lock:
            with self.lock:
                observations, self.inbox = self.inbox, []
            self.state, actions = ms.step(self.state, observations, time.monotonic())
            return self.execute(actions)

    def execute(self, actions: Sequence[ms.Action]) -> bool:
        ran = failed = False
        results: list[ms.Observation] = []
        for action in actions:
            if isinstance(action, ms.HostStateChange):
                self.note(host=action.host, state_from=action.state_from, state_to=action.state_to,
                          reason=action.reason)  # fmt: skip
            elif isinstance(action, ms.MoveRole):
                self.note(role=action.role, role_from=action.source or "-", role_to=action.target or "-")
            elif isinstance(action, ms.Log):
                io.log(action.message)
            elif isinstance(action, ms.SetReadOnly | ms.SetMaster):
                self.agents[action.host].put(action)
            elif isinstance(action, ms.SetHaproxy):
                status, message = self._haproxy(action, skip=failed)
                results.append(ms.HaproxyResult(action.backend, action.server, action.ready, status,
                                                time.monotonic(), message))  # fmt: skip
                ran, failed = True, failed or status == "failed"
        self.observe(*results)
        return ran and not failed

    def _haproxy(self, action: ms.SetHaproxy, *, skip: bool) -> tuple[ms.HaproxyStatus, str]:
        if skip:
            return "skipped", "an earlier command failed"
        state = "ready" if action.ready else "maint"
        try:
            if action.refresh:
                self.haproxy.command(f"set server {action.backend}/{action.server} state {state}")
            else:
                self.haproxy.set_state(action.backend, action.server, action.ready)
        except Exception as exc:
            io.log(f"haproxy: {type(exc).__name__}: {exc}")
            return "failed", f"{type(exc).__name__}: {exc}"
        if not action.refresh:
            self.note(haproxy=f"{action.backend}/{action.server}", server_state=state)
        return "ok", ""

    # -- commands (mmm_control)
    def command(self, name: str, host: str) -> tuple[bool, str]:
        with self.round_lock:
            self.state, actions, ok, message = ms.command(self.state, name, host, time.monotonic())
            self.execute(actions)
        self.wake.set()
        return ok, message

    def set_online(self, host: str) -> tuple[bool, str]:
        return self.command("set_online", host)

    def set_offline(self, host: str) -> tuple[bool, str]:
        return self.command("set_offline", host)

    def show(self) -> dict[str, Any]:
        now = time.monotonic()
        state = self.state  # a snapshot: states are replaced, never changed
        s = state.settings
        hosts = {}
        for name in state.order:
            h = state.hosts[name]
            hosts[name] = {
                "ip": h.ip, "peer": h.peer, "state": h.state, "since": self.wall(h.since),
                "roles": state.roles.of(name), "read_only": h.read_only, "uptime": h.uptime,
                "flapping": h.flapping(now, s), "replication": h.slave,
                "writes_enabled": state.roles.writer == name, "agent": state.agents[name].mode,
                "mode": h.mode, "following": state.agents[name].following, "server_id": h.server_id,
                "checks": {c: {"ok": h.ok(c, now, s), "message": h.checks[c].message,
                               "last_change": self.wall(h.checks[c].last_change)} for c in ms.CHECKS},
            }  # fmt: skip
        heartbeat = self.heartbeat.status()
        with self.lock:
            changes = list(self.changes)
        writer = state.roles.writer
        return {"time": time.time(), "started": self.started, "writer": writer,
                "writer_active": writer is not None, "writer_candidate": state.candidate,
                "hosts": hosts, "changes": changes, "heartbeat": heartbeat,
                "settings": asdict(s)}  # fmt: skip

    def run(self) -> None:
        for name in self.state.order:
            for loop in (self.ping_loop, self.mysql_loop, self.agent_loop):
                threading.Thread(
                    target=loop, args=(name,), name=f"{loop.__name__}-{name}", daemon=True
                ).start()
        threading.Thread(target=self.heartbeat.loop, name="heartbeat", daemon=True).start()
        commands = {"set_online": self.set_online, "set_offline": self.set_offline}
        io.StateServer(
            self.show, commands, int(self.cfg.get("http_port", 8080)), self.cfg.get("state_file")
        ).start()
        io.log(f"mmm monitor up: hosts {', '.join(self.state.order)}; settings {self.s}")
        burst = 0
        while True:
            try:
                again = self.round()
            except Exception as exc:  # the loop must survive anything
                io.log(f"monitor loop: {type(exc).__name__}: {exc}")
                again = False
            burst = burst + 1 if again else 0
            if 0 < burst < MAX_BURST:  # e.g. the removals just confirmed: the writer's promotion next
                continue
            burst = 0
            self.wake.wait(LOOP_S)
            self.wake.clear()


def main(argv: list[str]) -> int:
    return io.main(argv, "mmm_monitor.py", Monitor)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
