"""The async replication manager's decisions as a pure state machine: which host is the source, when it
has failed, which replica to promote, and what to set where. No I/O, no clocks, no threads: the daemon
(``manager.py``) feeds it observations (each host's check, the results of its own actions) and executes
the actions it returns.

Standalone on purpose, like MMM's monitor state: it is copied next to the daemon into the manager's
container and imported as a sibling module, so it uses the standard library only. It follows what
replication managers do on loss of a source (MHA's ``masterha_manager``, orchestrator's
``RecoverDeadMaster``, Percona Replication Manager):

* **Checks**: every ``check_period`` the daemon connects to each host (through the host's client proxy,
  as HAProxy reaches it) and reads ``read_only``, ``gtid_binlog_pos``, and its replication status
  (``Gtid_IO_Pos``: what it has *received*; the IO and SQL threads). The source has failed once its checks
  have kept failing for ``failover_after`` (one success clears it).
* **Failover**, in order, each step waiting for the previous one's result:
  1. *fence*: the old source's ``writer/<host>`` server in HAProxy goes to maintenance (its sessions shut),
     so no client reaches it again (a best-effort ``read_only=1`` is sent too, in case it still answers);
  2. *promote* the **most advanced reachable replica**: the largest received GTID sequence in the old
     source's replication domain (then in all domains, then configuration order). It first applies what
     its relay log holds (``MASTER_GTID_WAIT`` on its received position, at most ``apply_timeout``), then
     stops replicating and takes writes (``read_only=0``). A failed promotion is retried with the next
     choice;
  3. *route*: ``writer/<new source>`` is enabled: clients write again;
  4. *repoint* every other reachable host at the new source (its replication proxy retargeted, then
     ``CHANGE MASTER`` with ``MASTER_USE_GTID=current_pos``).
* **Steady state**: the source is writable and routed; a host that answers, is not the source and
  reports ``read_only=0`` is demoted (``read_only=1``, its client connections killed); a host that answers
  and does not replicate from the source is repointed — unless it is **diverged**: its binlog holds, in
  some domain, a transaction the source does not have (a former source's writes that never shipped). A
  diverged host is left alone and reported; what the manager cannot decide (discard those writes) is an
  operator's rebuild, after which it is repointed like any other.
* **Safety** (never two writable sources reachable by clients): ``writer/<host>`` is enabled only for the
  source; a promotion is sent only after every other host's writer server is confirmed in maintenance;
  at most one host is ever the source.

Usage: ``state = initial_state(settings, hosts, source, now)``, then each round
``state, actions = step(state, observations, now)``. ``step`` returns a new state and leaves the given
one untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

STEADY = "steady"
FENCING = "fencing"
PROMOTING = "promoting"
Phase = Literal["steady", "fencing", "promoting"]


@dataclass(frozen=True)
class Settings:
    check_period: float = 1.0
    failover_after: float = 3.0  # the source's checks kept failing this long: it has failed
    apply_timeout: float = 5.0  # a promotion waits at most this long for the relay log to be applied
    action_timeout: float = 10.0  # an action without a result this long counts as failed

    @property
    def retry_s(self) -> float:
        return min(1.0, self.check_period)


# ---------------------------------------------------------------------------------------------- GTIDs


def parse_gtids(text: str | None) -> dict[int, int]:
    """``"1-1-100,2-2-7"`` → ``{1: 100, 2: 7}`` (domain → sequence number; the newest per domain)."""
    out: dict[int, int] = {}
    for part in (text or "").split(","):
        fields = part.strip().split("-")
        if len(fields) != 3 or not all(f.isdigit() for f in fields):
            continue
        domain, seq = int(fields[0]), int(fields[2])
        out[domain] = max(seq, out.get(domain, 0))
    return out


def ahead(a: dict[int, int], b: dict[int, int]) -> dict[int, int]:
    """The domains where ``a`` holds transactions ``b`` does not (domain → ``a``'s sequence number)."""
    return {d: seq for d, seq in a.items() if seq > b.get(d, 0)}


# ---------------------------------------------------------------------------------------------- model


@dataclass
class Host:
    name: str
    answers: bool = False  # its last check succeeded
    checked: bool = False
    failing_since: float | None = None
    message: str = "not checked yet"
    read_only: int | None = None
    binlog: dict[int, int] = field(default_factory=dict)  # @@gtid_binlog_pos
    received: dict[int, int] = field(default_factory=dict)  # Gtid_IO_Pos
    received_text: str = ""
    io_running: str = ""  # Yes / No / Connecting; "" when no replication is configured
    sql_running: str = ""

    def failed_for(self, now: float) -> float:
        return 0.0 if self.failing_since is None else now - self.failing_since


@dataclass(frozen=True)
class Fence:
    seq: int
    host: str  # its writer server to maintenance, sessions shut; best-effort read_only=1


@dataclass(frozen=True)
class Promote:
    seq: int
    host: str
    wait_for: str  # GTID position to apply first ("" for none), within apply_timeout


@dataclass(frozen=True)
class Route:
    seq: int
    host: str  # its writer server ready


@dataclass(frozen=True)
class Repoint:
    seq: int
    host: str
    source: str


@dataclass(frozen=True)
class Demote:
    seq: int
    host: str  # read_only=1, client connections killed


@dataclass(frozen=True)
class Note:
    """Something to record as a change (failure seen, promotion chosen, divergence found)."""

    kind: str
    host: str
    message: str


Action = Fence | Promote | Route | Repoint | Demote | Note
Command = Fence | Promote | Route | Repoint | Demote
HAPROXY: tuple[type[Command], ...] = (Fence, Route)  # run by the daemon's loop, in order
SQL: tuple[type[Command], ...] = (Promote, Demote, Repoint)  # run on the host's own worker, in order


@dataclass(frozen=True)
class CheckResult:
    host: str
    ok: bool
    at: float
    message: str = "OK"
    read_only: int | None = None
    binlog_pos: str = ""  # gtid_binlog_pos and gtid_slave_pos, joined: the newest GTID per domain it holds
    received: str = ""  # Gtid_IO_Pos
    io_running: str = ""
    sql_running: str = ""


@dataclass(frozen=True)
class ActionResult:
    seq: int
    ok: bool
    at: float
    message: str = ""


Observation = CheckResult | ActionResult


@dataclass
class ManagerState:
    settings: Settings
    order: tuple[str, ...]
    hosts: dict[str, Host]
    source: str | None  # the host writes go to (routed once ``routed``)
    upstream: dict[str, str | None]  # each host's replication source as last set (None: not replicating)
    phase: Phase = STEADY
    failed: str | None = None  # the source being replaced during a failover
    candidate: str | None = None
    routed: str | None = None  # the host whose writer server is (being) enabled
    fenced: set[str] = field(default_factory=set)  # writer servers confirmed in maintenance
    writable: set[str] = field(default_factory=set)  # hosts this manager made writable, not demoted since
    pending: dict[int, tuple[Command, float]] = field(default_factory=dict)  # seq → (action, sent at)
    refused: dict[str, float] = field(default_factory=dict)  # host → when its promotion failed
    diverged: dict[str, dict[int, int]] = field(default_factory=dict)  # host → domains it is ahead in
    failovers: int = 0
    seq: int = 0

    def busy(self, host: str, *kinds: type[Command]) -> bool:
        """An action for ``host`` is pending (of one of ``kinds``, if given)."""
        return any(a.host == host and (not kinds or isinstance(a, kinds)) for a, _ in self.pending.values())

    def send(self, out: list[Action], make: type[Command], host: str, now: float, *args: str) -> None:
        self.seq += 1
        action = make(self.seq, host, *args)  # type: ignore[call-arg]
        self.pending[self.seq] = (action, now)
        out.append(action)


def initial_state(settings: Settings, hosts: Sequence[str], source: str, now: float) -> ManagerState:
    """The topology as bootstrapped: ``source`` takes writes, every other host replicates from it; every
    writer server starts in maintenance (fenced)."""
    return ManagerState(
        settings=settings,
        order=tuple(hosts),
        hosts={h: Host(h) for h in hosts},
        source=source,
        upstream={h: (None if h == source else source) for h in hosts},
        fenced=set(hosts),
    )


def step(
    state: ManagerState, observations: Iterable[Observation], now: float
) -> tuple[ManagerState, list[Action]]:
    s = copy.deepcopy(state)
    out: list[Action] = []
    for obs in observations:
        if isinstance(obs, CheckResult):
            _check(s, obs)
        else:
            _result(s, obs, out)
    for seq, (_action, sent) in list(s.pending.items()):
        if now - sent > s.settings.action_timeout:
            _result(s, ActionResult(seq, False, now, "no result in time"), out)
    if s.phase == STEADY:
        _steady(s, now, out)
    if s.phase == FENCING:
        _fencing(s, now, out)
    if s.phase == PROMOTING:
        _promoting(s, now, out)
    return s, out


def _check(s: ManagerState, obs: CheckResult) -> None:
    h = s.hosts[obs.host]
    h.checked = True
    h.answers = obs.ok
    h.message = obs.message
    if not obs.ok:
        h.failing_since = h.failing_since if h.failing_since is not None else obs.at
        return
    h.failing_since = None
    h.read_only = obs.read_only
    h.binlog = parse_gtids(obs.binlog_pos)
    h.received = parse_gtids(obs.received)
    h.received_text = obs.received
    h.io_running, h.sql_running = obs.io_running, obs.sql_running


def _result(s: ManagerState, obs: ActionResult, out: list[Action]) -> None:
    entry = s.pending.pop(obs.seq, None)
    if entry is None:
        return
    action = entry[0]
    if isinstance(action, Fence):
        if obs.ok:
            s.fenced.add(action.host)
        if obs.ok and s.routed == action.host:
            s.routed = None
    elif isinstance(action, Route):
        if not obs.ok and s.routed == action.host:
            s.routed = None  # sent again in the next round
    elif isinstance(action, Demote):
        if obs.ok:
            s.writable.discard(action.host)
            s.hosts[action.host].read_only = 1
    elif isinstance(action, Repoint):
        if obs.ok:
            s.upstream[action.host] = action.source
            s.hosts[action.host].io_running = "Connecting"  # until its next check says how it went
    elif isinstance(action, Promote):
        if obs.ok:
            s.writable.add(action.host)
            s.hosts[action.host].read_only = 0
            s.upstream[action.host] = None
            if s.phase == PROMOTING and s.candidate == action.host:
                s.source, s.candidate, s.failed, s.phase = action.host, None, None, STEADY
                s.failovers += 1
                out.append(Note("promoted", action.host, f"new source (failover {s.failovers})"))
        else:
            s.refused[action.host] = obs.at
            out.append(Note("promotion-failed", action.host, obs.message))
            if s.candidate == action.host:
                s.candidate = None


def _steady(s: ManagerState, now: float, out: list[Action]) -> None:
    source = s.source
    if source is None:
        s.phase = PROMOTING
        return
    src = s.hosts[source]
    if src.checked and src.failed_for(now) >= s.settings.failover_after:
        out.append(Note("source-failed", source, f"failing for {src.failed_for(now):.1f}s: {src.message}"))
        s.phase, s.failed, s.source = FENCING, source, None
        return
    # the source takes writes, and only its writer server is enabled
    # (also when it already reports read_only=0 but no promotion of it succeeded: one whose reply was lost,
    # or a source that was writable before the manager started; the promotion makes it the manager's own)
    if src.answers and (src.read_only != 0 or source not in s.writable) and not s.busy(source):
        s.send(out, Promote, source, now, "")
    others_fenced = all(h in s.fenced for h in s.order if h != source)
    if src.answers and s.routed != source and source in s.writable and others_fenced and not s.busy(source):
        s.routed = source
        s.fenced.discard(source)
        s.send(out, Route, source, now)
    for name in s.order:
        if name == source:
            continue
        h = s.hosts[name]
        if name not in s.fenced and not s.busy(name, *HAPROXY):
            s.send(out, Fence, name, now)
        if not h.answers or s.busy(name):
            continue
        if h.read_only == 0:
            s.send(out, Demote, name, now)
            continue
        if s.upstream.get(name) == source and h.io_running not in ("", "No"):  # "No": stopped (an error)
            s.diverged.pop(name, None)
            continue
        extra = ahead(h.binlog, src.binlog) if src.answers else {}
        if extra:
            if s.diverged.get(name) != extra:
                detail = ", ".join(f"domain {d} to {q}" for d, q in sorted(extra.items()))
                out.append(Note("diverged", name, f"has transactions {source} does not ({detail})"))
            s.diverged[name] = extra
            continue
        if src.answers:
            s.diverged.pop(name, None)
            s.send(out, Repoint, name, now, source)


def _fencing(s: ManagerState, now: float, out: list[Action]) -> None:
    failed = s.failed
    assert failed is not None
    if failed in s.fenced:
        s.phase = PROMOTING
        return
    # an SQL action still on the host's worker does not hold the fence up: HAProxy's commands run apart
    if not s.busy(failed, *HAPROXY):
        s.send(out, Fence, failed, now)
    if s.hosts[failed].answers and not s.busy(failed, *SQL):
        s.send(out, Demote, failed, now)


def candidates(s: ManagerState, now: float) -> list[str]:
    """Reachable replicas in promotion order: the most advanced first (the largest position received or
    written, summed over domains: every replica received one stream from the same source), then
    configuration order; a host whose promotion failed waits ``retry_s`` before it is tried again."""
    pool = [
        n
        for n in s.order
        if n != s.failed
        and s.hosts[n].answers
        and n not in s.diverged
        and now - s.refused.get(n, float("-inf")) >= s.settings.retry_s
    ]
    return sorted(pool, key=lambda n: (-advance(s.hosts[n]), s.order.index(n)))


def advance(h: Host) -> int:
    """How far a host has got: per domain the newest of what it received and what it wrote, summed."""
    return sum(max(h.received.get(d, 0), h.binlog.get(d, 0)) for d in {*h.received, *h.binlog})


def _promoting(s: ManagerState, now: float, out: list[Action]) -> None:
    if s.candidate is not None:
        return  # waiting for the promotion's result
    others = [h for h in s.order if h != s.failed]
    for name in others:  # nothing but the new source may be reachable as a writer
        if name not in s.fenced and not s.busy(name, *HAPROXY):
            s.send(out, Fence, name, now)
    if not all(h in s.fenced for h in s.order):
        return
    pool = candidates(s, now)
    if not pool:
        return
    s.candidate = pool[0]
    h = s.hosts[s.candidate]
    out.append(Note("candidate", s.candidate, f"most advanced reachable replica ({h.received_text or '-'})"))
    s.send(out, Promote, s.candidate, now, h.received_text)
