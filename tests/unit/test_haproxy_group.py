"""A balancer pair's HAProxies kept routing alike by the daemons (``daemon_io.HAProxyGroup``): commands to
every member in step, a member that fails or restarts taken out of step and replayed before it is used."""

from __future__ import annotations

import pytest

from harness.systems import daemon_io as io

# ``show servers state`` as HAProxy 2.6 answers it here: writer/n1 set ready (its config's "disabled" flag,
# 0x04, stays in the admin state), writer/n2 forced into maintenance (0x01).
ANSWER = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight
3 writer 1 n1 10.213.1.2 2 4 1 1 3 1 0 0 8 0 0 0 - 11306 - 0 0 - - 0
3 writer 2 n2 10.213.1.2 0 5 1 1 4 1 0 0 8 0 0 0 - 12306 - 0 0 - - 0
5 reader 1 n1 10.213.1.2 2 4 1 1 3 1 0 0 8 0 0 0 - 11306 - 0 0 - - 0
"""


class Member:
    """A HAProxy API that records commands and keeps server states, or fails when ``down``."""

    def __init__(self, host: str, states: dict[tuple[str, str], bool] | None = None) -> None:
        self.address = (host, 9999)
        self.down = False
        self.lines: list[str] = []
        self.states: dict[tuple[str, str], bool] = dict(states or {})

    def command(self, line: str) -> str:
        if self.down:
            raise TimeoutError("timed out")
        self.lines.append(line)
        match = io.SET_STATE.match(line)
        if match:
            self.states[(match[1], match[2])] = match[3] == "ready"
        return ""

    def query(self, line: str) -> str:
        if self.down:
            raise TimeoutError("timed out")
        rows = [
            f"3 {b} 1 {s} 10.0.0.2 {2 if r else 0} {4 if r else 5} 1 1" for (b, s), r in self.states.items()
        ]
        return "1\n# header\n" + "\n".join(rows)


def group(*members: Member) -> io.HAProxyGroup:
    return io.HAProxyGroup(list(members), resync=False)  # type: ignore[arg-type]


def test_server_states_are_read_from_the_op_state_and_the_forced_maintenance_flag() -> None:
    assert io.server_states(ANSWER) == {
        ("writer", "n1"): True,
        ("writer", "n2"): False,
        ("reader", "n1"): True,
    }


def test_every_command_goes_to_every_member() -> None:
    a, b = Member("a"), Member("b")
    g = group(a, b)
    g.set_state("writer", "n1", True)
    g.set_state("writer", "n2", False)
    assert a.lines == b.lines == ["set server writer/n1 state ready", "set server writer/n2 state maint",
                                  "shutdown sessions server writer/n2"]  # fmt: skip


def test_a_member_that_fails_is_skipped_until_replayed_and_the_command_still_succeeds() -> None:
    a, b = Member("a"), Member("b")
    g = group(a, b)
    b.down = True
    g.set_state("writer", "n1", True)  # b times out once, then is out of step
    g.set_state("writer", "n2", True)
    assert b.lines == [] and g.behind == {1}
    b.down = False
    g._check(1, b)  # type: ignore[arg-type]
    assert g.behind == set()
    assert b.states == {("writer", "n1"): True, ("writer", "n2"): True}


def test_a_command_no_member_takes_fails() -> None:
    a = Member("a")
    a.down = True
    g = group(a)
    with pytest.raises(TimeoutError):
        g.set_state("writer", "n1", True)
    with pytest.raises(RuntimeError, match="no balancer in step"):
        g.set_state("writer", "n1", True)


def test_a_member_back_with_its_rendered_config_is_brought_in_step() -> None:
    a, b = Member("a"), Member("b")
    g = group(a, b)
    g.set_state("writer", "n2", True)
    g.set_state("writer", "n1", False)
    b.states = {("writer", "n1"): False, ("writer", "n2"): False}  # restarted: every server disabled
    g._check(0, a)  # type: ignore[arg-type]
    assert g.behind == set() and len(a.lines) == 3  # in step: nothing replayed
    g._check(1, b)  # type: ignore[arg-type]
    assert b.states[("writer", "n2")] is True and b.states[("writer", "n1")] is False
    assert g.behind == set()


def test_a_change_during_the_replay_leaves_the_member_out_of_step_for_the_next_round() -> None:
    a, b = Member("a"), Member("b")
    g = group(a, b)
    g.set_state("writer", "n1", True)
    b.states = {}
    original = b.command

    def command_and_move(line: str) -> str:  # the daemon moves the writer while b is being replayed
        answer = original(line)
        if g.version == 1:
            g.set_state("writer", "n1", False)
        return answer

    b.command = command_and_move  # type: ignore[method-assign]
    g._check(1, b)  # type: ignore[arg-type]
    assert g.behind == {1}
    g._check(1, b)  # type: ignore[arg-type]
    assert g.behind == set() and b.states[("writer", "n1")] is False
