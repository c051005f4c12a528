"""The async replication manager's state machine (``failover_state.step``) against a simulated world: three
MariaDB hosts (n1 the first source, n2 and n3 replicating from it), their GTID positions, HAProxy's writer
servers, client writes, crashes, partitions, restarts, an operator's rebuilds, and the daemon executing
what the manager decides.

``World`` is the ground truth. Each host has its real ``read_only``, whether it runs, whether the network
reaches it (``net``: replication to and from it) and whether its client proxy does (``client``: the
manager's checks and SQL actions, HAProxy's traffic), its binlog (what it applied; ``log_slave_updates``),
its relay log (received, not applied yet) and its replication source. A source's client writes advance its
own GTID domain (``gtid_domain_id`` K on nK, as the cluster configures it); a replica receives, in its
source's binlog order, what it lacks (a prefix of it: it lags by a random amount), and its IO thread stops
(error 1236) when it holds what its source does not. The world plays the daemon too, as ``manager.py``
does: HAProxy commands (``Fence``, ``Route``) run at once and always succeed, their results arriving in the
next round; SQL actions (``Promote``, ``Demote``, ``Repoint``) queue on the host's worker, run in order,
possibly some rounds later (past ``action_timeout``: the manager has given up on them, but they still take
effect), and fail when the host's client proxy does not reach it, or at random, before any effect or
halfway (a promotion after ``RESET SLAVE ALL`` but before ``read_only=0``).

The safety rules are checked on every action as it is emitted (no promotion while another host's writer
server is ready; a failover promotes the most advanced eligible replica) and on the state after every rule
(``World.invariants``). ``FailoverMachine`` lets hypothesis interleave everything; its ``settle`` rule, and
the plain tests, check that the manager also gets somewhere: a killed source is replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

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
    initial_state,
    step,
)

S = Settings(check_period=0.25, failover_after=1.0, apply_timeout=0.5, action_timeout=2.0)
NAMES = ("n1", "n2", "n3")
DOMAIN = {"n1": 1, "n2": 2, "n3": 3}
DT = 0.25  # a round every check_period
OK, FAILS, FAILS_HALFWAY, LOST_REPLY = (
    0,
    1,
    2,
    3,
)  # how an SQL action ends (LOST_REPLY: done, reported failed)

Event = tuple[int, int]  # a transaction's GTID: (domain, sequence number); the server id is the domain's


def position(events: Iterable[Event]) -> dict[int, int]:
    out: dict[int, int] = {}
    for domain, seq in events:
        out[domain] = max(seq, out.get(domain, 0))
    return out


def gtid_text(pos: dict[int, int]) -> str:
    return ",".join(f"{d}-{d}-{q}" for d, q in sorted(pos.items()))


def parse(text: str) -> dict[int, int]:
    """The test's own reading of a GTID list (not ``parse_gtids``)."""
    out: dict[int, int] = {}
    for part in filter(None, text.split(",")):
        domain, _server, seq = (int(f) for f in part.split("-"))
        out[domain] = max(seq, out.get(domain, 0))
    return out


def beyond(a: dict[int, int], b: dict[int, int]) -> bool:
    """``a`` holds a transaction ``b`` does not."""
    return any(q > b.get(d, 0) for d, q in a.items())


@dataclass
class Server:
    """One MariaDB host as it really is."""

    up: bool = True
    net: bool = True  # other hosts reach it, it reaches them (replication)
    client: bool = True  # its client proxy: the manager and HAProxy reach it
    read_only: int = 1
    log: list[Event] = field(default_factory=list)  # applied, in its binlog
    relay: list[Event] = field(default_factory=list)  # received, not applied yet
    upstream: str | None = None  # CHANGE MASTER's target (None: no replication configured)
    running: bool = False  # the replication threads

    @property
    def answers(self) -> bool:
        return self.up and self.net and self.client

    @property
    def received(self) -> dict[int, int]:
        return position([*self.log, *self.relay])


@dataclass
class Work:
    """An SQL action on its host's worker."""

    action: Command
    due: int  # the round it runs in (after those queued before it)
    outcome: int = OK


@dataclass
class World:
    now: float = 100.0
    servers: dict[str, Server] = field(default_factory=lambda: {n: Server() for n in NAMES})
    writer: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(NAMES, False))  # HAProxy: ready
    state: ManagerState = field(init=False)
    rounds: int = 0
    inbox: list[Observation] = field(default_factory=list)
    workers: dict[str, list[Work]] = field(default_factory=lambda: {n: [] for n in NAMES})
    seen: dict[str, CheckResult] = field(default_factory=dict)  # the last check fed, per host
    actions: list[Action] = field(default_factory=list)
    failover_promotions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = initial_state(S, NAMES, "n1", self.now)

    @classmethod
    def bootstrap(cls, read_only: int = 1, lag: Sequence[int] = (0, 0), history: int = 5) -> World:
        """n1 with ``history`` writes, read_only as its config left it; n2 and n3 replicating from it,
        each ``lag`` transactions behind in what it received, twice that in what it applied."""
        world = cls()
        n1 = world.servers["n1"]
        n1.read_only, n1.log = read_only, [(1, q) for q in range(1, history + 1)]
        for name, behind in zip(("n2", "n3"), lag, strict=True):
            replica = world.servers[name]
            replica.upstream, replica.running = "n1", True
            received, applied = n1.log[: history - behind], max(0, history - 2 * behind)
            replica.log, replica.relay = received[:applied], received[applied:]
        return world

    # -- the hosts
    def io_running(self, name: str) -> str:
        r = self.servers[name]
        if r.upstream is None:
            return ""
        if not r.running:
            return "No"
        u = self.servers[r.upstream]
        if not (r.up and u.up and r.net and u.net):
            return "Connecting"
        if beyond(r.received, position(u.log)):  # error 1236: the IO thread stops
            r.running = False
            return "No"
        return "Yes"

    def check(self, name: str) -> CheckResult:
        r = self.servers[name]
        if not r.answers:
            return CheckResult(name, False, self.now, 'OperationalError: (2003, "Can\'t connect")')
        io = self.io_running(name)
        sql = "" if r.upstream is None else ("Yes" if r.running else "No")
        received = gtid_text(r.received) if r.upstream is not None else ""
        return CheckResult(name, True, self.now, "OK", r.read_only, gtid_text(position(r.log)), received, io, sql)  # fmt: skip

    def replicate(self, name: str, received: int | None = None, applied: int | None = None) -> None:
        """``name`` receives up to ``received`` transactions from its source and applies up to ``applied``
        (None: all there is)."""
        r = self.servers[name]
        if self.io_running(name) == "Yes":
            have = r.received
            upstream = self.servers[r.upstream or ""]
            missing = [e for e in upstream.log if e[1] > have.get(e[0], 0)]
            r.relay.extend(missing if received is None else missing[:received])
        if r.up and r.running:
            k = len(r.relay) if applied is None else min(applied, len(r.relay))
            r.log.extend(r.relay[:k])
            del r.relay[:k]

    def replicate_all(self) -> None:
        for name in NAMES:
            self.replicate(name)

    def client_write(self, count: int = 1) -> int:
        """Clients write through HAProxy's writer frontend: to each ready server whose host takes writes."""
        done = 0
        for name in NAMES:
            r = self.servers[name]
            if self.writer[name] and r.answers and r.read_only == 0:
                domain = DOMAIN[name]
                for _ in range(count):
                    r.log.append((domain, position(r.log).get(domain, 0) + 1))
                    done += 1
        return done

    def kill(self, name: str) -> None:
        self.servers[name].up = False

    def restart(self, name: str) -> None:
        """Started again (after a crash, or a restart): read_only=1 from its config, its data kept, its
        replication threads started (no skip-slave-start)."""
        r = self.servers[name]
        r.up, r.read_only, r.running = True, 1, r.upstream is not None

    def rebuild(self, name: str) -> bool:
        """The operator's rebuild from the manager's source (a dump with its GTID position, the binlog
        reset): what the host held beyond it is gone; it does not replicate until repointed."""
        source = self.state.source
        if source is None or source == name or not (self.servers[source].up and self.servers[name].up):
            return False
        r = self.servers[name]
        r.log, r.relay = list(self.servers[source].log), []
        r.upstream, r.running, r.read_only = None, False, 1
        return True

    # -- the daemon
    def round(self, dt: float = DT, outcomes: Sequence[int] = (), delays: Sequence[int] = ()) -> list[Action]:
        """One round of ``manager.py``: due SQL actions run, every host is checked, ``step``, then the
        actions: HAProxy's at once, SQL ones on the host's worker ``delays`` rounds later (in order)."""
        self.now += dt
        self.rounds += 1
        self.work()
        for name in NAMES:
            self.seen[name] = self.check(name)
            self.inbox.append(self.seen[name])
        before, observations, self.inbox = self.state, self.inbox, []
        self.state, actions = step(before, observations, self.now)
        self.actions.extend(actions)
        self.emitted(actions)
        outcome, delay = iter(outcomes), iter(delays)
        for action in actions:
            if isinstance(action, Fence | Route):
                self.writer[action.host] = isinstance(action, Route)
                self.inbox.append(ActionResult(action.seq, True, self.now, "ready" if self.writer[action.host] else "maint"))  # fmt: skip
            elif not isinstance(action, Note):
                queue = self.workers[action.host]
                due = max([self.rounds + next(delay, 0)] + [w.due for w in queue])
                queue.append(Work(action, due, next(outcome, OK)))
        self.work()  # what is due now runs at once; its result comes in the next round
        return actions

    def run(self, seconds: float, **kw: Sequence[int]) -> None:
        for _ in range(round(seconds / DT)):
            self.round(**kw)
            self.invariants()
            self.replicate_all()

    def work(self) -> None:
        for queue in self.workers.values():
            while queue and queue[0].due <= self.rounds:
                w = queue.pop(0)
                ok, message = self.execute(w)
                self.inbox.append(ActionResult(w.action.seq, ok, self.now, message))

    def execute(self, w: Work) -> tuple[bool, str]:
        action, r = w.action, self.servers[w.action.host]
        if not r.answers:
            return False, 'OperationalError: (2003, "Can\'t connect")'
        if w.outcome == FAILS:
            return False, "OperationalError: (2013, 'Lost connection')"
        if isinstance(action, Promote):  # MASTER_GTID_WAIT, STOP SLAVE, RESET SLAVE ALL, read_only=0
            r.log.extend(r.relay)
            r.relay, r.upstream, r.running = [], None, False
            if w.outcome == FAILS_HALFWAY:
                return False, "OperationalError: (2013, 'Lost connection') after RESET SLAVE ALL"
            r.read_only = 0
            return w.outcome != LOST_REPLY, "relay log applied, read_only=0"
        if isinstance(action, Demote):
            r.read_only = 1
            if w.outcome == FAILS_HALFWAY:
                return False, "OperationalError: killing connections"
            return w.outcome != LOST_REPLY, "read_only=1"
        assert isinstance(action, Repoint)
        r.running = False  # STOP SLAVE
        if w.outcome == FAILS_HALFWAY:
            return False, "OperationalError: CHANGE MASTER failed"
        r.upstream, r.relay, r.running = action.source, [], True  # CHANGE MASTER purges the relay log
        return w.outcome != LOST_REPLY, f"replicating from {action.source}"

    # -- the safety rules, on every action as it is emitted (before the batch runs)
    def emitted(self, actions: Sequence[Action]) -> None:
        s = self.state
        for action in actions:
            if isinstance(action, Promote):
                ready = [n for n in NAMES if n != action.host and self.writer[n]]
                assert not ready, f"{action} while writer/{ready} is ready"
                if s.phase == PROMOTING and s.candidate == action.host:
                    self.failover_promotions.append(action.host)
                    self.check_most_advanced(action.host)
            elif isinstance(action, Route):
                assert action.host == s.source, f"{action}, the source is {s.source}"

    def advance(self, name: str) -> dict[int, int]:
        """How far ``name`` had got by the manager's last check: received or applied, per domain."""
        seen = self.seen[name]
        out = parse(seen.binlog_pos)
        for domain, seq in parse(seen.received).items():
            out[domain] = max(seq, out.get(domain, 0))
        return out

    def check_most_advanced(self, host: str) -> None:
        s = self.state
        eligible = [
            n
            for n in NAMES
            if n != s.failed
            and self.seen[n].ok
            and n not in s.diverged
            and self.now - s.refused.get(n, float("-inf")) >= S.retry_s
        ]
        assert host in eligible, f"promoting {host}, eligible are {eligible}"
        mine = self.advance(host)
        for other in eligible:
            theirs = self.advance(other)
            assert not (beyond(theirs, mine) and not beyond(mine, theirs)), (
                f"promoting {host} ({mine}) over {other} ({theirs}), which is further in every domain"
            )
            if theirs == mine:
                assert NAMES.index(host) <= NAMES.index(other), f"{host} over {other}, equally advanced"

    # -- the state, after every rule
    def invariants(self) -> None:
        s = self.state
        ready = [n for n in NAMES if self.writer[n]]
        assert len(ready) <= 1, f"writer servers ready: {ready}"
        for name in ready:
            assert name == s.source, f"writer/{name} is ready, the source is {s.source} ({s.phase})"
            assert name not in s.fenced, f"writer/{name} is ready, the manager has it fenced"
        assert len([n for n in s.writable if self.writer[n]]) <= 1
        assert len([n for n in s.writable if n not in s.fenced]) <= 1, (
            f"writable {sorted(s.writable)}, not fenced: {sorted(set(NAMES) - s.fenced)}"
        )
        assert s.routed is None or s.routed == s.source or s.phase == FENCING

    def settled(self) -> None:
        """After a long calm: one source, writable and routed; every other host read-only, and replicating
        from it unless diverged. Or no source, when every eligible host is diverged."""
        s = self.state
        if s.phase != STEADY:
            assert s.phase == PROMOTING and all(n in s.diverged for n in NAMES if n != s.failed), (
                f"no source after the calm: {s.phase}, failed {s.failed}, diverged {sorted(s.diverged)}"
            )
            event("settle: only diverged hosts left")
            return
        source = s.source
        assert source is not None
        assert self.writer == {n: n == source for n in NAMES}, f"{self.writer}, the source is {source}"
        assert s.routed == source and self.servers[source].read_only == 0
        for name in NAMES:
            if name == source:
                continue
            r = self.servers[name]
            assert r.read_only == 1, f"{name} is writable besides the source {source}"
            if name in s.diverged:
                assert beyond(position(r.log), position(self.servers[source].log))
                event("settle: a diverged host")
            else:
                assert (r.upstream, self.io_running(name)) == (source, "Yes"), (
                    f"{name} replicates from {r.upstream} ({self.io_running(name)}), the source is {source}"
                )
        event(f"settle: source {source}")


# ---------------------------------------------------------------------------------------------- plain tests


def started(**kw: int) -> World:
    world = World.bootstrap(**kw)
    world.run(1.0)
    assert world.state.source == "n1" and world.state.routed == "n1"
    assert world.writer == {"n1": True, "n2": False, "n3": False} and world.servers["n1"].read_only == 0
    return world


@pytest.mark.parametrize("delay", [0, 1, 3])
@pytest.mark.parametrize(("ahead", "behind"), [("n2", "n3"), ("n3", "n2")])
def test_a_killed_source_is_replaced_by_the_most_advanced_replica(
    ahead: str, behind: str, delay: int
) -> None:
    world = started()
    assert world.client_write(6) == 6
    world.replicate(ahead, received=5, applied=3)  # received more than it applied
    world.replicate(behind, received=3)
    world.kill("n1")  # with 1-1-11 never shipped
    killed, routed_at = world.now, None
    for _ in range(round((S.failover_after + 3.0) / DT)):
        world.round(delays=[delay] * 5)
        world.invariants()
        world.replicate_all()
        if routed_at is None and world.writer[ahead]:
            routed_at = world.now
    assert routed_at is not None and routed_at - killed <= S.failover_after + 1.0 + 4 * delay * DT
    s = world.state
    assert world.failover_promotions == [ahead]
    assert s.source == ahead and s.routed == ahead and s.phase == STEADY and s.failovers == 1
    assert world.writer == {n: n == ahead for n in NAMES}
    assert world.servers[ahead].read_only == 0 and world.servers[ahead].log[-1] == (1, 10)
    assert world.servers[behind].upstream == ahead and s.upstream[behind] == ahead
    assert world.io_running(behind) == "Yes" and world.servers[behind].read_only == 1
    assert world.client_write(2) == 2  # clients write to the new source, and the other replica follows
    world.replicate(behind)
    assert position(world.servers[behind].log) == {1: 10, DOMAIN[ahead]: 2}


def test_a_restarted_old_source_with_unshipped_writes_is_diverged_until_rebuilt() -> None:
    world = started()
    world.client_write(3)
    world.replicate("n2", received=2)
    world.replicate("n3", received=1)
    world.kill("n1")
    world.run(S.failover_after + 2.0)
    assert world.state.source == "n2"
    world.client_write(2)
    world.restart("n1")
    world.run(1.0)
    s = world.state
    assert s.diverged == {"n1": {1: 8}} and [a.host for a in world.actions if isinstance(a, Note) and a.kind == "diverged"] == ["n1"]  # fmt: skip
    assert world.servers["n1"].upstream is None and world.servers["n1"].read_only == 1  # left alone
    assert world.rebuild("n1")
    world.run(1.0)
    assert world.state.diverged == {} and world.servers["n1"].upstream == "n2"
    assert world.io_running("n1") == "Yes" and position(world.servers["n1"].log) == {1: 7, 2: 2}


def test_an_old_source_cut_off_from_clients_is_demoted_and_repointed() -> None:
    world = started()
    world.replicate_all()
    world.servers["n1"].client = False  # the manager and HAProxy lose it; replication still works
    world.run(S.failover_after + 1.0)
    assert world.state.source == "n2" and world.servers["n1"].read_only == 0  # still, out of reach
    assert not world.writer["n1"]
    world.servers["n1"].client = True
    world.run(1.0)
    assert world.servers["n1"].read_only == 1 and world.servers["n1"].upstream == "n2"
    assert world.state.upstream["n1"] == "n2" and world.io_running("n1") == "Yes"


def test_a_replica_that_got_more_from_the_old_source_after_it_was_repointed_is_diverged() -> None:
    """n1 loses its clients but keeps shipping: n3 applies a transaction n2 (promoted) never got, after the
    check its repoint was decided on and before the repoint ran; its IO thread then stops (error 1236).
    A replica whose threads are stopped does not replicate, whatever its configured source."""
    world = started()
    world.client_write(2)
    world.replicate("n2", received=1)  # n2 at 1-1-6, n3 at 1-1-5: n2 is promoted
    world.servers["n1"].client = False
    while world.state.source != "n2":
        world.round(delays=[2] * 5)  # the workers are slow: SQL actions run two rounds late
        world.invariants()
    assert any(isinstance(a, Repoint) and a.host == "n3" for a in world.actions)
    assert world.servers["n3"].upstream == "n1"  # its repoint is decided, not done
    world.replicate("n3")  # n3 still receives from n1 meanwhile: 1-1-6 and 1-1-7
    world.run(2.0)
    s = world.state
    assert position(world.servers["n3"].log) == {1: 7} and world.io_running("n3") == "No"
    assert s.upstream["n3"] == "n2" and s.diverged.get("n3") == {1: 7}, "n3 diverged silently"


def test_a_source_already_writable_at_startup_is_routed() -> None:
    """The source's config (or a promotion whose result was lost) left it writable: the manager still
    makes it its own and routes it."""
    world = World.bootstrap(read_only=0)
    world.run(1.0)
    assert world.state.routed == "n1" and world.writer["n1"]


def test_a_startup_promotion_whose_reply_is_lost_is_still_routed() -> None:
    world = World.bootstrap()
    world.round(outcomes=[LOST_REPLY])  # n1 is writable, but the manager hears that its promotion failed
    world.run(1.0)
    assert world.servers["n1"].read_only == 0
    assert world.state.routed == "n1" and world.writer["n1"]


# ---------------------------------------------------------------------------------------------- hypothesis

names = st.sampled_from(NAMES)


class FailoverMachine(RuleBasedStateMachine):
    """Random client writes, replication progress, crashes, partitions, restarts, rebuilds, manager rounds
    with SQL actions failing or running late, and time."""

    @initialize(
        read_only=st.sampled_from([1, 1, 0]),
        lag=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    )
    def start(self, read_only: int, lag: tuple[int, int]) -> None:
        self.world = World.bootstrap(read_only, lag)

    @rule(dt=st.floats(min_value=0.0, max_value=3.0))
    def advance(self, dt: float) -> None:
        self.world.now += dt

    @rule(count=st.integers(1, 3))
    def client_writes(self, count: int) -> None:
        self.world.client_write(count)

    @rule(name=names, received=st.none() | st.integers(0, 3), applied=st.none() | st.integers(0, 3))
    def replicate(self, name: str, received: int | None, applied: int | None) -> None:
        self.world.replicate(name, received, applied)

    @rule(name=names)
    def kill(self, name: str) -> None:
        self.world.kill(name)

    @rule(name=names)
    def isolate(self, name: str) -> None:
        self.world.servers[name].net = False

    @rule(name=names)
    def cut_client(self, name: str) -> None:
        self.world.servers[name].client = False

    @rule(name=names)
    def heal(self, name: str) -> None:
        self.world.servers[name].net = self.world.servers[name].client = True

    @rule(name=names)
    def restart(self, name: str) -> None:
        self.world.restart(name)

    @rule(name=names)
    def rebuild(self, name: str) -> None:
        if name in self.world.state.diverged or name != self.world.state.source:
            self.world.rebuild(name)

    @rule(
        dt=st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]),
        outcomes=st.lists(st.sampled_from([OK, OK, OK, FAILS, FAILS_HALFWAY, LOST_REPLY]), max_size=4),
        delays=st.lists(st.sampled_from([0, 0, 1, 3, 12]), max_size=4),
    )
    def manager_round(self, dt: float, outcomes: list[int], delays: list[int]) -> None:
        self.world.round(dt, outcomes, delays)

    @rule()
    def settle(self) -> None:
        """Everything back and calm, every action succeeding at once: the manager gets to a routed source."""
        world = self.world
        for name, r in world.servers.items():
            r.net = r.client = True
            if not r.up:
                world.restart(name)
        world.run(S.action_timeout + S.failover_after + 4.0)  # late actions land or time out, then calm
        world.settled()

    @invariant()
    def safe(self) -> None:
        self.world.invariants()


FailoverMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_failover_state_machine = FailoverMachine.TestCase
