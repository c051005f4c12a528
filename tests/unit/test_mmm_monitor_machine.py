"""The MMM monitor's state machine (``monitor_state.step``) against a simulated world: two masters whose
checks pass or fail, the read_only actions' results, HAProxy's server states, time, monitor restarts.

``World`` plays the daemon and the hosts: it turns each master's condition into check observations, runs
the state machine's HAProxy commands at once (as the daemon does, a failure skipping the rest of the batch)
and holds its read_only actions until a test resolves them. After every round it checks the safety rule
on the actions themselves; ``World.invariants`` checks the state. The plain tests walk through failover,
a failing promotion, a master–master partition and a monitor restart; ``MonitorMachine`` lets hypothesis
interleave everything at random.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from harness.systems.mmm.monitor_state import (
    ADMIN_OFFLINE,
    AWAITING_RECOVERY,
    HARD_OFFLINE,
    ONLINE,
    READ_ONLY,
    READER,
    REPL,
    REPLICATION_FAIL,
    WRITER,
    Action,
    CheckResult,
    HaproxyResult,
    HaproxyStatus,
    HostFacts,
    MonitorState,
    MoveRole,
    Observation,
    ReadOnlyResult,
    SetHaproxy,
    SetMaster,
    SetMasterResult,
    SetReadOnly,
    Settings,
    command,
    initial_state,
    step,
)

S = Settings(check_period=0.5, trap_period=1.5, timeout=1.0, max_backlog=5.0, auto_set_online=3.0,
             rep_grace=2.0, flap_count=3, flap_duration=60.0)  # fmt: skip
NAMES = ("n1", "n2")
HOSTS = [("n1", "10.0.0.11", "n2"), ("n2", "10.0.0.12", "n1")]
BACKENDS = (WRITER, READER)
# MMM with read-only slaves: n1, n2 masters, n3, n4 slaves of the active master
REPLICA_NAMES = ("n1", "n2", "n3", "n4")
REPLICA_SLAVES = ("n3", "n4")
REPLICA_HOSTS = [*HOSTS, ("n3", "10.0.0.13", None), ("n4", "10.0.0.14", None)]


@dataclass
class Server:
    """One host as the world has it (and as the monitor would find it if it looked now)."""

    ping: bool = True
    mysql: bool = True
    rep_threads: bool = True
    rep_backlog: bool = True
    read_only: int = 1  # the node config's read_only=ON
    started_at: float = 0.0  # Uptime = now - started_at
    restarted: bool = False  # MySQL restarted since the monitor's last read_only=0 on it
    master: str | None = None  # a slave: the master its last set_active_master named (None: not set up)
    io_error: bool = False  # a slave: its IO thread stopped on a fatal error (until set again)

    def observations(
        self, name: str, now: float, slave: dict[str, object] | None = None
    ) -> list[Observation]:
        """One round of the daemon's checks: ping, then mysql with the replication checks and the facts;
        ``slave``: a slave's SHOW SLAVE STATUS as the world has it (a master's: from ``rep_threads``)."""
        out: list[Observation] = [CheckResult(name, "ping", self.ping, "OK" if self.ping else "ERROR", now)]
        if not self.mysql:
            return [*out, *(CheckResult(name, c, False, "ERROR: gone", now) for c in ("mysql", "rep_threads", "rep_backlog"))]  # fmt: skip
        if slave is None:
            slave = {"Slave_IO_Running": "Yes" if self.rep_threads else "Connecting"}
        threads = slave.get("Slave_IO_Running") == "Yes"
        return [
            *out,
            CheckResult(name, "mysql", True, "OK", now),
            CheckResult(name, "rep_threads", threads, "OK" if threads else "ERROR: broken", now),
            CheckResult(name, "rep_backlog", self.rep_backlog, "OK" if self.rep_backlog else "ERROR: big", now),
            HostFacts(name, self.read_only, now - self.started_at, slave, now, int(name[1:])),
        ]  # fmt: skip


@dataclass
class Flight:
    action: SetReadOnly | SetMaster
    emitted: int  # the world's round counter when the state machine asked for it


@dataclass
class World:
    names: tuple[str, ...] = NAMES
    slaves: tuple[str, ...] = ()
    now: float = 1000.0
    servers: dict[str, Server] = field(default_factory=dict)
    haproxy: dict[tuple[str, str], bool] = field(default_factory=dict)
    state: MonitorState = field(init=False)
    inbox: list[Observation] = field(default_factory=list)
    in_flight: dict[str, Flight] = field(default_factory=dict)
    clock: int = 0  # rounds and commands so far
    candidacy_since: dict[str, int] = field(default_factory=dict)  # host -> round it became candidate
    promoted_at: dict[str, int] = field(default_factory=dict)  # host -> emission of its last good read_only=0
    actions: list[Action] = field(default_factory=list)  # every action so far, in order

    def __post_init__(self) -> None:
        self.servers = self.servers or {n: Server() for n in self.names}
        # every server disabled in the rendered config: the masters' writer (and repl) servers, every reader
        self.haproxy = self.haproxy or {key: False for key in self.keys()}
        self.state = self._fresh_state()

    @classmethod
    def replicas(cls) -> World:
        """Two masters and two slaves (mmm-4-replicas)."""
        return cls(names=REPLICA_NAMES, slaves=REPLICA_SLAVES)

    @property
    def masters(self) -> list[str]:
        return [n for n in self.names if n not in self.slaves]

    def keys(self) -> list[tuple[str, str]]:
        backends = [WRITER, REPL] if self.slaves else [WRITER]
        return [(b, n) for n in self.masters for b in backends] + [(READER, n) for n in self.names]

    def _fresh_state(self) -> MonitorState:
        hosts = REPLICA_HOSTS if self.slaves else HOSTS
        return initial_state(S, [h for h in hosts if h[0] in self.names], self.now, slaves=self.slaves)

    # -- driving
    def slave_status(self, name: str) -> dict[str, object] | None:
        """A slave's SHOW SLAVE STATUS: its IO thread reaches its master through HAProxy's repl backend."""
        if name not in self.slaves:
            return None
        server = self.servers[name]
        if server.master is None:
            return {"Slave_IO_Running": None}  # never set up
        if server.io_error:
            return {"Slave_IO_Running": "No", "Master_Server_Id": int(server.master[1:])}
        upstream = self.servers[server.master]
        connected = server.rep_threads and upstream.mysql and self.haproxy[(REPL, server.master)]
        if not connected:
            return {"Slave_IO_Running": "Connecting", "Master_Server_Id": int(server.master[1:])}
        return {"Slave_IO_Running": "Yes", "Master_Server_Id": int(server.master[1:])}

    def check(self, names: Sequence[str] | None = None) -> None:
        for name in self.names if names is None else names:
            self.inbox.extend(self.servers[name].observations(name, self.now, self.slave_status(name)))

    def round(self, haproxy_ok: Sequence[bool] = ()) -> list[Action]:
        """One ``step`` with what the inbox holds; HAProxy commands succeed unless ``haproxy_ok`` says."""
        self.clock += 1
        before, observations, self.inbox = self.state, self.inbox, []
        self.state, actions = step(before, observations, self.now)
        self._after(before, actions, haproxy_ok)
        return actions

    def command(self, name: str, host: str) -> tuple[bool, str]:
        self.clock += 1
        before = self.state
        self.state, actions, ok, message = command(before, name, host, self.now)
        self._after(before, actions, ())
        return ok, message

    def resolve(self, host: str, ok: bool = True) -> None:
        """The host's agent reports back; an action to a host MySQL does not answer on fails."""
        flight = self.in_flight.pop(host)
        action = flight.action
        server = self.servers[host]
        ok = ok and server.mysql
        if isinstance(action, SetMaster):
            if ok:
                server.master, server.io_error = action.master, False
            self.inbox.append(
                SetMasterResult(host, action.seq, action.master, ok, "OK" if ok else "ERROR", self.now)
            )
            return
        if ok:
            server.read_only = int(action.read_only)
            if action.kind == "promote":
                self.promoted_at[host] = flight.emitted
                server.restarted = False
        self.inbox.append(
            ReadOnlyResult(host, action.seq, action.read_only, ok, "OK" if ok else "ERROR", self.now)
        )

    def resolve_all(self, ok: bool = True) -> None:
        for host in list(self.in_flight):
            self.resolve(host, ok)

    def run(self, seconds: float, dt: float = 0.1, *, ok: bool = True) -> None:
        """The daemon for a while: checks every round, every action succeeding (if its host answers)."""
        for _ in range(round(seconds / dt)):
            self.now += dt
            self.check()
            self.round()
            self.resolve_all(ok)

    def restart_mysql(self, host: str) -> None:
        server = self.servers[host]
        server.started_at, server.read_only, server.restarted = self.now, 1, True

    def restart_monitor(self, landed: Sequence[bool] = ()) -> None:
        """A new monitor process: what the old one had in flight lands on the host or not (``landed``, in
        host order), its unprocessed observations are gone, and the new one starts from nothing."""
        for i, host in enumerate(sorted(self.in_flight)):
            action = self.in_flight[host].action
            if (landed[i] if i < len(landed) else False) and self.servers[host].mysql:
                if isinstance(action, SetMaster):
                    self.servers[host].master, self.servers[host].io_error = action.master, False
                else:
                    self.servers[host].read_only = int(action.read_only)
        self.in_flight, self.inbox = {}, []
        self.candidacy_since, self.promoted_at = {}, {}
        self.state = self._fresh_state()

    # -- the safety rule, checked on every action as it is emitted
    def _after(self, before: MonitorState, actions: list[Action], haproxy_ok: Sequence[bool]) -> None:
        s = self.state
        if s.candidate is not None and s.candidate != before.candidate:
            self.candidacy_since[s.candidate] = self.clock
        writer = s.roles.writer
        if writer is not None and writer != before.roles.writer:
            assert before.roles.writer is None, "the writer role moved without being vacant first"
            assert writer in self.masters, f"the writer role on slave {writer}"
            since = self.candidacy_since.get(writer)
            assert since is not None and self.promoted_at.get(writer, -1) >= since, (
                f"{writer} got the writer role without a successful read_only=0 in its candidacy"
            )
        failed = False
        batch = iter(haproxy_ok)
        self.actions.extend(actions)
        for action in actions:
            if isinstance(action, SetReadOnly | SetMaster):
                assert action.host not in self.in_flight, f"a second agent action for {action.host}"
                if isinstance(action, SetMaster):
                    self._check_set_master(action)
                elif action.kind == "promote":
                    assert action.host in self.masters, f"read_only=0 on slave {action.host}"
                    self._check_promotion(action.host)
                self.in_flight[action.host] = Flight(action, self.clock)
            elif isinstance(action, SetHaproxy):
                key = (action.backend, action.server)
                assert key in self.haproxy, f"no server {key} in HAProxy's config"
                if action.ready and action.backend in (WRITER, REPL):
                    assert action.server == writer, (
                        f"{action.backend}/{action.server} enabled, the writer is {writer}"
                    )
                    others = [n for n in self.masters if n != action.server]
                    assert not any(self.haproxy[(action.backend, o)] for o in others), (
                        f"{action.backend} enabled before removals"
                    )
                    server = self.servers[action.server]
                    assert server.read_only == 0 or server.restarted, "writer enabled on a read-only host"
                status: HaproxyStatus
                if failed:
                    status = "skipped"
                else:
                    status = "ok" if next(batch, True) else "failed"
                    failed = status == "failed"
                if status == "ok":
                    self.haproxy[key] = action.ready
                self.inbox.append(
                    HaproxyResult(action.backend, action.server, action.ready, status, self.now)
                )

    def _check_set_master(self, action: SetMaster) -> None:
        s = self.state
        assert action.host in self.slaves, f"set_active_master on master {action.host}"
        assert action.master == s.roles.writer, (
            f"{action.host} told to follow {action.master}, not the writer"
        )
        assert self.haproxy[(REPL, action.master)], (
            f"{action.host} repointed before repl/{action.master} is ready"
        )

    def _check_promotion(self, host: str) -> None:
        s = self.state
        assert host == s.candidate and s.roles.writer is None
        for other in self.names:
            if other == host:
                continue
            if other in self.masters:
                assert not self.haproxy[(WRITER, other)], (
                    f"read_only=0 on {host} while writer/{other} is ready"
                )
            if s.hosts[other].answers():
                assert s.agents[other].mode == READ_ONLY, (
                    f"read_only=0 on {host} before read_only=1 on {other}"
                )
            flight = self.in_flight.get(other)
            assert flight is None or isinstance(flight.action, SetMaster) or flight.action.read_only

    # -- the state, after every step
    def invariants(self) -> None:
        s = self.state
        writers = [n for n in self.names if WRITER in s.roles.of(n)]
        assert len(writers) <= 1, f"two writers: {writers}"
        assert all(w in self.masters for w in writers), f"the writer role on a slave: {writers}"
        for backend in (WRITER, REPL) if self.slaves else (WRITER,):
            ready = [n for n in self.masters if self.haproxy[(backend, n)]]
            assert len(ready) <= 1, f"two {backend} servers ready: {self.haproxy}"
        for name in self.names:
            if s.hosts[name].state != ONLINE:
                assert s.roles.of(name) == [], f"{name} is {s.hosts[name].state} and holds {s.roles.of(name)}"
        online = [n for n in self.names if s.hosts[n].state == ONLINE]
        assert len(s.roles.readers) == len(self.names)
        if online:
            assert None not in s.roles.readers, "an ONLINE host but an orphaned reader role"
            counts = [s.roles.readers.count(n) for n in online]
            assert max(counts) - min(counts) <= 1, (
                f"reader roles not balanced over {online}: {s.roles.readers}"
            )
        if s.candidate is not None:
            assert s.roles.writer is None and s.candidate in online and s.candidate in self.masters

    def settled(self) -> None:
        """After a quiet while with every action succeeding: the roles, read_only, HAProxy and the slaves
        as the design promises (every ONLINE host ONLINE for a while; see ``MonitorMachine.settle``)."""
        s = self.state
        online = [n for n in self.names if s.hosts[n].state == ONLINE]
        writer = s.roles.writer
        if not any(n in self.masters for n in online):
            assert writer is None
            return
        assert writer in online and writer in self.masters, (
            f"ONLINE {online} for 2 s, yet the writer is {writer}"
        )
        per_host = len(self.names) // len(online)
        assert {s.roles.readers.count(n) for n in online} <= {per_host, per_host + 1}
        assert self.servers[writer].read_only == 0
        ready = {key for key, on in self.haproxy.items() if on}
        expected = {(WRITER, writer)} | {(READER, n) for n in online}
        assert ready == expected | ({(REPL, writer)} if self.slaves else set())
        for name in self.names:
            if name != writer and self.servers[name].mysql:
                assert self.servers[name].read_only == 1, f"{name} is writable besides the writer"
        for name in self.slaves:
            if name in online:
                assert self.servers[name].master == writer, (
                    f"ONLINE slave {name} follows {self.servers[name].master}"
                )

    # -- shortcuts
    def roles(self) -> dict[str, list[str]]:
        return {n: self.state.roles.of(n) for n in self.names}

    def states(self) -> dict[str, str]:
        return {n: self.state.hosts[n].state for n in self.names}

    def bootstrap(self) -> None:
        """The harness's bootstrap: the hosts answer, the operator sets each online, the writer on n1."""
        self.run(0.3)
        for name in self.names:
            assert self.command("set_online", name)[0]
            self.run(0.3 if name == "n1" else 0.5)
        if not self.slaves:
            assert self.roles() == {"n1": [WRITER, READER], "n2": [READER]}
            assert self.haproxy == {(WRITER, "n1"): True, (READER, "n1"): True, (WRITER, "n2"): False, (READER, "n2"): True}  # fmt: skip
        else:
            assert self.roles() == {"n1": [WRITER, READER], "n2": [READER], "n3": [READER], "n4": [READER]}
            assert {key for key, on in self.haproxy.items() if on} == {
                (WRITER, "n1"), (REPL, "n1"), *((READER, n) for n in self.names)
            }  # fmt: skip
            assert all(self.servers[n].master == "n1" for n in self.slaves)
        assert (self.servers["n1"].read_only, self.servers["n2"].read_only) == (0, 1)


def moves(actions: Sequence[Action], role: str = WRITER) -> list[tuple[str | None, str | None]]:
    return [(a.source, a.target) for a in actions if isinstance(a, MoveRole) and a.role == role]


# ---------------------------------------------------------------------------------------------- plain tests


def test_happy_path_failover_then_the_old_writer_rejoins_as_standby() -> None:
    world = World()
    world.bootstrap()
    start = len(world.actions)
    killed = world.now
    world.servers["n1"].ping = world.servers["n1"].mysql = False  # the writer dies
    moved_at = None
    for _ in range(40):
        world.run(0.1)
        world.invariants()
        if moved_at is None and world.state.roles.writer == "n2":
            moved_at = world.now
    assert moved_at is not None and moved_at - killed <= S.trap_period + S.check_period
    assert world.states() == {"n1": HARD_OFFLINE, "n2": ONLINE}
    assert world.roles() == {"n1": [], "n2": [WRITER, READER, READER]}
    assert world.haproxy == {(WRITER, "n1"): False, (READER, "n1"): False, (WRITER, "n2"): True, (READER, "n2"): True}  # fmt: skip
    assert world.servers["n2"].read_only == 0
    after = world.actions[start:]
    removal = after.index(SetHaproxy(WRITER, "n1", False))
    promotion = next(i for i, a in enumerate(after) if isinstance(a, SetReadOnly) and a.kind == "promote")
    assert removal < promotion < after.index(SetHaproxy(WRITER, "n2", True))
    assert moves(after) == [("n1", None), (None, "n2")]

    world.restart_mysql("n1")  # back after a restart: AWAITING_RECOVERY, then ONLINE after auto_set_online
    world.servers["n1"].ping = world.servers["n1"].mysql = True
    world.run(S.auto_set_online + 1.0)
    assert world.states() == {"n1": ONLINE, "n2": ONLINE}
    assert world.roles() == {"n1": [READER], "n2": [WRITER, READER]}  # no fail-back
    assert (world.servers["n1"].read_only, world.servers["n2"].read_only) == (1, 0)
    assert not world.state.hosts["n1"].flapping(world.now, S)


def test_a_writer_whose_read_only_0_fails_does_not_get_the_role() -> None:
    world = World()
    world.bootstrap()
    world.servers["n1"].ping = world.servers["n1"].mysql = False
    for _ in range(40):  # n2's read_only=0 fails every time
        world.run(0.1, ok=False)
        world.invariants()
    assert world.state.roles.writer is None and world.state.candidate == "n2"
    assert world.roles() == {"n1": [], "n2": [READER, READER]}
    assert not world.haproxy[(WRITER, "n2")] and not world.haproxy[(WRITER, "n1")]
    tries = [
        a for a in world.actions if isinstance(a, SetReadOnly) and a.host == "n2" and a.kind == "promote"
    ]
    assert 2 <= len(tries) <= 4 / S.retry_s + 1  # tried again after each pause, not every round
    world.run(0.5)  # once it succeeds, n2 is the writer
    assert world.state.roles.writer == "n2" and world.haproxy[(WRITER, "n2")]


def test_the_writer_role_waits_for_read_only_1_on_a_reachable_old_writer() -> None:
    world = World()
    world.bootstrap()
    start = len(world.actions)
    world.command("set_offline", "n1")  # n1 answers: it must be read-only before n2 is made writable
    assert world.state.roles.writer is None
    for _ in range(10):
        world.now += 0.1
        world.check()
        world.round()
        world.invariants()
    assert not any(isinstance(a, SetReadOnly) and a.kind == "promote" for a in world.actions[start:])
    assert world.state.candidate == "n2" and "n1" in world.in_flight  # its read_only=1 still in flight
    world.resolve("n1")
    world.run(0.3)
    assert world.roles() == {"n1": [], "n2": [WRITER, READER, READER]}
    assert world.states()["n1"] == ADMIN_OFFLINE and world.servers["n1"].read_only == 1


def test_master_master_replication_partition_takes_the_standby_out_only() -> None:
    world = World()
    world.bootstrap()
    world.run(S.rep_grace)  # past the grace after n2 became ONLINE
    for name in NAMES:  # the masters lose each other, the monitor still reaches both
        world.servers[name].rep_threads = False
    world.run(S.trap_period + 0.5)
    assert world.states() == {"n1": ONLINE, "n2": REPLICATION_FAIL}  # the writer's own checks do not count
    assert world.roles() == {"n1": [WRITER, READER, READER], "n2": []}
    assert not world.haproxy[(READER, "n2")] and world.haproxy[(WRITER, "n1")]
    for name in NAMES:
        world.servers[name].rep_threads = True
    world.run(0.5)
    assert world.states() == {"n1": ONLINE, "n2": ONLINE}  # straight back, per MMM
    assert world.roles() == {"n1": [WRITER, READER], "n2": [READER]}


def test_one_master_cut_off_from_the_monitor_loses_its_roles() -> None:
    world = World()
    world.bootstrap()
    world.servers["n2"].ping = world.servers["n2"].mysql = False  # the standby, as the monitor sees it
    world.run(S.trap_period + 0.5)
    assert world.states() == {"n1": ONLINE, "n2": HARD_OFFLINE}
    assert world.roles() == {"n1": [WRITER, READER, READER], "n2": []}
    world.servers["n2"].ping = world.servers["n2"].mysql = True  # a short outage without a restart
    world.run(0.5)
    assert world.states() == {"n1": ONLINE, "n2": ONLINE}


def test_a_restarted_monitor_keeps_the_writer_it_finds() -> None:
    world = World()
    world.servers["n2"].read_only = 0  # what a previous monitor left: n2 writable and in the writer backend
    world.haproxy[(WRITER, "n2")] = True
    world.run(S.auto_set_online + 0.5)
    assert world.states() == {"n1": ONLINE, "n2": ONLINE}
    assert world.roles() == {"n1": [READER], "n2": [WRITER, READER]}  # not n1, first in config order
    assert (world.servers["n1"].read_only, world.servers["n2"].read_only) == (1, 0)
    # on the way, n2 was read-only and out of the writer backend before it was made writable again
    kinds = [(a.host, a.kind) for a in world.actions if isinstance(a, SetReadOnly)]
    assert kinds.index(("n2", "demote")) < kinds.index(("n2", "promote"))


def test_a_restarted_monitor_that_finds_two_writable_hosts_keeps_neither_as_such() -> None:
    world = World()
    world.servers["n1"].read_only = world.servers["n2"].read_only = 0
    world.run(S.auto_set_online + 0.5)
    assert world.state.roles.writer == "n1"  # no incumbent: config order
    assert (world.servers["n1"].read_only, world.servers["n2"].read_only) == (0, 1)


def test_a_read_only_value_changed_behind_the_monitors_back_is_set_back() -> None:
    world = World()
    world.bootstrap()
    world.servers["n2"].read_only = 0  # someone lifts it on the standby
    world.servers["n1"].read_only = 1  # and sets it on the writer
    world.run(0.3)
    enforced = [(a.host, a.read_only) for a in world.actions if isinstance(a, SetReadOnly) and a.enforce]
    assert sorted(enforced) == [("n1", False), ("n2", True)]
    assert (world.servers["n1"].read_only, world.servers["n2"].read_only) == (0, 1)
    assert world.state.roles.writer == "n1"


def test_a_haproxy_failure_skips_the_rest_of_the_batch_and_is_retried() -> None:
    world = World()
    world.check()
    actions = world.round(haproxy_ok=[True, False])  # the first round sets every server in maintenance
    assert [a for a in actions if isinstance(a, SetHaproxy)] == [
        SetHaproxy(b, n, False) for n in NAMES for b in BACKENDS
    ]
    assert [r.status for r in world.inbox if isinstance(r, HaproxyResult)] == [
        "ok",
        "failed",
        "skipped",
        "skipped",
    ]
    retried = [a for a in world.round() if isinstance(a, SetHaproxy)]  # the failed and the skipped ones
    assert retried == [SetHaproxy(READER, "n1", False), SetHaproxy(WRITER, "n2", False), SetHaproxy(READER, "n2", False)]  # fmt: skip
    world.round()
    assert world.state.haproxy == {(b, n): False for b in BACKENDS for n in NAMES}


def test_set_online_refuses_a_host_that_does_not_answer() -> None:
    world = World()
    world.servers["n2"].mysql = False
    world.run(S.trap_period + 0.5)
    ok, message = world.command("set_online", "n2")
    assert not ok and message.startswith("n2 is HARD_OFFLINE")
    assert world.command("set_online", "n1") == (True, "OK: State of 'n1' changed to ONLINE")
    assert world.command("set_online", "n1") == (True, "n1 is already ONLINE")
    assert world.command("set_online", "n3") == (False, "unknown host 'n3'")
    with pytest.raises(ValueError):
        command(world.state, "move_role", "n1", world.now)


def test_step_leaves_the_given_state_alone() -> None:
    world = World()
    world.check()
    before = world.state
    snapshot = repr(before)
    after, _ = step(before, world.inbox, world.now)
    assert repr(before) == snapshot and after is not before
    assert before.agents["n1"].pending is None and after.agents["n1"].pending is not None


# ---------------------------------------------------------------------------------------------- with slaves


def test_slaves_follow_the_new_writer_and_stay_online_through_a_failover() -> None:
    world = World.replicas()
    world.bootstrap()
    world.run(S.rep_grace + 1.0)  # past every grace: the slaves' replication checks count
    start = len(world.actions)
    killed = world.now
    world.servers["n1"].ping = world.servers["n1"].mysql = False  # the writer dies
    slave_states: set[str] = set()
    for _ in range(60):
        world.run(0.1)
        world.invariants()
        slave_states |= {world.state.hosts[n].state for n in REPLICA_SLAVES}
    assert slave_states == {ONLINE}  # repointed within rep_grace of the writer's move: never taken out
    assert world.states() == {"n1": HARD_OFFLINE, "n2": ONLINE, "n3": ONLINE, "n4": ONLINE}
    assert world.state.roles.writer == "n2"
    assert sorted(len(r) for r in world.roles().values()) == [0, 1, 1, 3]  # n1's reader moved, n2 writer
    assert all(world.servers[n].master == "n2" for n in REPLICA_SLAVES)
    after = world.actions[start:]
    repl_off = after.index(SetHaproxy(REPL, "n1", False))
    repl_on = after.index(SetHaproxy(REPL, "n2", True))
    repoints = [i for i, a in enumerate(after) if isinstance(a, SetMaster)]
    assert repl_off < repl_on < min(repoints) and len(repoints) == 2
    assert {after[i].host for i in repoints} == {"n3", "n4"}  # type: ignore[union-attr]
    moved = next(i for i, a in enumerate(after) if isinstance(a, MoveRole) and a.role == WRITER and a.target)
    assert moved < min(repoints)
    assert world.now - killed >= S.trap_period

    world.restart_mysql("n1")  # the old writer back: a reader master; the slaves stay on n2
    world.servers["n1"].ping = world.servers["n1"].mysql = True
    world.run(S.auto_set_online + 1.0)
    assert world.roles() == {"n1": [READER], "n2": [WRITER, READER], "n3": [READER], "n4": [READER]}
    assert all(world.servers[n].master == "n2" for n in REPLICA_SLAVES)
    assert not [a for a in world.actions[start + len(after) :] if isinstance(a, SetMaster)]
    world.settled()


def test_a_dead_slave_loses_its_reader_role_and_comes_back_only_after_auto_set_online() -> None:
    world = World.replicas()
    world.bootstrap()
    world.run(S.rep_grace)
    world.servers["n3"].ping = world.servers["n3"].mysql = False
    world.run(S.trap_period + 0.5)
    assert world.states()["n3"] == HARD_OFFLINE and world.roles()["n3"] == []
    readers = sorted(r.count(READER) for r in world.roles().values())
    assert readers == [0, 1, 1, 2]  # the 4 reader roles balanced over the three hosts left
    assert not world.haproxy[(READER, "n3")]
    world.servers["n3"].ping = world.servers["n3"].mysql = True  # back without a restart (e.g. paused)
    world.run(0.5)
    assert world.states()["n3"] == AWAITING_RECOVERY  # MMM's short-outage rule is for masters only
    world.run(S.auto_set_online)
    assert world.states()["n3"] == ONLINE and world.roles()["n3"] == [READER]
    assert world.haproxy[(READER, "n3")] and world.state.roles.writer == "n1"
    world.settled()


def test_a_slave_whose_io_thread_stopped_is_set_again() -> None:
    world = World.replicas()
    world.bootstrap()
    start = len(world.actions)
    world.servers["n4"].io_error = True  # e.g. 1236: it got more of the old master than the new one has
    world.run(S.check_period)
    repoints = [a for a in world.actions[start:] if isinstance(a, SetMaster)]
    assert repoints == [SetMaster("n4", "n1", repoints[0].seq)] and not world.servers["n4"].io_error


def test_a_slave_never_gets_the_writer_role() -> None:
    world = World.replicas()
    world.bootstrap()
    for name in ("n1", "n2"):
        world.servers[name].ping = world.servers[name].mysql = False
    world.run(S.trap_period + 1.0)
    assert world.state.roles.writer is None and world.state.candidate is None
    assert world.roles() == {"n1": [], "n2": [], "n3": [READER, READER], "n4": [READER, READER]}
    assert not any(isinstance(a, SetReadOnly) and a.kind == "promote" and a.host in REPLICA_SLAVES
                   for a in world.actions)  # fmt: skip
    world.servers["n2"].ping = world.servers["n2"].mysql = True
    world.restart_mysql("n2")
    world.run(S.auto_set_online + 1.0)
    assert world.state.roles.writer == "n2"
    assert all(world.servers[n].master == "n2" for n in REPLICA_SLAVES)


def test_a_slave_replicating_from_a_dead_master_too_long_is_taken_out() -> None:
    world = World.replicas()
    world.bootstrap()
    world.run(S.rep_grace)
    world.servers["n3"].rep_threads = False  # its own link cut
    world.run(S.trap_period + 0.5)
    assert world.states()["n3"] == REPLICATION_FAIL and world.roles()["n3"] == []
    world.servers["n3"].rep_threads = True
    world.run(S.check_period + 0.2)
    assert world.states()["n3"] == ONLINE and world.roles()["n3"] == [READER]


# ---------------------------------------------------------------------------------------------- hypothesis


def monitor_machine(
    make: Callable[[], World], names: tuple[str, ...], doc: str
) -> type[RuleBasedStateMachine]:
    """A rule-based machine over ``make()``'s world (its host ``names``)."""
    masters = tuple(n for n in names if n in make().masters)
    slaves = tuple(n for n in names if n not in masters)

    class Machine(RuleBasedStateMachine):
        @initialize(ro=st.sampled_from([(1, 1), (0, 1), (1, 0), (0, 0)]))
        def start(self, ro: tuple[int, int]) -> None:
            self.world = make()
            for name, value in zip(masters, ro, strict=True):  # what a previous monitor may have left
                self.world.servers[name].read_only = value
            if ro.count(0) == 1:
                self.world.haproxy[(WRITER, masters[ro.index(0)])] = True

        @rule(
            name=st.sampled_from(names),
            ping=st.booleans(),
            mysql=st.booleans(),
            rep_threads=st.booleans(),
            rep_backlog=st.booleans(),
        )
        def set_condition(
            self, name: str, ping: bool, mysql: bool, rep_threads: bool, rep_backlog: bool
        ) -> None:
            server = self.world.servers[name]
            server.ping, server.mysql = ping, mysql
            server.rep_threads, server.rep_backlog = rep_threads, rep_backlog

        if slaves:

            @rule(name=st.sampled_from(slaves))
            def fatal_io_error(self, name: str) -> None:
                """A slave's IO thread stops on a fatal error (e.g. 1236: it is ahead of its new master)."""
                self.world.servers[name].io_error = True

        @rule()
        def partition_masters(self) -> None:
            """The masters lose each other; the monitor still reaches both."""
            for name in masters:
                server = self.world.servers[name]
                server.ping = server.mysql = True
                server.rep_threads = False

        @rule(name=st.sampled_from(names))
        def cut_off_from_monitor(self, name: str) -> None:
            self.world.servers[name].ping = self.world.servers[name].mysql = False

        @rule()
        def heal(self) -> None:
            for server in self.world.servers.values():
                server.ping = server.mysql = server.rep_threads = server.rep_backlog = True

        @rule(name=st.sampled_from(names))
        def restart_mysql(self, name: str) -> None:
            self.world.restart_mysql(name)

        @rule(dt=st.floats(min_value=0.0, max_value=4.0))
        def advance(self, dt: float) -> None:
            self.world.now += dt

        @rule(
            checked=st.sets(st.sampled_from(names)),
            haproxy_ok=st.lists(st.booleans(), max_size=6),
            dt=st.floats(min_value=0.0, max_value=1.0),
        )
        def monitor_round(self, checked: set[str], haproxy_ok: list[bool], dt: float) -> None:
            self.world.now += dt
            self.world.check(sorted(checked))
            self.world.round(haproxy_ok)

        @rule(host=st.sampled_from(names), ok=st.booleans())
        def agent_reports(self, host: str, ok: bool) -> None:
            """The host's agent reports its action's result (fails if MySQL does not answer)."""
            if host in self.world.in_flight:
                self.world.resolve(host, ok)

        @rule(name=st.sampled_from(["set_online", "set_offline"]), host=st.sampled_from(names))
        def operator(self, name: str, host: str) -> None:
            self.world.command(name, host)

        @rule(landed=st.lists(st.booleans(), max_size=len(names)))
        def restart_monitor(self, landed: list[bool]) -> None:
            self.world.restart_monitor(landed)

        @rule()
        def settle(self) -> None:
            """Nothing changes for a while and every action succeeds: the roles settle on the ONLINE hosts,
            and every ONLINE slave follows the writer."""
            world = self.world
            for server in world.servers.values():
                server.io_error = False  # a fatal IO error is cured by the next set_active_master
            history: list[tuple[str, ...]] = []
            for _ in range(60):
                world.now += 0.1
                world.check()
                world.round()
                world.invariants()
                world.resolve_all()
                history.append(tuple(n for n in names if world.state.hosts[n].state == ONLINE))
            online = history[-1]
            if len(set(history[-20:])) != 1 or not online:
                event("settle: no ONLINE host, or not for long enough")
                return  # e.g. one is flapping in and out, or awaits recovery
            event(f"settle: {len(online)} ONLINE")
            world.settled()

        @invariant()
        def safe(self) -> None:
            self.world.invariants()

    Machine.__doc__ = doc
    Machine.__name__ = Machine.__qualname__ = "MonitorMachine"
    return Machine


MonitorMachine = monitor_machine(
    World, NAMES, "Random checks, partitions, read_only results, HAProxy failures, time and monitor restarts."
)
MonitorMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_monitor_state_machine = MonitorMachine.TestCase

ReplicaMonitorMachine = monitor_machine(
    World.replicas,
    REPLICA_NAMES,
    "The same over two masters and two slaves: the writer only ever on a master, reader roles balanced over "
    "the ONLINE hosts, every ONLINE slave following the writer once things settle.",
)
ReplicaMonitorMachine.__name__ = ReplicaMonitorMachine.__qualname__ = "ReplicaMonitorMachine"
ReplicaMonitorMachine.TestCase.settings = settings(
    max_examples=80, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_replica_monitor_state_machine = ReplicaMonitorMachine.TestCase


def test_all_states_are_reachable_from_the_world() -> None:
    """The simulated world really drives the machine through every host state (the property test's rules
    are not vacuous)."""
    world = World()
    seen: set[str] = set()
    world.bootstrap()
    seen.update(world.states().values())
    world.run(S.rep_grace)
    world.servers["n2"].rep_backlog = False
    world.run(S.trap_period + 0.5)
    seen.update(world.states().values())
    world.servers["n2"].rep_backlog = True
    world.servers["n2"].mysql = False
    world.run(S.trap_period + 0.5)
    seen.update(world.states().values())
    world.servers["n2"].mysql = True
    world.restart_mysql("n2")
    world.run(0.3)
    seen.update(world.states().values())
    world.command("set_offline", "n1")
    seen.update(world.states().values())
    world.servers["n1"].rep_threads = False
    world.run(S.auto_set_online + 0.5)
    world.command("set_online", "n1")
    world.run(S.rep_grace + S.trap_period + 0.5)
    seen.update(world.states().values())
    assert seen == {
        ONLINE,
        ADMIN_OFFLINE,
        HARD_OFFLINE,
        REPLICATION_FAIL,
        "REPLICATION_DELAY",
        AWAITING_RECOVERY,
    }
