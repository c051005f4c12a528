"""The MMM monitor's decisions (pure: host states, roles) and the mmm topology's input errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cli
from harness.systems.mmm.monitor_state import (
    ADMIN_OFFLINE,
    AWAITING_RECOVERY,
    HARD_OFFLINE,
    ONLINE,
    READER,
    REPLICATION_DELAY,
    REPLICATION_FAIL,
    WRITER,
    Host,
    Roles,
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nodes: 3\n", "{f}:3: nodes: mmm runs exactly 2 masters (n1, n2); read-only slaves are not supported, got 3"),
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
