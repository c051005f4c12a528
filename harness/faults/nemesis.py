"""The nemesis: every fault a scenario can name, applied to the real cluster and undone by its heal.

It composes the fault kinds (``FAULT_KINDS``: partitions with iptables in each node's namespace, link
faults with Toxiproxy toxics, process faults through the runtime), routes each step model to the kind
that handles it, refuses a fault that claims a (mechanism, target) pair a fault still in effect holds,
and records every fault as an event (start = in effect, end = healed) on the run's clock. ``heal()``
restores every mechanism's baseline whatever state the cluster was left in, so it is idempotent and also
right after a crashed earlier session.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.faults import partition as shapes
from harness.faults.base import FaultConflict, FaultKind
from harness.faults.clock import ClockFaults
from harness.faults.link import LinkFaultKind, link_fault_from_dict
from harness.faults.network import PartitionFaults
from harness.faults.process import ProcessFaults
from harness.faults.storage import StorageFaults
from harness.faults.wipe import WipeFaults
from harness.model.clock import RunClock
from harness.model.eventlog import EventLog
from harness.model.faults import (
    GROUP_TARGETS,
    ROLE_TARGETS,
    HealStep,
    KillStep,
    LinkFaultBase,
    LinkStep,
    PartitionStep,
    PauseStep,
    RestartStep,
    ResumeStep,
    StepBase,
    StopStep,
    WaitStep,
    parse_step,
)
from harness.model.history import Event, EventWriter
from harness.runtime.base import Runtime
from harness.runtime.run import Node, Run
from harness.systems.base import ClusterSystem
from harness.systems.capabilities import DESCRIPTIONS
from harness.systems.registry import system_info

__all__ = ["FAULT_KINDS", "GROUP_TARGETS", "ROLE_TARGETS", "FaultConflict", "Nemesis"]

log = logging.getLogger(__name__)

# In heal order: a disk is healthy again before the process heal starts a node that died of it, and a
# wiped node returns last, onto a cluster whose network and processes are whole again.
FAULT_KINDS: tuple[type[FaultKind], ...] = (PartitionFaults, LinkFaultKind, ClockFaults, StorageFaults,
                                             ProcessFaults, WipeFaults)  # fmt: skip


class Nemesis:
    def __init__(
        self,
        system: ClusterSystem,
        *,
        events: EventWriter | Path | None = None,
        clock: RunClock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.system = system
        self.run: Run = system.run
        self.runtime: Runtime = system.runtime
        clock = clock or RunClock()
        if isinstance(events, Path):
            events = EventWriter(events, clock)
        self.events = EventLog(events, clock)
        system.events = self.events  # the system's own actions (recoveries) become events too
        self.rng = rng or random.Random(0)
        self.info = system_info(system.name)
        self.kinds = [kind(self) for kind in FAULT_KINDS]
        self._claims: dict[tuple[str, str], str] = {}  # claim → id of the event holding it
        self._lock = threading.Lock()

    @property
    def open(self) -> dict[str, Event]:
        return self.events.open_events

    # -- targets ----------------------------------------------------------------------------------
    def resolve(self, target: str | Sequence[str]) -> list[Node]:
        """A node name, a role (primary/leader/writer), ``all``, ``random``, ``minority`` or a list."""
        names = self.run.topology.node_names
        if not isinstance(target, str):
            return [n for t in target for n in self.resolve(t)]
        if target in ROLE_TARGETS:
            return [self.system.primary()]
        helpers = self.system.helper_targets()
        if target in helpers:
            return [helpers[target]]
        if target in self.run.topology.helper_target_names:
            role = self.system.role_target(target)
            if role is not None:
                return [role]
        if target == "all":
            return list(self.run.nodes)
        if target == "random":
            return [self.rng.choice(self.run.nodes)]
        if target == "minority":
            return self.rng.sample(self.run.nodes, (len(names) - 1) // 2)
        if target not in names:
            expected = ", ".join(
                [*names, *ROLE_TARGETS, *GROUP_TARGETS, *self.run.topology.helper_target_names]
            )
            raise InputError(f"target: unknown node or role {target!r}, expected one of: {expected}")
        return [self.run.node(target)]

    # -- applying steps ---------------------------------------------------------------------------
    def kind_for(self, step: StepBase) -> FaultKind:
        for kind in self.kinds:
            if isinstance(step, kind.steps):
                missing = kind.requirements(step) - self.info.capabilities
                if missing:
                    needs = ", ".join(DESCRIPTIONS[c] for c in sorted(missing))
                    raise InputError(f"{step.kind}: needs {needs}, which {self.system.name} does not have")
                return kind
        raise InputError(f"{step.kind}: not a fault")

    def apply(self, step: StepBase | dict[str, Any]) -> list[Event]:
        """Apply one step model (or its YAML mapping). Refuses, before any change, a fault whose claim a
        fault in effect holds; a ``heal`` step heals, a ``wait`` step is the runner's."""
        if isinstance(step, dict):
            step = parse_step(step)
        if isinstance(step, HealStep):
            partial = {"partition": self.heal_partition, "links": self.heal_links, "disk": self.heal_disk,
                       "clock": self.heal_clock}  # fmt: skip
            return partial[step.heal]() if step.heal in partial else self.heal(wait=False)
        if isinstance(step, WaitStep):
            raise InputError("wait: the runner's timeline waits, not the nemesis")
        kind = self.kind_for(step)
        with self._lock:
            claims = kind.claims(step)
            held = {c: self._claims[c] for c in claims if c in self._claims and self._claims[c] in self.open}
            if held:
                (mechanism, target), ev_id = next(iter(held.items()))
                raise FaultConflict(f"{step.kind}: {target} is already under {mechanism} (event {ev_id}); "
                                    "heal it first")  # fmt: skip
            events = kind.apply(step)
            for ev in events:
                if ev.id in self.open:
                    self._claims.update(dict.fromkeys(claims, ev.id))
        return events

    # -- the shapes of the same, as methods (the CLI, tests, benchmarks) ----------------------------
    def plan_partition(self, shape: str, **params: Any) -> shapes.Partition:
        """Validate a shape against this topology (InputError before anything changes)."""
        return self._partitions.plan(_partition_step(shape, params))

    def partition(self, shape: str, **params: Any) -> Event:
        return self.apply(_partition_step(shape, params))[0]

    def heal_partition(self) -> list[Event]:
        return self._partitions.heal()

    def link(self, link: str, spec: LinkFaultBase | dict[str, Any]) -> Event:
        doc = spec.model_dump() if isinstance(spec, LinkFaultBase) else dict(spec)
        return self.apply(LinkStep(link=link_fault_from_dict({**doc, "target": link})))[0]

    def heal_links(self) -> list[Event]:
        return next(k for k in self.kinds if isinstance(k, LinkFaultKind)).heal()

    def heal_disk(self) -> list[Event]:
        return next(k for k in self.kinds if isinstance(k, StorageFaults)).heal()

    def heal_clock(self) -> list[Event]:
        return next(k for k in self.kinds if isinstance(k, ClockFaults)).heal()

    def clock(self, target: str, *, bump_s: float | None = None, drift: float | None = None,
              strobe: tuple[float, float] | None = None) -> Event:  # fmt: skip
        doc: dict[str, Any] = {"target": target, "bump": bump_s, "drift": drift}
        if strobe is not None:
            doc["strobe"] = {"delta": strobe[0], "period": strobe[1]}
        return self.apply({"clock": {k: v for k, v in doc.items() if v is not None}})[0]

    def power_loss(self, target: str | Sequence[str] = "all", window_s: float = 0.0) -> Event:
        return self.apply({"power_loss": {"target": _one(target), "window": window_s}})[0]

    def disk(
        self, target: str, kind: str, ops: Sequence[str] = ("write", "fsync"), latency_ms: int = 0
    ) -> Event:
        doc = {"target": target, "kind": kind, "ops": list(ops), "latency_ms": latency_ms}
        return self.apply({"disk": doc})[0]

    def wipe(self, target: str | Sequence[str] = "primary", *, returns: bool = True) -> Event:
        return self.apply({"wipe": {"target": _one(target), "return": returns}})[0]

    def kill(self, target: str | Sequence[str] = "primary") -> Event:
        return self.apply(KillStep(kill=_one(target)))[0]

    def pause(self, target: str | Sequence[str] = "primary") -> Event:
        return self.apply(PauseStep(pause=_one(target)))[0]

    def stop(self, target: str | Sequence[str] = "primary") -> Event:
        return self.apply(StopStep(stop=_one(target)))[0]

    def restart(self, target: str | Sequence[str] = "primary") -> Event:
        return self.apply(RestartStep(restart=_one(target)))[0]

    def resume(self, target: str | Sequence[str] = "all") -> list[Event]:
        return self.apply(ResumeStep(resume=_one(target)))

    def start(self, target: str | Sequence[str] = "all", *, wait: bool = True) -> list[Event]:
        """Start stopped/killed nodes; they rejoin (after all crashed: the system's recovery)."""
        return self._processes.start(self.resolve(target), wait=wait)

    def crash_all(self, window_s: float = 0.0) -> Event:
        return self.apply({"crash_all": {"window": window_s}})[0]

    # -- everything -------------------------------------------------------------------------------
    def heal(self, *, wait: bool = True) -> list[Event]:
        """Restore the baseline: no partition, no toxics, nothing paused, every node started."""
        ended: list[Event] = []
        for kind in self.kinds:
            ended += kind.heal()
        ended += [
            self.events.close(ev) for ev in list(self.open.values()) if ev.detail.get("by") != "harness"
        ]
        with self._lock:
            self._claims.clear()
        if wait:
            self.system.after_heal()  # e.g. RabbitMQ under `ignore`: restart the losing side
            self.system.wait_healthy(self.run.topology.timeouts.heal)
        return ended

    @property
    def _partitions(self) -> PartitionFaults:
        return next(k for k in self.kinds if isinstance(k, PartitionFaults))

    @property
    def _processes(self) -> ProcessFaults:
        return next(k for k in self.kinds if isinstance(k, ProcessFaults))


def _one(target: str | Sequence[str]) -> str:
    if isinstance(target, str):
        return target
    if len(target) == 1:
        return target[0]
    raise InputError(f"target: one node, role or group per fault, got {', '.join(target)}")


def _partition_step(shape: str, params: dict[str, Any]) -> PartitionStep:
    if shape == "isolate":
        doc: dict[str, Any] = {"isolate": params.get("node", "primary")}
    elif shape == "groups":
        doc = {"groups": params["groups"]}
    elif shape == "one_way":
        doc = {"one_way": {"from": params["src"], "to": params["dst"]}}
    else:
        doc = {"shape": shape}
    step = parse_step({"partition": doc})
    assert isinstance(step, PartitionStep)
    return step
