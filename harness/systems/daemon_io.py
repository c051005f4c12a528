"""The I/O the harness's standalone daemons share (MMM's monitor, the async replication manager).

Standalone on purpose: copied next to each daemon into its container (python3 + python3-pymysql from the
node image) and imported as a sibling module there, so it uses the standard library and pymysql only:

* ``log``: a line on stdout with a UTC wall-clock stamp (every container shares the host's clock);
* ``HAProxy``: its runtime API (``stats socket ipv4@...:PORT level admin``), one command per connection;
  ``HAProxyGroup``: a balancer pair's two, kept routing alike (``haproxy_api`` picks one or the other);
* ``mysql_connect`` / ``close_quietly`` / ``slave_status``;
* ``Heartbeat``: pt-heartbeat ``--update`` through HAProxy's writer frontend, started once the writer's
  server is ready, restarted when it exits and whenever the writer moves. Never with ``--create-table``:
  with ``--replace`` that TRUNCATEs the table at every start, and a TRUNCATE on a new writer breaks the
  apply of the old writer's last heartbeat once it rejoins; the clusters create the table once per node.
* ``StateServer``: ``GET /show`` (the daemon's state as JSON) and ``POST /<command>/<host>``, plus the same
  JSON rewritten into a state file every 0.5 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}"
    print(f"{stamp} {message}", flush=True)


def set_server_state(command: Callable[[str], str], backend: str, server: str, ready: bool) -> None:
    """``set server BACKEND/SERVER state ready|maint`` through ``command``; into maintenance, the server's
    sessions are shut too (clients must not keep writing to a node that lost the role)."""
    command(f"set server {backend}/{server} state {'ready' if ready else 'maint'}")
    if not ready:
        command(f"shutdown sessions server {backend}/{server}")


class HAProxy:
    """HAProxy's runtime API, one command per connection."""

    def __init__(self, host: str, port: int, timeout: float = 1.0) -> None:
        self.address = (host, port)
        self.timeout = timeout

    def query(self, line: str) -> str:
        """The API's answer to ``line``, as it is (``show ...``)."""
        with socket.create_connection(self.address, timeout=self.timeout) as sock:
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace").strip()

    def command(self, line: str) -> str:
        """``line``, which must succeed (a set command's answer is empty)."""
        answer = self.query(line)
        if answer and not answer.startswith("Server state"):  # success answers are empty
            raise RuntimeError(f"haproxy: {line!r}: {answer}")
        return answer

    def set_state(self, backend: str, server: str, ready: bool) -> None:
        set_server_state(self.command, backend, server, ready)


SET_STATE = re.compile(r"^set server (\S+)/(\S+) state (ready|maint)$")
FORCED_MAINT = 0x01  # srv_admin_state's flag set by ``state maint`` (0x04, the config's "disabled", stays)


def server_states(answer: str) -> dict[tuple[str, str], bool]:
    """``show servers state``'s answer as (backend, server) → ready: running (op_state not 0: servers have
    no health checks here) and not forced into maintenance. A server ``disabled`` in the config and never
    set ready (a HAProxy started again) is stopped."""
    out: dict[tuple[str, str], bool] = {}
    for line in answer.splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[0].isdigit():  # be_id be_name srv_id srv_name addr op_state admin_state
            out[(fields[1], fields[3])] = fields[5] != "0" and not int(fields[6]) & FORCED_MAINT
    return out


class HAProxyGroup:
    """A balancer pair's HAProxies, which must route alike. A command goes to every member in step, and
    fails only when none took it; the state of every server set is remembered. Every ``RESYNC_S`` a
    background thread compares each member's server states with that record: a member that differs
    (back from a kill with its rendered config), failed a command or does not answer (paused, cut off) is
    out of step — skipped by commands, so a frozen one costs one timeout, not one per command — until the
    thread has replayed the record onto it with nothing set meanwhile."""

    RESYNC_S = 0.5

    def __init__(self, members: list[HAProxy], *, resync: bool = True) -> None:
        self.members = members
        self.lock = threading.Lock()
        self.desired: dict[tuple[str, str], bool] = {}
        self.version = 0
        self.behind: set[int] = set()
        if resync:
            threading.Thread(target=self._resync_loop, name="haproxy-resync", daemon=True).start()

    def command(self, line: str) -> str:
        match = SET_STATE.match(line)
        answers: list[str] = []
        errors: list[Exception] = []
        with self.lock:
            if match:
                self.desired[(match[1], match[2])] = match[3] == "ready"
                self.version += 1
            for i, member in enumerate(self.members):
                if i in self.behind:
                    continue
                try:
                    answers.append(member.command(line))
                except Exception as exc:
                    self.behind.add(i)
                    errors.append(exc)
                    log(f"haproxy {member.address[0]}: out of step ({type(exc).__name__}: {exc})")
        if not answers:
            raise errors[-1] if errors else RuntimeError("haproxy: no balancer in step answers")
        return answers[0]

    def set_state(self, backend: str, server: str, ready: bool) -> None:
        set_server_state(self.command, backend, server, ready)

    def _resync_loop(self) -> None:
        while True:
            time.sleep(self.RESYNC_S)
            for i, member in enumerate(self.members):
                with contextlib.suppress(Exception):
                    self._check(i, member)

    def _check(self, i: int, member: HAProxy) -> None:
        with self.lock:
            desired, version = dict(self.desired), self.version
        try:
            states = server_states(member.query("show servers state"))
        except Exception:
            with self.lock:
                self.behind.add(i)
            return
        if i not in self.behind and all(states.get(k) == v for k, v in desired.items()):
            return
        with self.lock:
            self.behind.add(i)
        for (backend, server), ready in desired.items():  # outside the lock: commands skip this member
            set_server_state(member.command, backend, server, ready)
        with self.lock:
            if self.version == version:
                self.behind.discard(i)
                log(f"haproxy {member.address[0]}: in step ({len(desired)} server states)")


def haproxy_api(cfg: dict[str, Any] | list[dict[str, Any]]) -> HAProxy | HAProxyGroup:
    """The daemon's HAProxy: one (``{"host", "port"}``), or a balancer pair's (a list of them)."""
    if isinstance(cfg, dict):
        return HAProxy(cfg["host"], cfg["port"])
    return HAProxyGroup([HAProxy(c["host"], c["port"]) for c in cfg])


def mysql_connect(
    cfg: dict[str, Any], host: str, port: int, timeout: float, read_timeout: float | None = None
) -> Any:
    """As the daemon's admin user; ``read_timeout`` (default ``timeout``) bounds each statement."""
    import pymysql

    rw = timeout if read_timeout is None else read_timeout
    return pymysql.connect(host=host, port=port, user=cfg["user"], password=cfg["password"],
                           connect_timeout=timeout, read_timeout=rw, write_timeout=rw,
                           autocommit=True)  # fmt: skip


def close_quietly(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def slave_status(cur: Any) -> dict[str, Any]:
    """``SHOW SLAVE STATUS`` as a dict ({} when no replication is configured)."""
    cur.execute("SHOW SLAVE STATUS")
    row = cur.fetchone()
    names = [d[0] for d in cur.description] if cur.description else []
    return dict(zip(names, row, strict=False)) if row else {}


class Heartbeat:
    """pt-heartbeat following the writer: ``routed()`` says the writer's server is ready, ``epoch()``
    changes whenever the writer moves."""

    def __init__(self, cfg: dict[str, Any], routed: Callable[[], bool], epoch: Callable[[], int]) -> None:
        self.cfg = cfg
        self.routed, self.epoch = routed, epoch
        self.lock = threading.Lock()
        self.figures: dict[str, Any] = {"running": False, "restarts": 0, "last_lines": deque(maxlen=10)}

    def command(self) -> list[str]:
        hb = self.cfg
        return ["pt-heartbeat", "--update", "--replace", "--utc",
                "--interval", str(hb["interval"]), "--database", hb["database"], "--table", hb["table"],
                "--host", hb["host"], "--port", str(hb["port"]), "--user", hb["user"],
                "--password", hb["password"]]  # fmt: skip

    def status(self) -> dict[str, Any]:
        with self.lock:
            return dict(self.figures, last_lines=list(self.figures["last_lines"]))

    def loop(self) -> None:
        delay = 0.2
        while True:
            moved = False
            epoch = self.epoch()
            if not self.routed():
                time.sleep(0.05)
                continue
            proc = subprocess.Popen(
                self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            threading.Thread(target=self._output, args=(proc,), daemon=True).start()
            with self.lock:
                self.figures["running"] = True
                self.figures["pid"] = proc.pid
            began = watched = time.monotonic()
            while proc.poll() is None:
                moved = self.epoch() != epoch
                now = time.monotonic()
                due = now - began >= self.STALL_S and now - watched >= self.WATCH_S
                if due:
                    watched = now
                if moved or (due and self._stalled()):
                    self._stop(proc)
                    break
                time.sleep(0.05)
            proc.wait()
            with self.lock:
                self.figures["running"] = False
                self.figures["restarts"] += 1
                self.figures["last_exit"] = proc.returncode
            delay = 0.2 if time.monotonic() - began > 5 else min(2.0, delay * 2)
            time.sleep(0.0 if moved else delay)

    WATCH_S = 2.0  # how often a running pt-heartbeat's newest stamp is looked at
    STALL_S = 3.0  # a stamp this old, read through the writer frontend that answers, is a hung pt-heartbeat

    def _stalled(self) -> bool:
        """Whether pt-heartbeat hangs: its newest stamp, read through the writer frontend (which answers),
        is older than ``STALL_S``. Its connection has no read timeout, so one left on a balancer that lost
        the address (a frozen HAProxy whose kernel still holds the TCP session) would block it for good."""
        age = self.newest_age()
        if age is None or age <= self.STALL_S:
            return False
        log(f"pt-heartbeat: newest stamp {age:.1f}s old though the writer answers; restarting it")
        with self.lock:
            self.figures["stalls"] = self.figures.get("stalls", 0) + 1
        return True

    def newest_age(self) -> float | None:
        """Seconds since the newest stamp in the table, read through the writer frontend; None when that
        does not answer within a second (then pt-heartbeat cannot write either: not a hang)."""
        hb = self.cfg
        conn = None
        try:
            conn = mysql_connect(hb, hb["host"], hb["port"], timeout=1.0)
            with conn.cursor() as cur:
                cur.execute(f"SELECT MAX(ts) FROM {hb['database']}.{hb['table']}")
                (ts,) = cur.fetchone()
        except Exception:
            return None
        finally:
            close_quietly(conn)
        if not ts:
            return None
        stamp = datetime.fromisoformat(str(ts)).replace(tzinfo=UTC).timestamp()
        return time.time() - stamp

    @staticmethod
    def _stop(proc: subprocess.Popen[str]) -> None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2)
        if proc.poll() is None:
            proc.kill()

    def _output(self, proc: subprocess.Popen[str]) -> None:
        last = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()[:300]
            with self.lock:
                self.figures["last_lines"].append(line)
            if line[:60] != last[:60]:
                log(f"pt-heartbeat: {line}")
            last = line


class StateServer:
    """``GET /show`` → ``show()``; ``POST /<command>/<host>`` → ``commands[command](host)`` as (ok, message);
    ``show()`` also rewritten into ``state_file`` every 0.5 s (when one is given)."""

    def __init__(
        self,
        show: Callable[[], dict[str, Any]],
        commands: dict[str, Callable[[str], tuple[bool, str]]],
        port: int,
        state_file: str | None,
    ) -> None:
        self.show, self.commands, self.port, self.state_file = show, commands, port, state_file

    def start(self) -> None:
        server = ThreadingHTTPServer(("0.0.0.0", self.port), self._handler())
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        threading.Thread(target=self._write_state, name="state-file", daemon=True).start()

    def _write_state(self) -> None:
        path = self.state_file
        while path:
            data = json.dumps(self.show(), default=str, indent=1)
            tmp = f"{path}.tmp"
            with contextlib.suppress(OSError):
                with open(tmp, "w", encoding="utf-8") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            time.sleep(0.5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

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
                    self._send(200, owner.show())
                else:
                    self._send(404, {"error": "GET /show"})

            def do_POST(self) -> None:
                parts = self.path.strip("/").split("/")
                if len(parts) != 2 or parts[0] not in owner.commands:
                    names = " or ".join(f"/{c}/<host>" for c in owner.commands)
                    self._send(404, {"error": f"POST {names}"})
                    return
                ok, message = owner.commands[parts[0]](parts[1])
                self._send(200 if ok else 409, {"ok": ok, "message": message})

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def main(argv: list[str], script: str, daemon: Callable[[dict[str, Any]], Any]) -> int:
    """``<script> CONFIG.json``: load the config and run ``daemon(config).run()`` (forever)."""
    if len(argv) != 2:
        print(f"usage: {script} CONFIG.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        cfg = json.load(fh)
    daemon(cfg).run()
    return 0
