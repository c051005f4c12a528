"""The MMM monitor's decisions (pure: host states, roles), the daemon's glue around them, and the mmm
topology's input errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import cli
from harness.systems.mmm import monitor as monitor_module
from harness.systems.mmm.monitor import Monitor
from harness.systems.mmm.monitor_state import (
    ADMIN_OFFLINE,
    AWAITING_RECOVERY,
    CHECKS,
    HARD_OFFLINE,
    ONLINE,
    READER,
    REPLICATION_DELAY,
    REPLICATION_FAIL,
    SLAVE,
    WRITER,
    CheckResult,
    HaproxyResult,
    Host,
    HostFacts,
    ReadOnlyResult,
    Roles,
    SetMaster,
    SetMasterResult,
    Settings,
    distribute,
    enter,
    transition,
)

S = Settings(check_period=0.5, trap_period=1.5, timeout=1.0, max_backlog=5.0, auto_set_online=3.0,
             rep_grace=2.0, flap_count=3, flap_duration=60.0)  # fmt: skip


def host(name: str, peer: str, state: str = ONLINE, since: float = 0.0, **failing: float) -> Host:
    """A host whose checks all passed at t=0, except those named in ``failing`` (failing since then)."""
    h = Host(name, f"10.0.0.{name[-1]}", peer, state=state, since=since, uptime=100.0)
    for each in h.checks.values():
        each.record(True, "OK", 0.0)
    for name_, since_t in failing.items():
        h.checks[name_].record(False, "ERROR", since_t)
    return h


def test_a_check_fails_only_after_its_trap_period() -> None:
    n1 = host("n1", "n2", mysql=10.0)
    n2 = host("n2", "n1")
    assert transition(n1, n2, True, 11.0, S) is None  # failing for 1 s < trap 1.5 s
    assert transition(n1, n2, True, 11.6, S) == (HARD_OFFLINE, "check mysql failed: ERROR")
    n1.checks["mysql"].record(True, "OK", 11.7)  # one success clears it
    assert n1.ok("mysql", 11.7, S)


def test_replication_failure_takes_a_standby_out_but_never_the_writer() -> None:
    n1, n2 = host("n1", "n2"), host("n2", "n1", rep_threads=10.0)
    assert transition(n2, n1, False, 12.0, S) == (REPLICATION_FAIL, "rep_threads failed: ERROR")
    n1.checks["rep_threads"].record(False, "ERROR", 10.0)
    assert transition(n1, n2, True, 12.0, S) is None  # the active master is never REPLICATION_*
    lagging = host("n2", "n1", rep_backlog=10.0)
    assert transition(lagging, host("n1", "n2"), False, 12.0, S)[0] == REPLICATION_DELAY  # type: ignore[index]


def test_replication_checks_ignored_while_the_peer_is_down_or_freshly_online() -> None:
    n2 = host("n2", "n1", rep_threads=10.0)
    dead = host("n1", "n2", state=HARD_OFFLINE, mysql=9.0)
    assert transition(n2, dead, False, 12.0, S) is None
    fresh = host("n1", "n2", since=11.0)  # ONLINE for 1 s < rep_grace 2 s
    assert transition(n2, fresh, False, 12.0, S) is None
    assert transition(n2, fresh, False, 13.5, S)[0] == REPLICATION_FAIL  # type: ignore[index]


def test_replication_states_go_straight_back_to_online() -> None:
    n1 = host("n1", "n2")
    n2 = host("n2", "n1", state=REPLICATION_FAIL, since=5.0)
    assert transition(n2, n1, False, 12.0, S) == (ONLINE, "replication checks pass again")
    n2.checks["rep_threads"].record(False, "ERROR", 8.0)
    n2.checks["rep_backlog"].record(False, "ERROR", 8.0)
    assert transition(n2, n1, False, 12.0, S) is None  # both failing: stays REPLICATION_FAIL
    n1.state = HARD_OFFLINE
    assert transition(n2, n1, False, 12.0, S) == (ONLINE, "peer is not ONLINE")


def test_recovery_short_outage_without_restart_vs_restart() -> None:
    n2 = host("n2", "n1")
    n1 = host("n1", "n2", mysql=10.0)
    enter(n1, HARD_OFFLINE, 11.5)
    n1.checks["mysql"].record(True, "OK", 20.0)
    n1.uptime = 120.0  # kept running (e.g. paused): Uptime grew
    assert transition(n1, n2, False, 20.0, S) == (AWAITING_RECOVERY, "ping and mysql answer again")
    enter(n1, AWAITING_RECOVERY, 20.0)
    assert not n1.rebooted and n1.downtime == pytest.approx(8.5)
    assert transition(n1, n2, False, 20.1, S) == (ONLINE, "back after 8.5s without a restart")

    restarted = host("n1", "n2", mysql=10.0)
    enter(restarted, HARD_OFFLINE, 11.5)
    restarted.checks["mysql"].record(True, "OK", 20.0)
    restarted.uptime = 2.0  # MySQL restarted
    enter(restarted, AWAITING_RECOVERY, 20.0)
    assert restarted.rebooted
    assert transition(restarted, n2, False, 21.0, S) is None  # waits for auto_set_online
    assert transition(restarted, n2, False, 23.1, S)[0] == ONLINE  # type: ignore[index]


def test_flapping_host_is_not_set_online_by_itself() -> None:
    n2 = host("n2", "n1")
    n1 = host("n1", "n2", state=AWAITING_RECOVERY, since=10.0)
    n1.left_online = [1.0, 5.0, 9.0]
    assert transition(n1, n2, False, 30.0, S) is None
    n1.state, n1.since = REPLICATION_FAIL, 10.0
    assert transition(n1, n2, False, 30.0, S)[0] == AWAITING_RECOVERY  # type: ignore[index]
    assert transition(host("n1", "n2", state=ADMIN_OFFLINE), n2, False, 30.0, S) is None


def test_nothing_is_decided_before_the_first_check_results() -> None:
    fresh = Host("n1", "10.0.0.1", "n2")
    assert transition(fresh, host("n2", "n1"), False, 100.0, S) is None


def test_roles_writer_exclusive_readers_balanced_no_failback() -> None:
    roles = Roles(readers=[None, None])
    moves = distribute(roles, ["n1", "n2"])
    assert roles.writer == "n1" and sorted(roles.readers) == ["n1", "n2"]  # type: ignore[type-var]
    assert (WRITER, None, "n1") in moves
    distribute(roles, ["n2"])  # n1 left ONLINE: the writer and its reader move to n2
    assert roles.writer == "n2" and roles.readers == ["n2", "n2"]
    assert roles.of("n2") == [WRITER, READER, READER]
    moves = distribute(roles, ["n1", "n2"])  # n1 back: one reader returns, the writer stays (no fail-back)
    assert roles.writer == "n2" and sorted(roles.readers) == ["n1", "n2"]  # type: ignore[type-var]
    assert moves == [(READER, "n2", "n1")]
    assert distribute(roles, ["n1", "n2"]) == []
    distribute(roles, [])
    assert roles.writer is None and roles.readers == [None, None]


def slave(name: str = "n3", **failing: float) -> Host:
    h = host(name, "", **failing)
    h.peer, h.mode = None, SLAVE
    return h


def test_a_slaves_replication_checks_count_against_the_writer_after_its_grace() -> None:
    n3 = slave(rep_threads=10.0)
    writer = host("n2", "n1", since=0.0)  # ONLINE for long, but the writer only since t=11
    assert transition(n3, None, False, 12.0, S) is None  # no active master: nothing to replicate from
    assert transition(n3, writer, False, 12.0, S, grace_since=11.0) is None  # being repointed
    assert transition(n3, writer, False, 13.1, S, grace_since=11.0) == (
        REPLICATION_FAIL,
        "rep_threads failed: ERROR",
    )
    dead = host("n2", "n1", state=HARD_OFFLINE, mysql=9.0)
    assert transition(n3, dead, False, 13.1, S, grace_since=11.0) is None


def test_a_slave_back_from_a_short_outage_still_waits_for_auto_set_online() -> None:
    n3 = slave(mysql=10.0)
    enter(n3, HARD_OFFLINE, 11.5)
    n3.checks["mysql"].record(True, "OK", 20.0)
    n3.uptime = 120.0  # not restarted
    enter(n3, AWAITING_RECOVERY, 20.0)
    writer = host("n1", "n2")
    assert transition(n3, writer, False, 20.1, S) is None  # a master would be ONLINE now
    assert transition(n3, writer, False, 23.1, S) == (ONLINE, "auto_set_online after 3.1s")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nodes: 3\n", "{f}:1: settings.slaves: nodes: 3 means masters n1, n2 and slaves n3; got none"),
        ("nodes: 2\nsettings:\n  trap_period: 0s\n", "{f}:5: settings.trap_period: must be > 0, got 0s"),
        ("nodes: 2\nsettings:\n  flap_count: 0\n", "{f}:5: settings.flap_count: input should be greater than or equal to 1, got 0"),
        ("nodes: 2\nsettings:\n  check_period: soon\n",
         "{f}:5: settings.check_period: expected a duration like 10s, 500ms or 2m, got 'soon'"),
    ],
)  # fmt: skip
def test_bad_mmm_topology(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = tmp_path / "mmm.yaml"
    path.write_text("name: m2\nsystem: mmm\n" + text)
    code = cli.main(["validate", str(path)])
    _, err = capsys.readouterr()
    assert (code, err.strip()) == (2, expected.format(f=path))


# ---------------------------------------------------------------------------------------------- the daemon's glue

CFG = {
    "hosts": [{"name": "n1", "ip": "10.0.0.11", "peer": "n2"}, {"name": "n2", "ip": "10.0.0.12", "peer": "n1"}],
    "user": "mmm_agent", "password": "x", "app_user": "harness", "mysql_port": 3306,
    "settings": {"check_period": 0.5, "trap_period": 1.5, "timeout": 1.0, "max_backlog": 5.0,
                 "auto_set_online": 3.0, "rep_grace": 2.0, "flap_count": 5, "flap_duration": 300.0},
    "haproxy": {"host": "127.0.0.1", "port": 9}, "http_port": 0, "state_file": None,
    "heartbeat": {},
}  # fmt: skip


class FakeHAProxy:
    def __init__(self, fail_on: str = "") -> None:
        self.lines: list[str] = []
        self.fail_on = fail_on

    def command(self, line: str) -> str:
        if self.fail_on and self.fail_on in line:
            raise ConnectionRefusedError("haproxy down")
        self.lines.append(line)
        return ""

    def set_state(self, backend: str, server: str, ready: bool) -> None:
        self.command(f"set server {backend}/{server} state {'ready' if ready else 'maint'}")
        if not ready:
            self.command(f"shutdown sessions server {backend}/{server}")


def checks_pass(monitor: Monitor, name: str, read_only: int, now: float) -> None:
    monitor.observe(*[CheckResult(name, c, True, "OK", now) for c in CHECKS],
                    HostFacts(name, read_only, 1000.0, {"Slave_IO_Running": "Yes"}, now))  # fmt: skip


def test_daemon_round_runs_the_machines_actions_and_feeds_results_back() -> None:
    monitor = Monitor(CFG)
    monitor.haproxy = FakeHAProxy(fail_on="reader/n1")  # type: ignore[assignment]
    now = time.monotonic()
    for name in ("n1", "n2"):
        checks_pass(monitor, name, 1, now)
    assert monitor.round() is False  # a HAProxy command failed: no follow-up round at once
    # writer/n1 went through, reader/n1 failed, the rest of the batch was skipped
    assert monitor.haproxy.lines == ["set server writer/n1 state maint", "shutdown sessions server writer/n1"]  # type: ignore[attr-defined]
    statuses = [(o.server, o.backend, o.status) for o in monitor.inbox if isinstance(o, HaproxyResult)]
    assert statuses == [("n1", "writer", "ok"), ("n1", "reader", "failed"), ("n2", "writer", "skipped"),
                        ("n2", "reader", "skipped")]  # fmt: skip
    demotions = [monitor.agents[n].get_nowait() for n in ("n1", "n2")]  # both hosts answer: read_only=1
    assert [(a.host, a.kind) for a in demotions] == [("n1", "demote"), ("n2", "demote")]
    monitor.haproxy.fail_on = ""  # type: ignore[attr-defined]
    assert monitor.round() is True  # the failed and skipped commands again, all through
    assert monitor.round() is False  # their results taken in: nothing more to do
    assert monitor.state.haproxy == {(b, n): False for n in ("n1", "n2") for b in (WRITER, READER)}
    changes = [c for c in monitor.changes if "haproxy" in c]
    assert [c["haproxy"] for c in changes] == ["writer/n1", "reader/n1", "writer/n2", "reader/n2"]

    for action in demotions:
        monitor.observe(ReadOnlyResult(action.host, action.seq, True, True, "OK", time.monotonic()))
    monitor.round()
    ok, message = monitor.command("set_online", "n1")
    assert ok, message
    promotion = monitor.agents["n1"].get_nowait()
    assert (promotion.host, promotion.kind) == ("n1", "promote")
    show = monitor.show()
    assert show["writer"] is None and show["writer_candidate"] == "n1" and not show["writer_active"]
    monitor.observe(ReadOnlyResult("n1", promotion.seq, False, True, "OK", time.monotonic()))
    assert monitor.round() is True  # the role, then writer/n1 ready: the run loop follows up at once
    assert monitor.haproxy.lines[-1] == "set server writer/n1 state ready"  # type: ignore[attr-defined]
    monitor.round()
    show = monitor.show()
    assert show["writer"] == "n1" and show["writer_active"] and monitor.state.writer_routed()
    assert show["hosts"]["n1"]["roles"] == ["writer", "reader", "reader"]
    assert show["hosts"]["n1"]["writes_enabled"] and show["hosts"]["n1"]["state"] == ONLINE
    assert set(show["hosts"]["n1"]["checks"]) == set(CHECKS)
    assert {"time", "started", "changes", "heartbeat", "settings"} <= set(show)
    moved = [c for c in show["changes"] if c.get("role") == "writer"]
    assert moved[-1]["role_to"] == "n1" and moved[-1]["role_from"] == "-"
    json.dumps(show, default=str)


def test_daemon_runs_standalone_next_to_its_state_machine(tmp_path: Path) -> None:
    """As in the monitor container: the three files in one directory, no harness, no site-packages."""
    mmm = Path(monitor_module.__file__).parent
    shutil.copyfile(mmm / "monitor.py", tmp_path / "mmm_monitor.py")
    shutil.copyfile(mmm / "monitor_state.py", tmp_path / "monitor_state.py")
    shutil.copyfile(mmm.parent / "daemon_io.py", tmp_path / "daemon_io.py")
    code = (
        "import sys; import mmm_monitor\n"
        "assert mmm_monitor.ms.__name__ == 'monitor_state', mmm_monitor.ms\n"
        "assert mmm_monitor.io.__name__ == 'daemon_io', mmm_monitor.io\n"
        "assert not [m for m in sys.modules if m.startswith('harness')]\n"
        "sys.exit(mmm_monitor.main(['mmm_monitor.py']))\n"
    )
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip
    assert (done.returncode, done.stderr.strip()) == (2, "usage: mmm_monitor.py CONFIG.json")
    assert not (tmp_path / "__pycache__").exists()


class FakeCursor:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.description: list[tuple[str]] | None = None
        self.row: tuple[object, ...] | None = None

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, args: object = None) -> None:
        self.log.append(sql if args is None else f"{sql} {args}")
        if sql == "SHOW SLAVE STATUS":
            self.description, self.row = [("Gtid_IO_Pos",)], ("1-1-40,2-2-7",)
        elif sql.startswith("SELECT MASTER_GTID_WAIT"):
            self.description, self.row = [("w",)], (0,)

    def fetchone(self) -> tuple[object, ...] | None:
        return self.row


class FakeConn:
    def __init__(self) -> None:
        self.log: list[str] = []

    def ping(self, reconnect: bool = False) -> None:
        self.log.append(f"ping reconnect={reconnect}")

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.log)


REPLICA_CFG = {
    **CFG,
    "hosts": [*CFG["hosts"], {"name": "n3", "ip": "10.0.0.13", "mode": "slave", "repl_port": 13406}],  # type: ignore[list-item]
    "repl": {"host": "10.0.0.2", "user": "repl", "password": "r"},
}


def test_set_active_master_catches_up_then_changes_master_through_the_slaves_link() -> None:
    monitor = Monitor(REPLICA_CFG)
    conn = FakeConn()
    monitor._set_active_master(conn, "n3", "n2")
    assert conn.log == [
        "SHOW SLAVE STATUS",
        "SELECT MASTER_GTID_WAIT(%s, %s) ('1-1-40,2-2-7', 0.5)",
        "STOP SLAVE",
        "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
        "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1 ('10.0.0.2', 13406, 'repl', 'r')",
        "START SLAVE",
    ]
    assert monitor.changes[-1]["action"] == "set_active_master n2"


def test_the_slaves_agent_checks_its_connection_before_set_active_master(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monitor = Monitor(REPLICA_CFG)
    conn = FakeConn()
    monkeypatch.setattr(monitor_module.io, "mysql_connect", lambda *a, **k: conn)
    monitor.agents["n3"].put(SetMaster("n3", "n1", 7))
    monitor.agents["n3"].put(None)  # type: ignore[arg-type]  # not an action: ends the endless loop
    with pytest.raises(AttributeError):
        monitor.agent_loop("n3")
    assert conn.log[:2] == ["ping reconnect=True", "SHOW SLAVE STATUS"]
    (result,) = [o for o in monitor.inbox if isinstance(o, SetMasterResult)]
    assert (result.seq, result.master, result.ok) == (7, "n1", True)


def test_daemon_sends_set_active_master_to_the_slaves_agent_once_the_writer_is_routed() -> None:
    monitor = Monitor(REPLICA_CFG)
    monitor.haproxy = FakeHAProxy()  # type: ignore[assignment]
    now = time.monotonic()
    for name in ("n1", "n2", "n3"):
        checks_pass(monitor, name, 1, now)
    monitor.round()
    assert "set server writer/n3 state maint" not in monitor.haproxy.lines  # type: ignore[attr-defined]
    assert "set server repl/n1 state maint" in monitor.haproxy.lines  # type: ignore[attr-defined]
    for name in ("n1", "n2", "n3"):
        action = monitor.agents[name].get_nowait()
        monitor.observe(ReadOnlyResult(name, action.seq, True, True, "OK", time.monotonic()))
    monitor.round()
    assert monitor.command("set_online", "n1")[0]
    promotion = monitor.agents["n1"].get_nowait()
    monitor.observe(ReadOnlyResult("n1", promotion.seq, False, True, "OK", time.monotonic()))
    for _ in range(3):
        monitor.round()
    assert monitor.haproxy.lines[-1] == "set server repl/n1 state ready"  # type: ignore[attr-defined]
    monitor.round()
    follow = monitor.agents["n3"].get_nowait()
    assert isinstance(follow, SetMaster) and (follow.host, follow.master) == ("n3", "n1")
    monitor.observe(SetMasterResult("n3", follow.seq, "n1", True, "OK", time.monotonic()))
    monitor.round()
    assert monitor.show()["hosts"]["n3"]["following"] == "n1"
