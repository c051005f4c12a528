"""The async replication manager's decisions (``failover_state``), one example at a time: GTID positions,
startup, failure detection, the failover's order (fence, promote, route, repoint), the candidate's choice,
demotion and divergence of a returning source, and actions that never report back.

Each test feeds ``step`` hand-made observations and looks at the actions it returns; the simulated
world, with everything interleaved at random, is ``test_async_failover_machine.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.systems.replication.failover_state import (
    FENCING,
    PROMOTING,
    STEADY,
    Action,
    ActionResult,
    CheckResult,
    Command,
    Demote,
    Fence,
    ManagerState,
    Note,
    Observation,
    Promote,
    Repoint,
    Route,
    Settings,
    ahead,
    initial_state,
    parse_gtids,
    step,
)

S = Settings(check_period=1.0, failover_after=3.0, apply_timeout=5.0, action_timeout=10.0)
NAMES = ("n1", "n2", "n3")


def up(
    host: str,
    at: float,
    *,
    read_only: int = 1,
    binlog: str = "1-1-10",
    received: str | None = None,
    io: str = "Yes",
    sql: str = "Yes",
) -> CheckResult:
    """A check that succeeded; a replica by default (read-only, both threads running)."""
    if received is None:
        received = binlog if io else ""
    return CheckResult(host, True, at, "OK", read_only, binlog, received, io, sql)


def source_up(host: str, at: float, binlog: str = "1-1-10", read_only: int = 0) -> CheckResult:
    return up(host, at, read_only=read_only, binlog=binlog, received="", io="", sql="")


def down(host: str, at: float) -> CheckResult:
    return CheckResult(host, False, at, 'OperationalError: (2003, "Can\'t connect")')


def ok(action: Command, at: float) -> ActionResult:
    return ActionResult(action.seq, True, at, "OK")


def failed(action: Command, at: float, message: str = "ERROR") -> ActionResult:
    return ActionResult(action.seq, False, at, message)


def commands(actions: Sequence[Action]) -> list[Command]:
    return [a for a in actions if not isinstance(a, Note)]


def notes(actions: Sequence[Action], kind: str | None = None) -> list[Note]:
    return [a for a in actions if isinstance(a, Note) and (kind is None or a.kind == kind)]


def only(actions: Sequence[Action], kind: type[Command]) -> Command:
    found = [a for a in actions if isinstance(a, kind)]
    assert len(found) == 1, f"expected one {kind.__name__} in {actions}"
    return found[0]


def started(now: float = 0.0, settings: Settings = S) -> tuple[ManagerState, float]:
    """n1 promoted and routed, n2 and n3 replicating from it: the steady state after startup."""
    state = initial_state(settings, NAMES, "n1", now)
    now += 1.0
    state, actions = step(state, [source_up("n1", now, read_only=1), up("n2", now), up("n3", now)], now)
    promote = only(actions, Promote)
    now += 0.25
    state, actions = step(state, [ok(promote, now)], now)
    route = only(actions, Route)
    now += 0.25
    state, actions = step(state, [ok(route, now)], now)
    assert state.source == "n1" and state.routed == "n1" and not state.pending and not actions
    return state, now


def failing_source(
    received: dict[str, str], now: float = 0.0, settings: Settings = S
) -> tuple[ManagerState, list[Action], float]:
    """From the steady state, n1 stops answering while the replicas report ``received`` (host → Gtid_IO_Pos;
    a host left out does not answer either), until the failover starts: returns the step's actions."""
    state, now = started(now, settings)
    began = now
    actions: list[Action] = []
    while state.phase == STEADY:
        now += settings.check_period / 2
        checks: list[Observation] = [down("n1", now)]
        for name in ("n2", "n3"):
            checks.append(up(name, now, received=received[name]) if name in received else down(name, now))
        state, actions = step(state, checks, now)
        assert now - began <= settings.failover_after + settings.check_period
    return state, actions, now


# ---------------------------------------------------------------------------------------------- GTIDs


def test_parse_gtids_keeps_the_newest_sequence_number_per_domain() -> None:
    assert parse_gtids("1-1-100,2-2-7") == {1: 100, 2: 7}
    assert parse_gtids(" 0-1-5, 0-2-9 ,3-3-1") == {0: 9, 3: 1}  # two servers in one domain: the newest
    assert parse_gtids("0-2-9,0-1-5") == {0: 9}
    assert parse_gtids("1-1-100,\n2-2-7") == {1: 100, 2: 7}  # SHOW SLAVE STATUS wraps long lists


def test_parse_gtids_skips_what_is_not_a_gtid() -> None:
    assert parse_gtids("") == {}
    assert parse_gtids(None) == {}
    assert parse_gtids("1-1,x-1-2,1-1-y,1-1-2-3,-1-1-1, ,2-2-7") == {2: 7}


def test_ahead_lists_the_domains_with_transactions_the_other_lacks() -> None:
    assert ahead({1: 10, 2: 7}, {1: 10, 2: 5}) == {2: 7}
    assert ahead({1: 10, 3: 1}, {1: 12}) == {3: 1}  # a domain the other has never seen
    assert ahead({1: 10}, {1: 10, 2: 5}) == {}
    assert ahead({}, {1: 1}) == {}
    assert ahead({1: 11}, {}) == {1: 11}


# ---------------------------------------------------------------------------------------------- startup


def test_startup_promotes_the_source_then_routes_it() -> None:
    state = initial_state(S, NAMES, "n1", 0.0)
    assert state.fenced == set(NAMES) and state.upstream == {"n1": None, "n2": "n1", "n3": "n1"}
    state, actions = step(state, [source_up("n1", 1.0, read_only=1), up("n2", 1.0), up("n3", 1.0)], 1.0)
    assert actions == [Promote(1, "n1", "")]  # the replicas replicate from it already: nothing else
    state, actions = step(state, [source_up("n1", 2.0, read_only=1)], 2.0)
    assert actions == []  # the promotion is in flight: neither sent again nor routed yet
    state, actions = step(state, [ActionResult(1, True, 2.1, "read_only=0")], 2.1)
    assert actions == [Route(2, "n1")]
    assert state.routed == "n1" and "n1" not in state.fenced and state.writable == {"n1"}
    state, actions = step(state, [ok(actions[0], 2.2), source_up("n1", 2.2)], 2.2)
    assert actions == [] and state.phase == STEADY and state.source == "n1"


def test_a_failed_startup_promotion_is_not_routed_and_is_sent_again() -> None:
    state = initial_state(S, NAMES, "n1", 0.0)
    state, actions = step(state, [source_up("n1", 1.0, read_only=1)], 1.0)
    promote = only(actions, Promote)
    state, actions = step(state, [failed(promote, 1.1, "OperationalError"), source_up("n1", 1.1, read_only=1)], 1.1)  # fmt: skip
    assert notes(actions, "promotion-failed") and not any(isinstance(a, Route) for a in actions)
    assert only(actions, Promote).host == "n1" and state.routed is None


def test_nothing_is_routed_while_another_writer_server_is_not_fenced() -> None:
    state = initial_state(S, NAMES, "n1", 0.0)
    state.fenced.discard("n2")  # e.g. what a previous manager left: writer/n2 may be ready
    state, actions = step(state, [source_up("n1", 1.0, read_only=1), up("n2", 1.0), up("n3", 1.0)], 1.0)
    promote, fence = only(actions, Promote), only(actions, Fence)
    assert fence.host == "n2"
    state, actions = step(state, [ok(promote, 1.1)], 1.1)
    assert not any(isinstance(a, Route) for a in actions), "routed before writer/n2 was confirmed fenced"
    state, actions = step(state, [failed(fence, 1.2)], 1.2)
    assert only(actions, Fence).host == "n2" and not any(isinstance(a, Route) for a in actions)
    state, actions = step(state, [ok(only(actions, Fence), 1.3)], 1.3)
    assert actions == [Route(4, "n1")] and state.routed == "n1"


def test_startup_waits_for_the_source_to_answer() -> None:
    state = initial_state(S, NAMES, "n1", 0.0)
    state, actions = step(state, [], 1.0)
    assert actions == []  # nothing checked yet: no promotion, and no failover either
    state, actions = step(state, [down("n1", 1.0), up("n2", 1.0), up("n3", 1.0)], 1.0)
    assert actions == [] and state.phase == STEADY


# ---------------------------------------------------------------------------------------------- failure detection


def test_a_source_failing_for_less_than_failover_after_is_not_failed_over() -> None:
    state, now = started()
    began = now
    for _ in range(5):  # failing for 2.5 s < 3 s
        now += 0.5
        state, actions = step(state, [down("n1", now), up("n2", now), up("n3", now)], now)
        assert actions == [] and state.phase == STEADY and state.source == "n1"
    assert now - began == 2.5  # exact: binary fractions only
    now += 0.5  # one success clears it
    state, actions = step(state, [source_up("n1", now), up("n2", now), up("n3", now)], now)
    assert actions == [] and state.hosts["n1"].failing_since is None
    again = now + 0.5
    for _ in range(6):  # failing again from `again`: the earlier failures do not count
        now += 0.5
        state, actions = step(state, [down("n1", now)], now)
        assert actions == [], f"failed over {now - again:.1f}s after the checks started failing again"
    now += 0.5  # 3 s since the first failure of this spell
    state, actions = step(state, [down("n1", now)], now)
    assert notes(actions, "source-failed") and state.phase == FENCING


def test_a_failed_source_is_fenced_first_and_promoted_over_only_once_fenced() -> None:
    state, actions, now = failing_source({"n2": "1-1-10", "n3": "1-1-12"})
    assert [type(a) for a in actions] == [Note, Fence]  # no Demote: n1 does not answer
    assert actions[0] == Note("source-failed", "n1", actions[0].message) and "failing for 3.0s" in actions[0].message  # fmt: skip
    fence = only(actions, Fence)
    assert fence.host == "n1" and state.phase == FENCING and state.failed == "n1" and state.source is None
    for _ in range(3):  # no result yet: nothing else, whatever the replicas report
        now += 0.5
        state, actions = step(state, [down("n1", now), up("n2", now), up("n3", now, received="1-1-12")], now)
        assert actions == []
    now += 0.5
    state, actions = step(state, [failed(fence, now, "HAProxy: connection refused")], now)
    assert commands(actions) == [Fence(commands(actions)[0].seq, "n1")]  # sent again, still no promotion
    fence = only(actions, Fence)
    now += 0.5
    state, actions = step(state, [ok(fence, now)], now)
    assert state.phase == PROMOTING and "n1" in state.fenced and state.routed is None
    assert notes(actions, "candidate")[0].host == "n3"
    assert commands(actions) == [Promote(commands(actions)[0].seq, "n3", "1-1-12")]


def test_an_answering_failed_source_is_also_demoted_while_fenced() -> None:
    state, actions, now = failing_source({"n2": "1-1-10", "n3": "1-1-10"})
    fence = only(actions, Fence)
    now += 0.5
    # n1 answers again before its fence's result: the failover goes on (no way back mid-failover)
    state, actions = step(state, [source_up("n1", now), failed(fence, now)], now)
    assert {type(a) for a in commands(actions)} == {Fence, Demote}
    assert all(a.host == "n1" for a in commands(actions))


# ---------------------------------------------------------------------------------------------- the candidate


def promote_after_fence(received: dict[str, str], settings: Settings = S) -> tuple[ManagerState, list[Action], float]:  # fmt: skip
    state, actions, now = failing_source(received, settings=settings)
    now += 0.1
    return (*step(state, [ok(only(actions, Fence), now)], now), now)


def test_the_most_advanced_replica_is_promoted_with_its_received_position() -> None:
    state, actions, _ = promote_after_fence({"n2": "1-1-13", "n3": "1-1-12"})
    assert only(actions, Promote) == Promote(only(actions, Promote).seq, "n2", "1-1-13")
    state, actions, _ = promote_after_fence({"n2": "1-1-12", "n3": "1-1-13"})
    assert only(actions, Promote).host == "n3" and only(actions, Promote).wait_for == "1-1-13"
    assert state.candidate == "n3" and state.phase == PROMOTING


def test_the_received_position_counts_not_only_the_applied_one() -> None:
    state, now = started()
    for at in (now + 1.0, now + 2.0, now + 3.0, now + 4.0):  # n2 applied more, n3 received more
        state, actions = step(
            state,
            [down("n1", at), up("n2", at, binlog="1-1-12", received="1-1-12"),
             up("n3", at, binlog="1-1-10", received="1-1-14")],
            at,
        )  # fmt: skip
    state, actions = step(state, [ok(only(actions, Fence), at + 0.1)], at + 0.1)
    assert only(actions, Promote) == Promote(only(actions, Promote).seq, "n3", "1-1-14")


def test_equally_advanced_replicas_are_chosen_in_configuration_order() -> None:
    _, actions, _ = promote_after_fence({"n2": "1-1-12", "n3": "1-1-12"})
    assert only(actions, Promote).host == "n2"


def test_a_replica_that_does_not_answer_is_not_chosen() -> None:
    _, actions, _ = promote_after_fence({"n2": "1-1-10"})  # n3 (down) may well be further
    assert only(actions, Promote).host == "n2"
    state, actions, now = promote_after_fence({})  # no replica answers: nothing to promote
    assert not any(isinstance(a, Promote) for a in actions) and state.phase == PROMOTING
    now += 0.5
    state, actions = step(state, [down("n2", now), up("n3", now, received="1-1-9")], now)
    assert only(actions, Promote).host == "n3"  # the first one to answer


def test_a_failed_promotion_moves_on_to_the_next_candidate() -> None:
    state, actions, now = promote_after_fence({"n2": "1-1-11", "n3": "1-1-12"})
    first = only(actions, Promote)
    assert first.host == "n3"
    now += 0.5
    state, actions = step(state, [failed(first, now, "OperationalError: Lost connection")], now)
    assert notes(actions, "promotion-failed") == [Note("promotion-failed", "n3", "OperationalError: Lost connection")]  # fmt: skip
    second = only(actions, Promote)
    assert second == Promote(second.seq, "n2", "1-1-11") and state.candidate == "n2"
    now += 0.5
    state, actions = step(state, [failed(second, now)], now)
    assert not any(isinstance(a, Promote) for a in actions)  # both refused moments ago: a pause first
    assert state.candidate is None and state.phase == PROMOTING
    now += S.retry_s
    state, actions = step(state, [up("n2", now, received="1-1-11"), up("n3", now, received="1-1-12")], now)
    assert only(actions, Promote).host == "n3"  # after the pause: the most advanced again


def test_a_diverged_replica_is_not_a_candidate() -> None:
    state, actions, now = failing_source({"n2": "1-1-10", "n3": "1-1-12"})
    state.diverged["n3"] = {3: 4}  # reported earlier: holds writes of its own
    now += 0.1
    state, actions = step(state, [ok(only(actions, Fence), now)], now)
    assert only(actions, Promote).host == "n2"


# ---------------------------------------------------------------------------------------------- after the promotion


def promoted(received: dict[str, str] | None = None) -> tuple[ManagerState, list[Action], float]:
    """n1 failed, n3 (the most advanced) promoted successfully: the actions of that step."""
    state, actions, now = promote_after_fence(received or {"n2": "1-1-11", "n3": "1-1-12"})
    now += 0.5
    state, actions = step(state, [ok(only(actions, Promote), now)], now)
    return state, actions, now


def test_the_new_source_is_routed_and_the_other_replica_repointed() -> None:
    state, actions, now = promoted()
    assert notes(actions, "promoted") == [Note("promoted", "n3", "new source (failover 1)")]
    route, repoint = only(actions, Route), only(actions, Repoint)
    assert route.host == "n3" and repoint == Repoint(repoint.seq, "n2", "n3")
    assert not any(isinstance(a, Repoint) and a.host == "n1" for a in actions)  # n1 does not answer
    assert state.source == "n3" and state.phase == STEADY and state.failed is None and state.failovers == 1
    assert state.routed == "n3" and state.fenced == {"n1", "n2"} and "n3" in state.writable
    now += 0.1
    state, actions = step(state, [ok(route, now), ok(repoint, now)], now)
    assert actions == [] and state.upstream["n2"] == "n3"
    now += 0.5
    state, actions = step(
        state,
        [
            down("n1", now),
            up("n2", now, binlog="1-1-12", received="1-1-12,3-3-1"),
            source_up("n3", now, "1-1-12,3-3-1"),
        ],
        now,
    )
    assert actions == []  # replicating from the new source: nothing to do


def test_a_repoint_that_fails_is_sent_again() -> None:
    state, actions, now = promoted()
    repoint = only(actions, Repoint)
    now += 0.1
    state, actions = step(state, [failed(repoint, now), ok(only(actions, Route), now)], now)
    assert only(actions, Repoint) == Repoint(only(actions, Repoint).seq, "n2", "n3")


def test_a_returning_old_source_still_writable_is_demoted_then_repointed() -> None:
    state, actions, now = promoted()
    now += 0.1
    state, _ = step(state, [ok(a, now) for a in commands(actions)], now)
    now += 0.5  # n1 was only cut off: it still has read_only=0, and nothing the new source lacks
    state, actions = step(state, [source_up("n1", now, "1-1-12"), source_up("n3", now, "1-1-12,3-3-2")], now)
    demote = only(actions, Demote)
    assert commands(actions) == [demote] and demote.host == "n1"  # not repointed while writable
    now += 0.1
    state, actions = step(state, [ok(demote, now)], now)
    assert "n1" not in state.writable and state.hosts["n1"].read_only == 1
    assert commands(actions) == [Repoint(commands(actions)[0].seq, "n1", "n3")]


def test_a_returning_old_source_that_diverged_is_reported_and_not_repointed() -> None:
    state, actions, now = promoted()
    now += 0.1
    state, _ = step(state, [ok(a, now) for a in commands(actions)], now)
    for i in range(3):  # restarted (read_only=1) with two writes that never shipped: 1-1-13, 1-1-14
        now += 0.5
        state, actions = step(
            state,
            [up("n1", now, binlog="1-1-14", received="", io=""), source_up("n3", now, "1-1-12,3-3-2")],
            now,
        )
        if i == 0:
            assert notes(actions, "diverged") == [Note("diverged", "n1", "has transactions n3 does not (domain 1 to 14)")]  # fmt: skip
        else:
            assert notes(actions) == []  # reported once
        assert commands(actions) == [] and state.diverged == {"n1": {1: 14}}
    now += 0.5  # a new source write does not change what n1 holds beyond it
    state, actions = step(state, [up("n1", now, binlog="1-1-14", received="", io=""), source_up("n3", now, "1-1-12,3-3-5")], now)  # fmt: skip
    assert actions == []
    now += 0.5  # the operator rebuilds n1 from the new source: nothing beyond it any more
    state, actions = step(state, [up("n1", now, binlog="1-1-12,3-3-5", received="", io=""), source_up("n3", now, "1-1-12,3-3-5")], now)  # fmt: skip
    assert commands(actions) == [Repoint(commands(actions)[0].seq, "n1", "n3")] and notes(actions) == []
    assert state.diverged == {}


def test_a_replica_that_received_what_the_new_source_lacks_is_diverged_too() -> None:
    state, actions, now = promoted({"n2": "1-1-12"})  # n3 did not answer during the failover
    assert state.source == "n2" and not any(isinstance(a, Repoint) for a in actions)
    now += 0.5  # n3 is back, having applied one more from n1 (n1's replication link still worked)
    checks = [up("n3", now, binlog="1-1-13", received="1-1-13", io="Connecting"), source_up("n2", now, "1-1-12")]  # fmt: skip
    state, actions = step(state, [ok(only(actions, Route), now), *checks], now)
    assert notes(actions, "diverged") == [Note("diverged", "n3", "has transactions n2 does not (domain 1 to 13)")]  # fmt: skip
    assert commands(actions) == [] and state.diverged == {"n3": {1: 13}}
    now += 0.5  # and it is not a candidate once n2 fails in turn
    state.hosts["n2"].failing_since = now - S.failover_after
    state, actions = step(state, [down("n2", now), up("n1", now, binlog="1-1-12", received="", io="")], now)
    state, actions = step(state, [ok(only(actions, Fence), now)], now)
    assert only(actions, Promote).host == "n1"


def test_a_source_rebuilt_by_a_dump_holds_the_old_domain_through_its_slave_position() -> None:
    """A host rebuilt by the harness (dump, RESET MASTER) has the old source's domain only in gtid_slave_pos;
    the manager checks both joined, so a replica holding that domain is repointed, not called diverged."""
    state, actions, now = promoted({"n2": "1-1-12"})
    now += 0.5
    rebuilt = "2-2-4,1-1-12"  # gtid_binlog_pos 2-2-4 (written since), gtid_slave_pos 1-1-12 (from the dump)
    checks = [up("n3", now, binlog="1-1-12,2-2-4", received="1-1-12,2-2-4", io="Connecting"),
              source_up("n2", now, rebuilt)]  # fmt: skip
    state, actions = step(state, [ok(only(actions, Route), now), *checks], now)
    assert notes(actions, "diverged") == [] and state.diverged == {}
    assert only(actions, Repoint) == Repoint(only(actions, Repoint).seq, "n3", "n2")


# ---------------------------------------------------------------------------------------------- timeouts


def test_a_promotion_without_a_result_counts_as_failed_after_action_timeout() -> None:
    state, actions, now = promote_after_fence({"n2": "1-1-11", "n3": "1-1-12"})
    first = only(actions, Promote)
    sent = now
    for late in (1.0, 5.0, S.action_timeout - 0.25, S.action_timeout):
        state, actions = step(state, [], sent + late)
        assert actions == [] and first.seq in state.pending
    now = sent + S.action_timeout + 0.25
    state, actions = step(state, [], now)
    assert notes(actions, "promotion-failed") == [Note("promotion-failed", "n3", "no result in time")]
    assert only(actions, Promote).host == "n2" and first.seq not in state.pending
    now += 0.5  # the late result of the first one changes nothing
    state, actions = step(state, [ok(first, now)], now)
    assert actions == [] and state.source is None and state.candidate == "n2"


def test_a_fence_without_a_result_counts_as_failed_and_is_sent_again() -> None:
    state, actions, now = failing_source({"n2": "1-1-11", "n3": "1-1-12"})
    first = only(actions, Fence)
    now += S.action_timeout + 0.1
    state, actions = step(state, [], now)
    second = only(actions, Fence)
    assert second.host == "n1" and second.seq != first.seq and state.phase == FENCING
    state, actions = step(state, [ok(first, now)], now)  # too late: it no longer counts
    assert actions == [] and "n1" not in state.fenced and state.phase == FENCING
    state, actions = step(state, [ok(second, now)], now)
    assert only(actions, Promote).host == "n3"


def test_a_pending_action_keeps_its_host_busy() -> None:
    state, actions, now = promoted()
    repoint = only(actions, Repoint)
    for _ in range(3):  # no result: not sent again, nothing else for n2 either
        now += 0.5
        state, actions = step(state, [up("n2", now, read_only=0)], now)
        assert not any(a.host == "n2" for a in commands(actions))
    now += 0.5
    state, actions = step(state, [ok(repoint, now), up("n2", now, read_only=0)], now)
    assert commands(actions) == [Demote(commands(actions)[0].seq, "n2")]


def test_step_leaves_the_given_state_alone() -> None:
    state = initial_state(S, NAMES, "n1", 0.0)
    snapshot = repr(state)
    after, actions = step(state, [source_up("n1", 1.0, read_only=1)], 1.0)
    assert repr(state) == snapshot and after is not state
    assert actions and not state.pending and after.pending
