"""The MMM monitor's decisions as a pure state machine: checks with trap periods, host states, roles, and
what the monitor does about them each round (``step``). No I/O, no clocks, no threads: the daemon
(``monitor.py``) feeds it observations (check results, facts the hosts report, results of its own actions)
and executes the actions it returns.

Standalone on purpose, like the daemon: it is copied next to it into the monitor container and imported
as a sibling module there, so it uses the standard library only. It follows mysql-mmm's documented model
(the MMM 2 manual: checks, host states, roles, flapping):

* **Checks**, per host every ``check_period`` with ``timeout``: ``ping`` (the host answers on the network),
  ``mysql`` (connect and query), ``rep_threads`` (Slave_IO_Running and Slave_SQL_Running are both Yes)
  and ``rep_backlog`` (Seconds_Behind_Master is NULL or at most ``max_backlog``). A check counts as
  failed once it has kept failing for ``trap_period``; one success clears it.
* **Host states**: ONLINE, ADMIN_OFFLINE (set_offline), HARD_OFFLINE (ping or mysql failed),
  REPLICATION_FAIL (rep_threads failed), REPLICATION_DELAY (rep_backlog failed), AWAITING_RECOVERY (a host
  that answers again after HARD_OFFLINE, and every host when the monitor starts). Replication checks do not
  count on the active master (the writer, or the host being made writer), nor while the host's peer is not
  ONLINE and answering, nor for ``rep_grace`` seconds after the peer became ONLINE. REPLICATION_* goes back
  to ONLINE once the checks pass again (or the peer left ONLINE). AWAITING_RECOVERY goes ONLINE when the
  outage was shorter than 60 s and MySQL was not restarted (its Uptime kept growing), or after
  ``auto_set_online`` seconds — unless the host is flapping (it left ONLINE ``flap_count`` times within
  ``flap_duration``).
* **Slaves** (MMM's ``mode slave``, optional): read-only hosts that replicate from the *active master*
  (the writer). They get the same checks and states as the masters, with the active master as their peer:
  their replication checks count only while a writer holds the role, is ONLINE and answering, and both
  the writer's ONLINE state and its holding the role are ``rep_grace`` old (a slave needs a moment to be
  repointed). Unlike a master, a slave back from HARD_OFFLINE goes ONLINE only after
  ``auto_set_online`` (MMM's short-outage rule is for masters). A slave never gets the writer role.
* **Roles**: only ONLINE hosts hold roles. ``reader`` is balanced: one reader role per host, spread
  evenly over the ONLINE hosts (slaves included). ``writer`` is exclusive; it stays where it is while its host is ONLINE (no
  preferred host, no fail-back), and is taken away as soon as its host leaves ONLINE. A vacant writer role
  goes to a *candidate*: the ONLINE master with the fewest roles (config order breaks ties) — or, right after
  the monitor started, the one host that reported ``read_only=0`` when first seen (the writer the previous
  monitor left, so that a monitor restart does not move writes).
* **The safety rule** (never two writers): the candidate is sent ``read_only=0`` only once every other
  host is confirmed out of HAProxy's writer backend (``maint`` applied) and, if it answers, confirmed
  ``read_only=1`` with nothing pending on it; it gets the writer role only when that ``read_only=0`` was
  reported successful, and the other hosts are still clear; HAProxy's ``writer/<host>`` is enabled only for
  the role's holder, and only while every other writer server is confirmed in maintenance. A host that
  answers and holds no writer role or candidacy is set ``read_only=1`` (its client connections killed),
  and a read_only value a host reports against what the monitor set is corrected (as mmm_agentd does).
* **set_active_master** (what mmm_agentd does on a slave when the monitor names a new active master): a
  ``SetMaster`` to every slave that answers (but an ADMIN_OFFLINE one) and does not follow the writer yet,
  once HAProxy's ``repl/<writer>`` is confirmed ready (the slaves' replication links lead there); a slave
  that reports no replication, a stopped IO thread (a fatal error: e.g. it got more of the old master's
  binlog than the new master did, which MariaDB refuses until the new master has it too), or an IO
  thread connected to another master than the one it was set to, is set again. MMM's agent repoints only an ONLINE slave; here any slave that answers is, since a slave
  taken out for replicating from the dead old master would otherwise never come back.
* **HAProxy**: ``writer/<host>`` is ``ready`` for the writer, ``reader/<host>`` for each host with a reader
  role, and (with slaves) ``repl/<host>`` for the writer, every other server ``maint``; a writer or repl
  server is enabled only while the backend's others are confirmed in maintenance; removals are listed
  before additions, and every server is re-asserted every ``RESYNC_S`` (HAProxy may have been restarted).

Usage: ``state = initial_state(settings, hosts, now)``, then each round
``state, actions = step(state, observations, now)`` and ``command(...)`` for set_online/set_offline. Both
return a new state and leave the given one untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ONLINE = "ONLINE"
ADMIN_OFFLINE = "ADMIN_OFFLINE"
HARD_OFFLINE = "HARD_OFFLINE"
REPLICATION_FAIL = "REPLICATION_FAIL"
REPLICATION_DELAY = "REPLICATION_DELAY"
AWAITING_RECOVERY = "AWAITING_RECOVERY"
CHECKS = ("ping", "mysql", "rep_threads", "rep_backlog")
SHORT_OUTAGE_S = 60.0  # MMM: a host down for less than this, and not restarted, comes back on its own
RESYNC_S = 5.0  # every HAProxy server state is re-asserted this often
WRITER = "writer"
READER = "reader"
REPL = "repl"  # HAProxy's backend the slaves replicate through: the writer's server ready
MASTER = "master"  # a host's mode (MMM's ``mode master`` / ``mode slave``)
SLAVE = "slave"
NEVER = float("-inf")

# What the monitor's own read_only actions left on a host (``Agent.mode``)
UNKNOWN = "unknown"  # none succeeded yet (monitor start), or a read_only=0 failed halfway
WRITABLE = "writable"  # read_only=0 succeeded (a promotion)
READ_ONLY = "read_only"  # read_only=1 succeeded (a demotion)


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

    @property
    def retry_s(self) -> float:
        """How long a failed read_only action waits before it is tried again."""
        return min(1.0, self.check_period)


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

    @property
    def last_ok(self) -> bool:
        """The last result was a success (no trap period)."""
        return self.has_result and self.failing_since is None


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
    read_only: int | None = None  # as last reported by the host
    slave: dict[str, Any] = field(default_factory=dict)
    mode: str = MASTER
    server_id: int | None = None  # as last reported by the host

    def ok(self, check: str, now: float, s: Settings) -> bool:
        return self.checks[check].ok(now, s.trap_period)

    def alive(self, now: float, s: Settings) -> bool:
        return self.ok("ping", now, s) and self.ok("mysql", now, s)

    def answers(self) -> bool:
        """Its last mysql check succeeded: an action sent to it now can be expected to get through."""
        return self.checks["mysql"].last_ok

    def flapping(self, now: float, s: Settings) -> bool:
        return len([t for t in self.left_online if now - t <= s.flap_duration]) >= s.flap_count


def transition(
    host: Host, peer: Host | None, is_writer: bool, now: float, s: Settings, grace_since: float = NEVER
) -> tuple[str, str] | None:
    """The host's next state and why, or None to stay (pure; the rules are in the module docstring).
    ``peer``: a master's other master, a slave's active master; ``grace_since``: a slave's, when that
    master got the writer role (``rep_grace`` counts from the later of it and the peer's ONLINE)."""
    state = host.state
    if state == ADMIN_OFFLINE or not all(host.checks[c].has_result for c in ("ping", "mysql")):
        return None  # nothing to decide on before the first results
    alive = host.alive(now, s)
    counts = (
        not is_writer
        and peer is not None
        and peer.state == ONLINE
        and peer.alive(now, s)
        and now - max(peer.since, grace_since) >= s.rep_grace
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
        short = (
            host.mode == MASTER
            and host.downtime is not None
            and host.downtime < SHORT_OUTAGE_S
            and not host.rebooted
        )
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


Move = tuple[str, str | None, str | None]  # (role, from, to)


def release(roles: Roles, online: list[str]) -> list[Move]:
    """Take every role from hosts that are not ONLINE (pure but for ``roles``)."""
    moves: list[Move] = []
    if roles.writer is not None and roles.writer not in online:
        moves.append((WRITER, roles.writer, None))
        roles.writer = None
    for i, host in enumerate(roles.readers):
        if host is not None and host not in online:
            moves.append((READER, host, None))
            roles.readers[i] = None
    return moves


def pick_writer(roles: Roles, online: list[str], prefer: str | None = None) -> str | None:
    """Where a vacant writer role goes: ``prefer`` if ONLINE, else the ONLINE host with the fewest roles
    (config order, that of ``online``, breaks ties). ``online``: the hosts that may hold it (masters)."""
    if not online:
        return None
    if prefer in online:
        return prefer
    return min(online, key=lambda h: (len(roles.of(h)), online.index(h)))


def hand_out_readers(roles: Roles, online: list[str]) -> list[Move]:
    """Give orphaned reader roles to the ONLINE hosts with the fewest, then balance (counts differ by at
    most one)."""
    moves: list[Move] = []
    for i, host in enumerate(roles.readers):
        if host is None and online:
            target = min(online, key=lambda h: (roles.readers.count(h), online.index(h)))
            roles.readers[i] = target
            moves.append((READER, None, target))
    while online:
        most = max(online, key=lambda h: (roles.readers.count(h), -online.index(h)))
        least = min(online, key=lambda h: (roles.readers.count(h), online.index(h)))
        if roles.readers.count(most) - roles.readers.count(least) <= 1:
            break
        roles.readers[roles.readers.index(most)] = least
        moves.append((READER, most, least))
    return moves


def distribute(roles: Roles, online: list[str]) -> list[Move]:
    """Take roles from hosts that are not ONLINE and hand out orphans, the writer included at once (pure
    but for ``roles``). ``online`` is in config order, which breaks ties. Returns the moves as (role, from,
    to). The state machine does the same, except that a vacant writer role goes through a candidate."""
    moves = release(roles, online)
    if roles.writer is None and online:
        roles.writer = pick_writer(roles, online)
        moves.append((WRITER, None, roles.writer))
    return moves + hand_out_readers(roles, online)


@dataclass
class Agent:
    """What mmm_agentd would know of its host's read_only: what the monitor's own actions left there, the
    action in flight, and whether the host has since reported a different value."""

    mode: str = UNKNOWN
    pending: SetReadOnly | SetMaster | None = None
    done_at: float = NEVER  # when the last successful read_only action completed
    retry_at: float = NEVER  # a failed action is not tried again before
    drift: bool = False  # a report taken after ``done_at`` disagrees with ``mode``
    error: str = ""
    following: str | None = None  # a slave: the master its last successful set_active_master named
    follow_done_at: float = NEVER  # when that completed


@dataclass
class MonitorState:
    """Everything the monitor knows and has decided. ``step`` and ``command`` return a new one."""

    settings: Settings
    order: list[str]  # host names in config order
    hosts: dict[str, Host]
    agents: dict[str, Agent]
    roles: Roles
    candidate: str | None = None  # the host being made writer (the writer role is vacant)
    candidate_seq: int | None = None  # its read_only=0 action
    promoted: bool = False  # that action succeeded
    haproxy: dict[tuple[str, str], bool] = field(default_factory=dict)  # (backend, host) -> ready, confirmed
    last_resync: float = NEVER
    writer_epoch: int = 0  # bumped whenever a host gets the writer role
    writer_since: float = NEVER  # when the writer role was last given
    seq: int = 0  # the last action number handed out
    first_read_only: dict[str, int] = field(default_factory=dict)  # until the first writer: as first seen
    discovering: bool = True  # no writer assigned yet since the monitor started

    @property
    def writer(self) -> str | None:
        return self.roles.writer

    @property
    def masters(self) -> list[str]:
        return [n for n in self.order if self.hosts[n].mode == MASTER]

    @property
    def slaves(self) -> list[str]:
        return [n for n in self.order if self.hosts[n].mode == SLAVE]

    def writer_routed(self) -> bool:
        """A writer holds the role and HAProxy confirmed its writer server ready: writes reach it."""
        return self.roles.writer is not None and self.haproxy.get((WRITER, self.roles.writer)) is True

    def incumbent(self) -> str | None:
        """Right after a start: the one host that reported read_only=0 when first seen (while every other
        host reported read_only=1 or nothing) — the writer the previous monitor left."""
        if not self.discovering:
            return None
        writable = [h for h in self.masters if self.first_read_only.get(h) == 0]
        return writable[0] if len(writable) == 1 else None


def initial_state(
    settings: Settings,
    hosts: Iterable[tuple[str, str, str | None]],
    now: float,
    slaves: Iterable[str] = (),
) -> MonitorState:
    """A freshly started monitor: every host AWAITING_RECOVERY since ``now``, no roles, nothing known of
    HAProxy or of the hosts' read_only. ``hosts`` are (name, ip, peer) in config order; ``slaves`` name
    those in ``mode slave`` (no peer: theirs is the active master)."""
    slave_names = set(slaves)
    table = {
        name: Host(name, ip, None if name in slave_names else peer, since=now,
                   mode=SLAVE if name in slave_names else MASTER)
        for name, ip, peer in hosts
    }  # fmt: skip
    order = list(table)
    return MonitorState(
        settings=settings,
        order=order,
        hosts=table,
        agents={name: Agent() for name in order},
        roles=Roles(readers=[None] * len(order)),
    )


# ---------------------------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class CheckResult:
    """One check's result on one host, at ``at``."""

    host: str
    check: str
    ok: bool
    message: str
    at: float


@dataclass(frozen=True)
class HostFacts:
    """What a successful mysql check read on the host; ``at``: when the query was sent. ``slave`` holds
    SHOW SLAVE STATUS's fields (``Slave_IO_Running`` None: no replication configured)."""

    host: str
    read_only: int
    uptime: float
    slave: dict[str, Any]
    at: float
    server_id: int | None = None


@dataclass(frozen=True)
class SetMasterResult:
    """The outcome of a ``SetMaster`` (same ``seq``); ``at``: when it completed."""

    host: str
    seq: int
    master: str
    ok: bool
    message: str
    at: float


@dataclass(frozen=True)
class ReadOnlyResult:
    """The outcome of a ``SetReadOnly`` (same ``seq``); ``at``: when it completed."""

    host: str
    seq: int
    read_only: bool
    ok: bool
    message: str
    at: float


HaproxyStatus = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class HaproxyResult:
    """The outcome of a ``SetHaproxy``: ``skipped`` when an earlier command of the batch failed."""

    backend: str
    server: str
    ready: bool
    status: HaproxyStatus
    at: float
    message: str = ""


Observation = CheckResult | HostFacts | ReadOnlyResult | SetMasterResult | HaproxyResult


# ---------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class SetReadOnly:
    """What the host's agent does: ``read_only=False`` is a promotion (apply the relay log, then
    read_only=0), ``True`` a demotion (read_only=1, application connections killed); ``enforce``: just
    correct a value the host reported against the monitor's (SET it if it still differs)."""

    host: str
    read_only: bool
    seq: int
    enforce: bool = False

    @property
    def kind(self) -> str:
        if self.enforce:
            return "enforce"
        return "demote" if self.read_only else "promote"


@dataclass(frozen=True)
class SetMaster:
    """mmm_agentd's ``set_active_master`` on a slave: apply what its relay log holds (bounded), then
    replicate from ``master`` (GTID, through the slave's own replication link)."""

    host: str
    master: str
    seq: int

    kind = "set_active_master"


@dataclass(frozen=True)
class SetHaproxy:
    """Set server ``backend/server`` ready or in maintenance (its sessions shut down); ``refresh``: the
    periodic re-assertion of a state already applied (no session shutdown, nothing to report)."""

    backend: str
    server: str
    ready: bool
    refresh: bool = False


@dataclass(frozen=True)
class HostStateChange:
    host: str
    state_from: str
    state_to: str
    reason: str


@dataclass(frozen=True)
class MoveRole:
    role: str
    source: str | None
    target: str | None


@dataclass(frozen=True)
class Log:
    message: str


Action = SetReadOnly | SetMaster | SetHaproxy | HostStateChange | MoveRole | Log


# ---------------------------------------------------------------------------------------------- the machine


def step(
    state: MonitorState, observations: Sequence[Observation], now: float
) -> tuple[MonitorState, list[Action]]:
    """One round of the monitor: take in ``observations`` (in order), move hosts between states, then
    decide roles, read_only and HAProxy. Returns the new state and the actions, in the order to run them
    (HAProxy removals before additions)."""
    s = copy.deepcopy(state)
    out: list[Action] = []
    for obs in observations:
        _observe(s, obs)
    for name in s.order:
        host = s.hosts[name]
        if host.mode == SLAVE:  # its peer is the active master, its grace counts from the role's move
            peer = s.hosts[s.roles.writer] if s.roles.writer else None
            change = transition(host, peer, False, now, s.settings, s.writer_since)
        else:
            peer = s.hosts.get(host.peer) if host.peer else None
            change = transition(host, peer, name in (s.roles.writer, s.candidate), now, s.settings)
        if change is not None:
            out.append(HostStateChange(name, host.state, change[0], change[1]))
            enter(host, change[0], now)
            host.left_online = [t for t in host.left_online if now - t <= s.settings.flap_duration]
    _decide(s, now, out)
    return s, out


COMMANDS = ("set_online", "set_offline")


def command(
    state: MonitorState, name: str, host_name: str, now: float
) -> tuple[MonitorState, list[Action], bool, str]:
    """``mmm_control set_online|set_offline HOST``: the new state, the actions, whether it was accepted and
    the answer."""
    if name not in COMMANDS:
        raise ValueError(f"unknown command {name!r}, expected one of {', '.join(COMMANDS)}")
    s = copy.deepcopy(state)
    host = s.hosts.get(host_name)
    if host is None:
        return state, [], False, f"unknown host {host_name!r}"
    out: list[Action] = []
    if name == "set_online":
        if host.state == ONLINE:
            return state, [], True, f"{host_name} is already ONLINE"
        if host.state not in (AWAITING_RECOVERY, ADMIN_OFFLINE):
            return (state, [], False,
                    f"{host_name} is {host.state}; only AWAITING_RECOVERY or ADMIN_OFFLINE can be set online")  # fmt: skip
        if not host.alive(now, s.settings):
            checks = f"ping: {host.checks['ping'].message}; mysql: {host.checks['mysql'].message}"
            return state, [], False, f"{host_name} does not answer ({checks})"
        host.left_online.clear()
        target, reason = ONLINE, "set_online"
    else:
        if host.state == ADMIN_OFFLINE:
            return state, [], True, f"{host_name} is already ADMIN_OFFLINE"
        target, reason = ADMIN_OFFLINE, "set_offline"
    out.append(HostStateChange(host_name, host.state, target, reason))
    enter(host, target, now)
    _decide(s, now, out)
    return s, out, True, f"OK: State of {host_name!r} changed to {target}"


def _observe(s: MonitorState, obs: Observation) -> None:
    if isinstance(obs, CheckResult):
        s.hosts[obs.host].checks[obs.check].record(obs.ok, obs.message, obs.at)
    elif isinstance(obs, HostFacts):
        host, agent = s.hosts[obs.host], s.agents[obs.host]
        host.read_only, host.uptime, host.slave = obs.read_only, obs.uptime, dict(obs.slave)
        if obs.server_id is not None:
            host.server_id = obs.server_id
        if s.discovering:
            s.first_read_only.setdefault(obs.host, obs.read_only)
        if obs.at > agent.done_at and agent.mode != UNKNOWN:  # taken after the monitor's last action
            agent.drift = (obs.read_only == 1) != (agent.mode == READ_ONLY)
            if agent.drift and obs.host == s.candidate:
                s.promoted = False  # read_only=1 again since its promotion: promote it again
        following = agent.following
        if host.mode == SLAVE and following is not None and obs.at > agent.follow_done_at:
            agent.following = following if _replicates_from(s, host, following) else None  # else again
    elif isinstance(obs, SetMasterResult):
        agent = s.agents[obs.host]
        if not isinstance(agent.pending, SetMaster) or agent.pending.seq != obs.seq:
            return
        agent.pending = None
        if obs.ok:
            agent.following, agent.follow_done_at, agent.error = obs.master, obs.at, ""
        else:  # it may have stopped replication halfway: set it again after a pause
            agent.following, agent.retry_at, agent.error = None, obs.at + s.settings.retry_s, obs.message
    elif isinstance(obs, ReadOnlyResult):
        agent = s.agents[obs.host]
        action = agent.pending
        if not isinstance(action, SetReadOnly) or action.seq != obs.seq:
            return  # not the action in flight (cannot happen with one daemon per state)
        agent.pending = None
        if obs.ok:
            agent.done_at, agent.drift, agent.error = obs.at, False, ""
            if not action.enforce:
                agent.mode = READ_ONLY if action.read_only else WRITABLE
            if obs.seq == s.candidate_seq and obs.host == s.candidate:
                s.promoted = True
        else:
            agent.retry_at, agent.error = obs.at + s.settings.retry_s, obs.message
            if action.kind == "promote":
                agent.mode = UNKNOWN  # it may or may not have taken read_only=0
    elif isinstance(obs, HaproxyResult):
        key = (obs.backend, obs.server)
        if obs.status == "ok":
            s.haproxy[key] = obs.ready
        elif obs.status == "failed":
            s.haproxy.pop(key, None)  # unknown: set it again


def _replicates_from(s: MonitorState, host: Host, master: str) -> bool:
    """What a slave last reported is consistent with replicating from ``master``: replication is
    configured, its IO thread not stopped, and connected (if it is) to ``master`` (by server id). A
    stopped IO thread is a fatal error, e.g. the new master lacks what the slave got from the old one
    (MariaDB's 1236: GTID position not in the master's binlog) until it has caught up with the old
    master: the slave is set again, which succeeds once it has."""
    io = host.slave.get("Slave_IO_Running")
    if io in (None, "No"):
        return False
    source, expected = host.slave.get("Master_Server_Id"), s.hosts[master].server_id
    if io != "Yes" or source in (None, "", 0) or expected is None:
        return True
    return int(source) == expected


def _decide(s: MonitorState, now: float, out: list[Action]) -> None:
    online = [n for n in s.order if s.hosts[n].state == ONLINE]
    out.extend(MoveRole(*move) for move in release(s.roles, online))
    if s.candidate is not None and s.candidate not in online:
        out.append(Log(f"writer candidate {s.candidate} left ONLINE ({s.hosts[s.candidate].state})"))
        s.candidate, s.candidate_seq, s.promoted = None, None, False
    masters_online = [n for n in online if s.hosts[n].mode == MASTER]
    if s.roles.writer is None and s.candidate is None and masters_online:
        incumbent = s.incumbent()
        s.candidate = pick_writer(s.roles, masters_online, incumbent)
        why = "it was the writer when the monitor started" if s.candidate == incumbent else "fewest roles"
        out.append(Log(f"writer candidate {s.candidate} ({why}): read_only=0 once the others are clear"))
    if s.candidate is not None and s.promoted and others_clear(s, s.candidate):
        writer = s.candidate
        s.roles.writer = writer
        s.candidate, s.candidate_seq, s.promoted = None, None, False
        s.writer_epoch += 1
        s.writer_since = now
        s.discovering = False
        out.append(MoveRole(WRITER, None, writer))
    out.extend(MoveRole(*move) for move in hand_out_readers(s.roles, online))
    _agents(s, now, out)
    _haproxy(s, now, out)


def others_clear(s: MonitorState, candidate: str) -> bool:
    """The safety rule's precondition for making ``candidate`` writable: every other host is confirmed
    out of the writer backend, has no read_only=0 in flight, and — if it answers — is confirmed
    read_only=1 with nothing in flight and nothing reported against it."""
    for name in s.order:
        if name == candidate:
            continue
        agent = s.agents[name]
        if s.hosts[name].mode == MASTER and s.haproxy.get((WRITER, name)) is not False:
            return False  # (a slave has no writer server)
        pending = agent.pending if isinstance(agent.pending, SetReadOnly) else None  # not a SetMaster
        if pending is not None and not pending.read_only:
            return False
        if s.hosts[name].answers() and (agent.mode != READ_ONLY or agent.drift or pending is not None):
            return False
    return True


def _agents(s: MonitorState, now: float, out: list[Action]) -> None:
    """read_only, host by host: the writer writable, the candidate writable once the others are clear,
    every other host read-only; one action in flight per host, a failed one retried after a pause, only
    to hosts that answer."""
    for name in s.order:
        agent = s.agents[name]
        if agent.pending is not None or now < agent.retry_at or not s.hosts[name].answers():
            continue
        action: SetReadOnly | SetMaster | None = None
        if name == s.roles.writer:
            if agent.drift:
                action = SetReadOnly(name, False, s.seq + 1, enforce=True)
        elif name == s.candidate:
            if not s.promoted and others_clear(s, name):
                action = SetReadOnly(name, False, s.seq + 1)
                s.candidate_seq = action.seq
        elif agent.mode != READ_ONLY:
            action = SetReadOnly(name, True, s.seq + 1)
        elif agent.drift:
            action = SetReadOnly(name, True, s.seq + 1, enforce=True)
        if action is None and _follow_due(s, name):
            assert s.roles.writer is not None
            action = SetMaster(name, s.roles.writer, s.seq + 1)
        if action is not None:
            s.seq = action.seq
            agent.pending = action
            out.append(action)


def _follow_due(s: MonitorState, name: str) -> bool:
    """A slave is told the active master (set_active_master) once the writer's repl server is confirmed
    ready, unless it follows it already or an operator took it offline."""
    writer = s.roles.writer
    return (
        s.hosts[name].mode == SLAVE
        and s.hosts[name].state != ADMIN_OFFLINE
        and writer is not None
        and s.haproxy.get((REPL, writer)) is True
        and s.agents[name].following != writer
    )


def desired_haproxy(s: MonitorState) -> dict[tuple[str, str], bool]:
    """(backend, host) -> ready, in config order: the writer's writer server, the readers' reader servers."""
    desired: dict[tuple[str, str], bool] = {}
    repl = bool(s.slaves)
    for name in s.order:
        if s.hosts[name].mode == MASTER:
            desired[(WRITER, name)] = s.roles.writer == name
        desired[(READER, name)] = name in s.roles.readers
        if repl and s.hosts[name].mode == MASTER:
            desired[(REPL, name)] = s.roles.writer == name
    return desired


def _haproxy(s: MonitorState, now: float, out: list[Action]) -> None:
    desired = desired_haproxy(s)
    resync = now - s.last_resync >= RESYNC_S
    if resync:
        s.last_resync = now
    removals: list[Action] = []
    additions: list[Action] = []
    for key, ready in desired.items():
        applied = s.haproxy.get(key)
        if applied == ready and not resync:
            continue
        if ready and key[0] in (WRITER, REPL):  # never two: the others confirmed in maintenance
            others = [k for k in desired if k[0] == key[0] and k != key]
            if any(s.haproxy.get(k) is not False for k in others):
                continue
        (additions if ready else removals).append(SetHaproxy(key[0], key[1], ready, refresh=applied == ready))
    out.extend(removals + additions)
