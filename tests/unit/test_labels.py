"""Owner tokens (``host:pid:start-time``): the reaper sweeps a run only when its owner is certainly gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.runtime import labels
from harness.runtime.labels import namespace, owner_alive, owner_token, process_start_time

CHILD_TIMEOUT_S = 30.0
HOST = socket.gethostname()


def start_field(pid: int) -> str:
    """Field 22 of /proc/PID/stat (starttime), split naively: only for a comm without spaces."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    assert " " not in comm, comm
    return stat.split()[21]


@pytest.fixture
def child() -> Iterator[subprocess.Popen[str]]:
    """A live child that waits on stdin; killed and reaped afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=CHILD_TIMEOUT_S)


def test_own_token_is_alive() -> None:
    token = owner_token()
    host, pid, start = token.rsplit(":", 2)
    assert (host, int(pid)) == (HOST, os.getpid())
    assert start == process_start_time(os.getpid()) == start_field(os.getpid())
    assert start.isdigit()
    assert owner_alive(token)


def test_start_time_is_the_kernels_and_copes_with_odd_process_names() -> None:
    """comm may contain spaces and parentheses; the start time is read after the last ``)``."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "start = Path('/proc/self/stat').read_text().rsplit(')', 1)[1].split()[19]\n"
        "Path('/proc/self/comm').write_text('a) b (c) d')\n"
        "print(start, Path('/proc/self/comm').read_text().strip(), flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        start, comm = proc.stdout.readline().split(" ", 1)  # blocks until the child renamed itself
        assert comm.strip() == "a) b (c) d"
        assert process_start_time(proc.pid) == start
        assert owner_alive(f"{HOST}:{proc.pid}:{start}")
    finally:
        proc.kill()
        proc.wait(timeout=CHILD_TIMEOUT_S)


def test_a_child_started_later_has_a_later_or_equal_start_time(child: subprocess.Popen[str]) -> None:
    mine, theirs = process_start_time(os.getpid()), process_start_time(child.pid)
    assert mine is not None and theirs is not None
    assert int(theirs) >= int(mine)


def test_a_live_child_is_alive_and_a_reaped_one_is_not() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        token = owner_token(proc.pid)
        assert not token.endswith(":?"), "a live pid has a start time"
        assert owner_alive(token)
    finally:
        proc.kill()
        proc.wait(timeout=CHILD_TIMEOUT_S)  # reaped: /proc/PID is gone
    assert process_start_time(proc.pid) is None
    assert not owner_alive(token)
    assert owner_token(proc.pid) == f"{HOST}:{proc.pid}:?"
    assert not owner_alive(owner_token(proc.pid)), "a token written for a dead pid never comes alive"


def test_a_reused_pid_is_not_the_owner() -> None:
    """Our pid, but another start time: the process that wrote the token died and the pid was reused."""
    start = process_start_time(os.getpid())
    assert start is not None
    for other in (str(int(start) + 1), str(int(start) - 1), "0", "?"):
        assert not owner_alive(f"{HOST}:{os.getpid()}:{other}"), other
    assert owner_alive(f"{HOST}:{os.getpid()}:{start}")


@pytest.mark.parametrize(
    "token",
    [
        "elsewhere:1:1",
        "elsewhere:999999999:?",  # even a pid that cannot exist here
        "ci-runner-7.example.org:4242:123456",
        "[::1]:17:42",  # host part with colons: split from the right
    ],
)
def test_another_hosts_token_is_alive(token: str) -> None:
    """Never ours to sweep: we cannot see that host's processes."""
    assert not token.startswith(f"{HOST}:")
    assert owner_alive(token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        f"{HOST}",
        f"{HOST}:{os.getpid()}",  # no start time
        f"{HOST}:notapid:1",
        f"{HOST}::1",
        "::",
        f"{HOST}:-1:1",
        f"{HOST}:999999999:1",  # beyond pid_max: no such process
        f"{HOST}:{os.getpid()}:",  # empty start time
        f"{HOST}:1.5:1",
    ],
)
def test_garbage_tokens_are_not_alive(token: str) -> None:
    assert not owner_alive(token)


def test_a_host_that_only_ends_like_ours_is_another_host() -> None:
    assert owner_alive(f"x{HOST}:999999999:1")


def test_owner_alive_follows_the_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token's host is compared with this host's name: the same token is ours to judge (and dead)
    here, and another host's (alive) under a different hostname."""
    token = f"{HOST}:999999999:1"
    assert not owner_alive(token)
    monkeypatch.setattr(labels.socket, "gethostname", lambda: f"not-{HOST}")
    assert owner_alive(token)


@pytest.mark.parametrize(("value", "expected"), [("alice", "alice"), ("ci-1234", "ci-1234"), ("", "default")])
def test_namespace_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("HARNESS_NAMESPACE", value)
    assert namespace() == expected


def test_namespace_defaults_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_NAMESPACE", raising=False)
    assert namespace() == "default"
    monkeypatch.setenv("HARNESS_NAMESPACE", "bob")
    assert namespace() == "bob", "read on every call, not cached at import"
