"""The nemesis: every fault a scenario can name, applied to the real cluster and undone by its heal.

Mechanisms: peer-mesh partitions with iptables in each node's namespace (``netfilter``), client-link
faults with Toxiproxy toxics (``link``), process faults with Docker (SIGKILL, freezer pause, graceful
stop, start). Every fault is written as an Event (start = in effect, end = healed) on the run's clock.
``heal()`` restores the baseline whatever state the cluster was left in, so it is idempotent and also
right after a crashed earlier session.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.faults import netfilter
from harness.faults import partition as shapes
from harness.faults.link import AppliedLinkFault, LinkFaults, LinkFaultSpec
from harness.model.clock import RunClock
from harness.model.history import Event, EventWriter
from harness.runtime.cluster import Node, Run
from harness.runtime.docker import DockerRuntime
from harness.runtime.proxies import client as toxiproxy_client
from harness.systems.base import ClusterSystem

ROLE_TARGETS = ("primary", "leader", "writer")
GROUP_TARGETS = ("all", "random", "minority")


class Nemesis:
    def __init__(
        self,
        system: ClusterSystem,
        *,
        events: EventWriter | Path | None = None,
        clock: RunClock | None = None,
        rng: random.Random | None = None,
        say: Callable[[str], None] = lambda m: None,
    ) -> None:
        self.system = system
        self.run: Run = system.run
        self.runtime: DockerRuntime = system.runtime
        self.clock = clock or RunClock()
        if isinstance(events, Path):
            events = EventWriter(events, self.clock)
        self.events = events
        self.rng = rng or random.Random(0)
        self.say = say
        self.open: dict[str, Event] = {}  # id -> event in effect
        self._partition: Event | None = None
        self._links: list[tuple[AppliedLinkFault, Event]] = []
        proxies = {link.name: link.name for link in system.links()}
        first = next(iter(system.services))
        proxies.update({n.name: f"{n.name}-{first}" for n in self.run.nodes})  # a node's main link
        self.link_faults = LinkFaults(toxiproxy_client(self.run), proxies)

    # -- events -----------------------------------------------------------------------------------
    def _start(
        self,
        name: str,
        mechanism: str,
        target: str | Sequence[str],
        detail: dict[str, Any],
        at: int | None = None,
    ) -> Event:
        """Open an event. ``at``: when the fault began to act, if before now (a process fault acts from the
        moment its signal goes out, not when the call that sent it returns)."""
        ev_id = f"{name}-{uuid.uuid4().hex[:6]}"
        if self.events is not None:
            ev = self.events.start(name, mechanism, target, detail, id=ev_id, time=at)
        else:
            tgt = target if isinstance(target, str) else tuple(target)
            ev = Event(ev_id, name, mechanism, tgt, detail, self.clock.now() if at is None else at)
        self.open[ev.id] = ev
        self.say(f"fault {name} on {target if isinstance(target, str) else ','.join(target)} via {mechanism}")
        return ev

    def _end(self, ev: Event) -> Event:
        self.open.pop(ev.id, None)
        if self.events is not None:
            return self.events.end(ev)
        return Event(ev.id, ev.name, ev.mechanism, ev.target, ev.detail, ev.start, self.clock.now())

    # -- targets ----------------------------------------------------------------------------------
    def resolve(self, target: str | Sequence[str]) -> list[Node]:
        """A node name, a role (primary/leader/writer), ``all``, ``random``, ``minority`` or a list."""
        names = self.run.topology.node_names
        if not isinstance(target, str):
            return [n for t in target for n in self.resolve(t)]
        if target in ROLE_TARGETS:
            return [self.system.primary()]
        if target == "all":
            return list(self.run.nodes)
        if target == "random":
            return [self.rng.choice(self.run.nodes)]
        if target == "minority":
            return self.rng.sample(self.run.nodes, (len(names) - 1) // 2)
        if target not in names:
            expected = ", ".join([*names, *ROLE_TARGETS, *GROUP_TARGETS])
            raise InputError(f"target: unknown node or role {target!r}, expected one of: {expected}")
        return [self.run.node(target)]

    # -- partitions -------------------------------------------------------------------------------
    def plan_partition(self, shape: str, **params: Any) -> shapes.Partition:
        """Validate a shape against this topology (InputError before anything changes)."""
        if shape == "isolate":
            (node,) = self.resolve(params.get("node", "primary"))
            params = {**params, "node": node.name}
        return shapes.plan(shape, self.run.topology.node_names, rng=self.rng, **params)

    def partition(self, shape: str, **params: Any) -> Event:
        self.system.check_partitionable()
        plan = self.plan_partition(shape, **params)
        if self._partition is not None:
            self._end(self._partition)
        ip = {n.name: n.ip for n in self.run.nodes}
        how = netfilter.mode()

        def one(node: Node) -> None:
            netfilter.apply(self.runtime, node.container, [ip[p] for p in plan.drops_at(node.name)], how)

        self._parallel(one, self.run.nodes)
        detail = {"shape": plan.shape, "components": [sorted(c) for c in plan.components],
                  "cuts": sorted(list(c) for c in plan.cuts), "how": how,
                  "backend": netfilter.backend() if how == "nsenter" else "image"}  # fmt: skip
        self._partition = self._start("partition", f"iptables({how})", plan.describe(), detail)
        return self._partition

    def heal_partition(self) -> Event | None:
        how = netfilter.mode()
        self._parallel(lambda n: netfilter.apply(self.runtime, n.container, [], how), self.run.nodes)
        ended, self._partition = self._partition, None
        return self._end(ended) if ended else None

    # -- client links -----------------------------------------------------------------------------
    def link(self, link: str, spec: LinkFaultSpec) -> Event:
        applied = self.link_faults.apply(link, spec)
        detail = {"kind": type(spec).__name__.lower(), "spec": _spec_dict(spec), "proxy": applied.proxy,
                  "toxics": list(applied.toxics)}  # fmt: skip
        ev = self._start("link", "toxiproxy", link, detail)
        self._links.append((applied, ev))
        return ev

    def heal_links(self) -> list[Event]:
        self.link_faults.heal_all()
        ended = [self._end(ev) for _, ev in self._links]
        self._links.clear()
        return ended

    # -- processes --------------------------------------------------------------------------------
    def kill(self, target: str | Sequence[str] = "primary") -> Event:
        nodes = self.resolve(target)
        at = self.clock.now()
        self._parallel(lambda n: self.runtime.kill(n.container, "KILL"), nodes)
        return self._start("kill", "signal", [n.name for n in nodes], {"signal": "SIGKILL"}, at)

    def crash_all(self, window_s: float = 0.0) -> Event:
        """SIGKILL every node, each at a random moment within ``window_s`` seconds."""
        nodes = list(self.run.nodes)
        offsets = sorted(self.rng.uniform(0, window_s) for _ in nodes)
        self.rng.shuffle(nodes)
        began, at = time.monotonic(), self.clock.now()
        for node, offset in zip(nodes, offsets, strict=True):
            delay = began + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the schedule itself, not synchronisation
            self.runtime.kill(node.container, "KILL")
        detail = {"window_s": window_s, "order": [n.name for n in nodes]}
        return self._start("crash-all", "signal", [n.name for n in nodes], detail, at)

    def pause(self, target: str | Sequence[str] = "primary") -> Event:
        nodes = self.resolve(target)
        at = self.clock.now()
        self._parallel(lambda n: self.runtime.pause(n.container), nodes)
        return self._start("pause", "docker", [n.name for n in nodes], {"freezer": True}, at)

    def stop(self, target: str | Sequence[str] = "primary") -> Event:
        nodes = self.resolve(target)
        at = self.clock.now()
        self._parallel(lambda n: self.runtime.stop(n.container, timeout=30), nodes)
        return self._start("stop", "docker", [n.name for n in nodes], {"signal": "SIGTERM"}, at)

    def resume(self, target: str | Sequence[str] = "all") -> list[Event]:
        nodes = self.resolve(target)
        paused = [n for n in nodes if self.system.container_state(n) == "paused"]
        self._parallel(lambda n: self.runtime.unpause(n.container), paused)
        return self._end_process_events({n.name for n in paused}, ("pause",))

    def start(self, target: str | Sequence[str] = "all", *, wait: bool = True) -> list[Event]:
        """Start stopped/killed nodes; they rejoin (after all crashed: the system's recovery)."""
        nodes = self.resolve(target)
        down = [n for n in nodes if self.system.container_state(n) in ("exited", "created", "dead")]
        if down:
            self.system.restart_nodes(down, say=self.say)
            if wait:
                self.system.wait_healthy(self.run.topology.timeouts.heal)
        return self._end_process_events({n.name for n in down}, ("kill", "crash-all", "stop"))

    def restart(self, target: str | Sequence[str] = "primary") -> Event:
        nodes = self.resolve(target)
        ev = self.stop([n.name for n in nodes])
        self.start([n.name for n in nodes])
        return ev

    def _end_process_events(self, names: set[str], kinds: tuple[str, ...]) -> list[Event]:
        ended = []
        for ev in list(self.open.values()):
            targets = {ev.target} if isinstance(ev.target, str) else set(ev.target)
            if ev.name in kinds and targets & names:
                ended.append(self._end(ev))
        return ended

    # -- everything -------------------------------------------------------------------------------
    def heal(self, *, wait: bool = True) -> list[Event]:
        """Restore the baseline: no partition, no toxics, nothing paused, every node started."""
        ended = []
        if (ev := self.heal_partition()) is not None:
            ended.append(ev)
        ended += self.heal_links()
        ended += self.resume("all")
        ended += self.start("all", wait=False)
        for ev in list(self.open.values()):
            ended.append(self._end(ev))
        if wait:
            self.system.after_heal(self.say)  # e.g. RabbitMQ under `ignore`: restart the losing side
            self.system.wait_healthy(self.run.topology.timeouts.heal)
        return ended

    def _parallel(self, fn: Callable[[Node], Any], nodes: Sequence[Node]) -> None:
        if not nodes:
            return
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            list(pool.map(fn, nodes))


def _spec_dict(spec: LinkFaultSpec) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    return asdict(spec) if is_dataclass(spec) else {}
