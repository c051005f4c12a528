#!/usr/bin/env python3
"""An MMM-style monitor for two MariaDB masters: mmm_mond's checks, states and roles, the parts of
mmm_agentd it needs (``read_only``), HAProxy in place of moving IPs, and a supervised pt-heartbeat.

Standalone on purpose: it runs in its own container from the node image (python3 + python3-pymysql) and
imports nothing of the harness. mysql-mmm itself (unmaintained Perl) is not installed; this follows its
documented model (the MMM 2 manual: checks, host states, roles, flapping):

* **Checks**, per host every ``check_period`` with ``timeout``: ``ping`` (the host answers on the network:
  a TCP connection to its MySQL port is accepted *or refused*; no ICMP here), ``mysql`` (connect and query),
  ``rep_threads`` (Slave_IO_Running and Slave_SQL_Running are both Yes) and ``rep_backlog``
  (Seconds_Behind_Master is NULL or at most ``max_backlog``). A check counts as failed once it has kept
  failing for ``trap_period``; one success clears it.
* **Host states**: ONLINE, ADMIN_OFFLINE (set_offline), HARD_OFFLINE (ping or mysql failed),
  REPLICATION_FAIL (rep_threads failed), REPLICATION_DELAY (rep_backlog failed), AWAITING_RECOVERY (a host
  that answers again after HARD_OFFLINE, and every host when the monitor starts). Replication checks do not
  count on the active master (the writer), nor while the host's peer is not ONLINE and answering, nor for
  ``rep_grace`` seconds after the peer became ONLINE. REPLICATION_* goes back to ONLINE once the checks
  pass again (or the peer left ONLINE). AWAITING_RECOVERY goes ONLINE when the outage was shorter than
  60 s and MySQL was not restarted (its Uptime kept growing), or after ``auto_set_online`` seconds — unless
  the host is flapping (it left ONLINE ``flap_count`` times within ``flap_duration``).
* **Roles**: only ONLINE hosts hold roles. ``writer`` is exclusive (one host); it stays where it is while its
  host is ONLINE (no preferred host, no fail-back), and moves to the ONLINE host with the fewest roles when
  its host leaves ONLINE — never to a host in REPLICATION_FAIL/DELAY, which is not ONLINE. ``reader`` is
  balanced: one reader role per master, spread evenly over the ONLINE hosts.
* **Agent actions** (what mmm_agentd does on each host): the writer gets ``read_only=0`` — after applying
  what its relay log already holds (``MASTER_GTID_WAIT`` on its received position, at most ``timeout``) —
  every other reachable host ``read_only=1`` and its application connections killed. Enforced continuously.
* **HAProxy** instead of moving IPs: the writer role is server ``writer/<host>`` in state ``ready`` (all
  others ``maint``, with their sessions shut down), reader roles likewise in backend ``reader``, set through
  HAProxy's runtime API. A new writer is enabled only after ``read_only=0`` succeeded on it, and every
  removal is applied before any addition.
* **State** (``mmm_control show``): JSON at ``GET /show`` on ``http_port`` and in ``state_file``: hosts with
  state, roles, checks and read_only, the writer, and the last changes with wall-clock times (all containers
  share the host clock). ``POST /set_online/<host>`` and ``/set_offline/<host>`` are mmm_control's commands.
* **pt-heartbeat** (percona-toolkit) ``--update`` through HAProxy's writer frontend every ``interval``, so
  heartbeats follow the writer; restarted when it exits and whenever the writer moves.

Not implemented: the monitor's own network check and passive/manual/wait modes, move_role/set_ip,
preferred hosts, read-only slaves, the kill-host hook, saving and reloading the state across restarts.

Usage: ``mmm_monitor.py CONFIG.json`` (the harness renders the config).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ONLINE = "ONLINE"
ADMIN_OFFLINE = "ADMIN_OFFLINE"
HARD_OFFLINE = "HARD_OFFLINE"
REPLICATION_FAIL = "REPLICATION_FAIL"
REPLICATION_DELAY = "REPLICATION_DELAY"
AWAITING_RECOVERY = "AWAITING_RECOVERY"
CHECKS = ("ping", "mysql", "rep_threads", "rep_backlog")
SLAVE_FIELDS = ("Slave_IO_Running", "Slave_SQL_Running", "Seconds_Behind_Master", "Last_IO_Error",
                "Last_SQL_Error", "Gtid_IO_Pos")  # fmt: skip
SHORT_OUTAGE_S = 60.0  # MMM: a host down for less than this, and not restarted, comes back on its own
WRITER = "writer"
READER = "reader"


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Settings:
    check_period: float = 5.0
    trap_period: float = 10.0
    timeout: float = 2.0
    max_backlog: float = 60.0
    auto_set_online: float = 10.0
    rep_grace: float = 60.0
    flap_count: int = 3
    flap_duration: float = 3600.0


@dataclass
class Check:
    """One check of one host: its last result and since when it has been failing."""

    has_result: bool = False
    failing_since: float | None = None
    message: str = "not checked yet"
    last_change: float = 0.0

    def record(self, ok: bool, message: str, now: float) -> None:
        if not self.has_result or ok != (self.failing_since is None):
            self.last_change = now
        self.has_result = True
        self.message = message
        if ok:
            self.failing_since = None
        elif self.failing_since is None:
            self.failing_since = now

    def ok(self, now: float, trap_period: float) -> bool:
        """MMM's check status: fine until it has kept failing for ``trap_period``; unknown is not fine."""
        if not self.has_result:
            return False
        return self.failing_since is None or now - self.failing_since < trap_period


@dataclass
class Host:
    name: str
    ip: str
    peer: str | None
    state: str = AWAITING_RECOVERY
    since: float = 0.0  # when it entered ``state``
    checks: dict[str, Check] = field(default_factory=lambda: {c: Check() for c in CHECKS})
    uptime: float | None = None  # MySQL's Uptime at the last successful mysql check
    uptime_at_offline: float | None = None
    offline_at: float | None = None
    downtime: float | None = None  # length of the last HARD_OFFLINE spell
    rebooted: bool = True  # unknown at start counts as restarted
    left_online: list[float] = field(default_factory=list)  # times it left ONLINE (flapping)
    read_only: int | None = None
    slave: dict[str, Any] = field(default_factory=dict)

    def ok(self, check: str, now: float, s: Settings) -> bool:
        return self.checks[check].ok(now, s.trap_period)

    def alive(self, now: float, s: Settings) -> bool:
        return self.ok("ping", now, s) and self.ok("mysql", now, s)

    def flapping(self, now: float, s: Settings) -> bool:
        return len([t for t in self.left_online if now - t <= s.flap_duration]) >= s.flap_count


def transition(
    host: Host, peer: Host | None, is_writer: bool, now: float, s: Settings
) -> tuple[str, str] | None:
    """The host's next state and why, or None to stay (pure; the rules are in the module docstring)."""
    state = host.state
    if state == ADMIN_OFFLINE or not all(host.checks[c].has_result for c in ("ping", "mysql")):
        return None  # nothing to decide on before the first results
    alive = host.alive(now, s)
    counts = (
        not is_writer
        and peer is not None
        and peer.state == ONLINE
        and peer.alive(now, s)
        and now - peer.since >= s.rep_grace
    )
    threads_ok = host.ok("rep_threads", now, s) or not counts
    backlog_ok = host.ok("rep_backlog", now, s) or not counts
    if state == HARD_OFFLINE:
        return (AWAITING_RECOVERY, "ping and mysql answer again") if alive else None
    if not alive:
        failed = [c for c in ("ping", "mysql") if not host.ok(c, now, s)]
        return HARD_OFFLINE, f"check {' and '.join(failed)} failed: " + host.checks[failed[0]].message
    if state == ONLINE:
        if not threads_ok:
            return REPLICATION_FAIL, "rep_threads failed: " + host.checks["rep_threads"].message
        if not backlog_ok:
            return REPLICATION_DELAY, "rep_backlog failed: " + host.checks["rep_backlog"].message
        return None
    if state == AWAITING_RECOVERY:
        if not (threads_ok and backlog_ok) or host.flapping(now, s):
            return None
        short = host.downtime is not None and host.downtime < SHORT_OUTAGE_S and not host.rebooted
        if short:
            return ONLINE, f"back after {host.downtime:.1f}s without a restart"
        if now - host.since >= s.auto_set_online:
            return ONLINE, f"auto_set_online after {now - host.since:.1f}s"
        return None
    # REPLICATION_FAIL / REPLICATION_DELAY
    if threads_ok and backlog_ok:
        if host.flapping(now, s):
            return AWAITING_RECOVERY, "replication is fine again, but the host is flapping"
        return ONLINE, "replication checks pass again" if counts else "peer is not ONLINE"
    if state == REPLICATION_FAIL and threads_ok:
        return REPLICATION_DELAY, "rep_backlog failed: " + host.checks["rep_backlog"].message
    if state == REPLICATION_DELAY and not threads_ok:
        return REPLICATION_FAIL, "rep_threads failed: " + host.checks["rep_threads"].message
    return None


def enter(host: Host, state: str, now: float) -> None:
    """Move ``host`` to ``state``, keeping the bookkeeping the rules need (outage length, restarts)."""
    if host.state == ONLINE and state != ONLINE:
        host.left_online.append(now)
    if state == HARD_OFFLINE and host.state != HARD_OFFLINE:
        host.offline_at = now
        host.uptime_at_offline = host.uptime
    if host.state == HARD_OFFLINE and state != HARD_OFFLINE:
        host.downtime = now - (host.offline_at or now)
        before = host.uptime_at_offline
        host.rebooted = before is None or host.uptime is None or host.uptime < before
    host.state = state
    host.since = now


@dataclass
class Roles:
    writer: str | None = None
    readers: list[str | None] = field(default_factory=list)

    def of(self, host: str) -> list[str]:
        return ([WRITER] if self.writer == host else []) + [READER for r in self.readers if r == host]


def distribute(roles: Roles, online: list[str]) -> list[tuple[str, str | None, str | None]]:
    """Take roles from hosts that are not ONLINE and hand out orphans (pure). ``online`` is in config
    order, which breaks ties. Returns the moves as (role, from, to)."""
    moves: list[tuple[str, str | None, str | None]] = []

    def count(host: str) -> int:
        return len(roles.of(host))

    if roles.writer is not None and roles.writer not in online:
        moves.append((WRITER, roles.writer, None))
        roles.writer = None
    for i, host in enumerate(roles.readers):
        if host is not None and host not in online:
            moves.append((READER, host, None))
            roles.readers[i] = None
    if roles.writer is None and online:
        roles.writer = min(online, key=lambda h: (count(h), online.index(h)))
        moves.append((WRITER, None, roles.writer))
    for i, host in enumerate(roles.readers):
        if host is None and online:
            target = min(online, key=lambda h: (roles.readers.count(h), online.index(h)))
            roles.readers[i] = target
            moves.append((READER, None, target))
    while online:  # balanced: reader counts differ by at most one
        most = max(online, key=lambda h: (roles.readers.count(h), -online.index(h)))
        least = min(online, key=lambda h: (roles.readers.count(h), online.index(h)))
        if roles.readers.count(most) - roles.readers.count(least) <= 1:
            break
        roles.readers[roles.readers.index(most)] = least
        moves.append((READER, most, least))
    return moves


# ---------------------------------------------------------------------------------------------- I/O


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}"
    print(f"{stamp} {message}", flush=True)


class HAProxy:
    """HAProxy's runtime API (``stats socket ipv4@...:PORT level admin``), one command per connection."""

    def __init__(self, host: str, port: int, timeout: float = 1.0) -> None:
        self.address = (host, port)
        self.timeout = timeout

    def command(self, line: str) -> str:
        with socket.create_connection(self.address, timeout=self.timeout) as sock:
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
        answer = b"".join(chunks).decode(errors="replace").strip()
        if answer and not answer.startswith("Server state"):  # success answers are empty
            raise RuntimeError(f"haproxy: {line!r}: {answer}")
        return answer

    def set_state(self, backend: str, server: str, ready: bool) -> None:
        self.command(f"set server {backend}/{server} state {'ready' if ready else 'maint'}")
        if not ready:
            self.command(f"shutdown sessions server {backend}/{server}")


def mysql_connect(cfg: dict[str, Any], host: str, port: int, timeout: float) -> Any:
    import pymysql

    return pymysql.connect(host=host, port=port, user=cfg["user"], password=cfg["password"],
                           connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
                           autocommit=True)  # fmt: skip


def close_quietly(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


class Monitor:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.s = Settings(**cfg["settings"])
        self.order = [h["name"] for h in cfg["hosts"]]
        self.hosts = {h["name"]: Host(h["name"], h["ip"], h.get("peer")) for h in cfg["hosts"]}
        now = time.monotonic()
        for host in self.hosts.values():
            host.since = now
        self.roles = Roles(readers=[None] * len(self.order))
        self.lock = threading.RLock()
        self.changes: deque[dict[str, Any]] = deque(maxlen=200)
        self.haproxy = HAProxy(cfg["haproxy"]["host"], cfg["haproxy"]["port"])
        self.applied: dict[tuple[str, str], bool] = {}  # (backend, host) -> ready, as last set in HAProxy
        self.write_allowed: dict[str, bool] = {}  # host -> read_only=0 done by its agent for the writer role
        self.writer_epoch = 0
        self.heartbeat: dict[str, Any] = {"running": False, "restarts": 0, "last_lines": deque(maxlen=10)}
        self.started = time.time()
        self._last_resync = 0.0

    # -- clocks: decisions on the monotonic clock, reports in wall time (shared with the harness host)
    def wall(self, mono: float) -> float:
        return time.time() - (time.monotonic() - mono)

    def note(self, **change: Any) -> None:
        change["time"] = time.time()
        self.changes.append(change)
        text = " ".join(f"{k}={v}" for k, v in change.items() if k != "time")
        log(f"change {text}")

    # -- checks (one thread per host and kind)
    def ping_loop(self, host: Host) -> None:
        port = int(self.cfg.get("ping_port", 7))  # a closed port: the host's kernel answers with a reset
        while True:
            began = time.monotonic()
            try:
                with socket.create_connection((host.ip, port), timeout=self.s.timeout):
                    ok, msg = True, "OK"
            except ConnectionRefusedError:
                ok, msg = True, "OK: host answers (connection refused)"
            except OSError as exc:
                ok, msg = False, f"ERROR: {type(exc).__name__}: {exc}"
            with self.lock:
                host.checks["ping"].record(ok, msg, time.monotonic())
            time.sleep(max(0.0, self.s.check_period - (time.monotonic() - began)))

    def mysql_loop(self, host: Host) -> None:
        conn = None
        port = self.cfg.get("mysql_port", 3306)
        while True:
            began = time.monotonic()
            results: dict[str, tuple[bool, str]] = {}
            facts: dict[str, Any] = {}
            try:
                if conn is None:
                    conn = mysql_connect(self.cfg, host.ip, port, self.s.timeout)
                with conn.cursor() as cur:
                    cur.execute("SELECT @@read_only, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                "WHERE VARIABLE_NAME = 'UPTIME'")  # fmt: skip
                    read_only, uptime = cur.fetchone()
                    cur.execute("SHOW SLAVE STATUS")
                    row = cur.fetchone()
                    names = [d[0] for d in cur.description] if cur.description else []
                facts = {"read_only": int(read_only), "uptime": float(uptime)}
                results["mysql"] = (True, "OK")
                slave = dict(zip(names, row, strict=False)) if row else {}
                facts["slave"] = {k: slave.get(k) for k in SLAVE_FIELDS}
                results["rep_threads"] = self._rep_threads(slave)
                results["rep_backlog"] = self._rep_backlog(slave)
            except Exception as exc:
                close_quietly(conn)
                conn = None
                msg = f"ERROR: {type(exc).__name__}: {str(exc)[:160]}"
                results = {c: (False, msg) for c in ("mysql", "rep_threads", "rep_backlog")}
            now = time.monotonic()
            with self.lock:
                for check, (ok, msg) in results.items():
                    host.checks[check].record(ok, msg, now)
                if facts:
                    host.read_only = facts["read_only"]
                    host.uptime = facts["uptime"]
                    host.slave = facts["slave"]
            time.sleep(max(0.0, self.s.check_period - (time.monotonic() - began)))

    @staticmethod
    def _rep_threads(slave: dict[str, Any]) -> tuple[bool, str]:
        if not slave:
            return False, "ERROR: replication is not configured"
        io, sql = slave.get("Slave_IO_Running"), slave.get("Slave_SQL_Running")
        if io == "Yes" and sql == "Yes":
            return True, "OK"
        error = slave.get("Last_IO_Error") or slave.get("Last_SQL_Error") or ""
        return False, f"ERROR: Replication is broken (IO {io}, SQL {sql}) {error}"[:200].rstrip()

    def _rep_backlog(self, slave: dict[str, Any]) -> tuple[bool, str]:
        behind = slave.get("Seconds_Behind_Master") if slave else None
        if behind is None:
            return True, "OK: Backlog is null"
        if float(behind) <= self.s.max_backlog:
            return True, f"OK: Backlog is {behind}s"
        return False, f"ERROR: Backlog is too big ({behind}s > {self.s.max_backlog:g}s)"

    # -- the agent on each host (mmm_agentd): read_only follows the writer role
    def agent_loop(self, host: Host) -> None:
        conn = None
        port = self.cfg.get("mysql_port", 3306)
        verified = 0.0
        last_error = ""
        while True:
            with self.lock:
                writer = self.roles.writer == host.name
                allowed = self.write_allowed.get(host.name)
            try:
                if writer and not allowed:
                    conn = conn or mysql_connect(self.cfg, host.ip, port, self.s.timeout)
                    self._allow_write(conn, host)
                elif not writer and allowed is not False:
                    conn = conn or mysql_connect(self.cfg, host.ip, port, self.s.timeout)
                    self._deny_write(conn, host)
                elif time.monotonic() - verified >= self.s.check_period:  # enforce, as the agent does
                    conn = conn or mysql_connect(self.cfg, host.ip, port, self.s.timeout)
                    with conn.cursor() as cur:
                        cur.execute("SELECT @@read_only")
                        (read_only,) = cur.fetchone()
                        if int(read_only) != (0 if writer else 1):
                            cur.execute(f"SET GLOBAL read_only = {0 if writer else 1}")
                            log(f"agent {host.name}: read_only was {read_only}, set to {0 if writer else 1}")
                    verified = time.monotonic()
            except Exception as exc:
                close_quietly(conn)
                conn = None
                error = f"{type(exc).__name__}: {str(exc)[:160]}"
                if error != last_error:
                    log(f"agent {host.name}: {error}")
                last_error = error
                time.sleep(min(1.0, self.s.check_period))
                continue
            last_error = ""
            time.sleep(0.05)

    def _allow_write(self, conn: Any, host: Host) -> None:
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
                    log(f"agent {host.name}: relay log not applied within {self.s.timeout:g}s; taking writes")
            cur.execute("SET GLOBAL read_only = 0")
        with self.lock:
            if self.roles.writer == host.name:
                self.write_allowed[host.name] = True
                self.note(host=host.name, action="read_only=0 (writer)")

    def _deny_write(self, conn: Any, host: Host) -> None:
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
        with self.lock:
            if self.roles.writer != host.name:
                self.write_allowed[host.name] = False
                self.note(host=host.name, action=f"read_only=1, {killed} client connection(s) killed")

    # -- the main loop: states, roles, HAProxy
    def step(self) -> None:
        now = time.monotonic()
        with self.lock:
            for name in self.order:
                host = self.hosts[name]
                peer = self.hosts.get(host.peer) if host.peer else None
                change = transition(host, peer, self.roles.writer == name, now, self.s)
                if change is not None:
                    self.note(host=name, state_from=host.state, state_to=change[0], reason=change[1])
                    enter(host, change[0], now)
            self._distribute()
            self._sync_haproxy()

    def _distribute(self) -> None:
        online = [n for n in self.order if self.hosts[n].state == ONLINE]
        for role, old, new in distribute(self.roles, online):
            self.note(role=role, role_from=old or "-", role_to=new or "-")
            if role == WRITER and new is not None:
                self.writer_epoch += 1
                self.write_allowed[new] = False
            if role == WRITER and old is not None:
                self.write_allowed[old] = True  # until its agent has set read_only=1

    def _sync_haproxy(self) -> None:
        desired: dict[tuple[str, str], bool] = {}
        for name in self.order:
            desired[(WRITER, name)] = self.roles.writer == name and self.write_allowed.get(name) is True
            desired[(READER, name)] = name in self.roles.readers
        resync = time.monotonic() - self._last_resync > 5.0
        # removals before additions: never two writers in the writer backend
        for key in sorted(desired, key=lambda k: desired[k]):
            if self.applied.get(key) == desired[key] and not resync:
                continue
            try:
                if self.applied.get(key) == desired[key]:
                    self.haproxy.command(
                        f"set server {key[0]}/{key[1]} state {'ready' if desired[key] else 'maint'}"
                    )
                else:
                    self.haproxy.set_state(key[0], key[1], desired[key])
                    self.note(haproxy=f"{key[0]}/{key[1]}", server_state="ready" if desired[key] else "maint")
                self.applied[key] = desired[key]
            except Exception as exc:
                log(f"haproxy: {type(exc).__name__}: {exc}")
                self.applied.pop(key, None)
                return
        if resync:
            self._last_resync = time.monotonic()

    # -- commands (mmm_control)
    def set_online(self, name: str) -> tuple[bool, str]:
        now = time.monotonic()
        with self.lock:
            host = self.hosts.get(name)
            if host is None:
                return False, f"unknown host {name!r}"
            if host.state == ONLINE:
                return True, f"{name} is already ONLINE"
            if host.state not in (AWAITING_RECOVERY, ADMIN_OFFLINE):
                return (
                    False,
                    f"{name} is {host.state}; only AWAITING_RECOVERY or ADMIN_OFFLINE can be set online",
                )
            if not host.alive(now, self.s):
                checks = f"ping: {host.checks['ping'].message}; mysql: {host.checks['mysql'].message}"
                return False, f"{name} does not answer ({checks})"
            host.left_online.clear()
            self.note(host=name, state_from=host.state, state_to=ONLINE, reason="set_online")
            enter(host, ONLINE, now)
            self._distribute()
            self._sync_haproxy()
            return True, f"OK: State of {name!r} changed to ONLINE"

    def set_offline(self, name: str) -> tuple[bool, str]:
        now = time.monotonic()
        with self.lock:
            host = self.hosts.get(name)
            if host is None:
                return False, f"unknown host {name!r}"
            if host.state == ADMIN_OFFLINE:
                return True, f"{name} is already ADMIN_OFFLINE"
            self.note(host=name, state_from=host.state, state_to=ADMIN_OFFLINE, reason="set_offline")
            enter(host, ADMIN_OFFLINE, now)
            self._distribute()
            self._sync_haproxy()
            return True, f"OK: State of {name!r} changed to ADMIN_OFFLINE"

    def show(self) -> dict[str, Any]:
        now = time.monotonic()
        with self.lock:
            hosts = {}
            for name in self.order:
                h = self.hosts[name]
                hosts[name] = {
                    "ip": h.ip, "peer": h.peer, "state": h.state, "since": self.wall(h.since),
                    "roles": self.roles.of(name), "read_only": h.read_only, "uptime": h.uptime,
                    "flapping": h.flapping(now, self.s), "replication": h.slave,
                    "writes_enabled": self.write_allowed.get(name) is True and self.roles.writer == name,
                    "checks": {c: {"ok": h.ok(c, now, self.s), "message": h.checks[c].message,
                                   "last_change": self.wall(h.checks[c].last_change)} for c in CHECKS},
                }  # fmt: skip
            heartbeat = dict(self.heartbeat, last_lines=list(self.heartbeat["last_lines"]))
            writer = self.roles.writer
            return {"time": time.time(), "started": self.started, "writer": writer,
                    "writer_active": writer is not None and self.write_allowed.get(writer) is True,
                    "hosts": hosts, "changes": list(self.changes), "heartbeat": heartbeat,
                    "settings": asdict(self.s)}  # fmt: skip

    # -- pt-heartbeat, following the writer through HAProxy
    def heartbeat_loop(self) -> None:
        hb = self.cfg["heartbeat"]
        cmd = ["pt-heartbeat", "--update", "--replace", "--create-table", "--utc",
               "--interval", str(hb["interval"]), "--database", hb["database"], "--table", hb["table"],
               "--host", hb["host"], "--port", str(hb["port"]), "--user", hb["user"],
               "--password", hb["password"]]  # fmt: skip
        delay = 0.2
        while True:
            moved = False
            with self.lock:
                epoch, active = (
                    self.writer_epoch,
                    self.roles.writer is not None and self.write_allowed.get(self.roles.writer) is True,
                )
            if not active:
                time.sleep(0.05)
                continue
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            threading.Thread(target=self._heartbeat_output, args=(proc,), daemon=True).start()
            with self.lock:
                self.heartbeat["running"] = True
                self.heartbeat["pid"] = proc.pid
            began = time.monotonic()
            while proc.poll() is None:
                with self.lock:
                    moved = self.writer_epoch != epoch
                if moved:
                    proc.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(2)
                    if proc.poll() is None:
                        proc.kill()
                    break
                time.sleep(0.05)
            proc.wait()
            with self.lock:
                self.heartbeat["running"] = False
                self.heartbeat["restarts"] += 1
                self.heartbeat["last_exit"] = proc.returncode
            delay = 0.2 if time.monotonic() - began > 5 else min(2.0, delay * 2)
            time.sleep(0.0 if moved else delay)

    def _heartbeat_output(self, proc: subprocess.Popen[str]) -> None:
        last = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()[:300]
            with self.lock:
                self.heartbeat["last_lines"].append(line)
            if line[:60] != last[:60]:
                log(f"pt-heartbeat: {line}")
            last = line

    # -- running
    def write_state(self) -> None:
        path = self.cfg.get("state_file")
        while path:
            data = json.dumps(self.show(), default=str, indent=1)
            tmp = f"{path}.tmp"
            with contextlib.suppress(OSError):
                with open(tmp, "w", encoding="utf-8") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            time.sleep(0.5)

    def run(self) -> None:
        for host in self.hosts.values():
            for loop in (self.ping_loop, self.mysql_loop, self.agent_loop):
                threading.Thread(
                    target=loop, args=(host,), name=f"{loop.__name__}-{host.name}", daemon=True
                ).start()
        threading.Thread(target=self.heartbeat_loop, name="heartbeat", daemon=True).start()
        threading.Thread(target=self.write_state, name="state-file", daemon=True).start()
        server = ThreadingHTTPServer(("0.0.0.0", int(self.cfg.get("http_port", 8080))), handler_for(self))
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        log(f"mmm monitor up: hosts {', '.join(self.order)}; settings {self.s}")
        while True:
            try:
                self.step()
            except Exception as exc:  # the loop must survive anything
                log(f"monitor loop: {type(exc).__name__}: {exc}")
            time.sleep(0.1)


def handler_for(monitor: Monitor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/show", ""):
                self._send(200, monitor.show())
            else:
                self._send(404, {"error": "GET /show"})

        def do_POST(self) -> None:
            parts = self.path.strip("/").split("/")
            commands = {"set_online": monitor.set_online, "set_offline": monitor.set_offline}
            if len(parts) != 2 or parts[0] not in commands:
                self._send(404, {"error": "POST /set_online/<host> or /set_offline/<host>"})
                return
            ok, message = commands[parts[0]](parts[1])
            self._send(200 if ok else 409, {"ok": ok, "message": message})

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: mmm_monitor.py CONFIG.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        cfg = json.load(fh)
    Monitor(cfg).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
