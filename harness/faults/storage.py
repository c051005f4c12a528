"""Storage faults on the nodes' LazyFS-semantics mounts (topology ``storage: lazyfs``).

``power_loss``: the machine loses power. Its process dies by SIGKILL, and once it is dead every write it
had not fsynced is dropped (``harness.storage``); the node stays down until ``start`` or a heal, which
starts it on exactly what an fsync made durable. After Jepsen's LazyFS nemesis (``jepsen.lazyfs``): kill,
lose un-fsynced writes, restart. ``disk``: a faulty disk under one node's data directory; operations fail
(EIO, ENOSPC) or are slow, until ``heal: disk`` (or ``heal: all``) clears them.
"""

from __future__ import annotations

import time
from typing import ClassVar

from harness.errors import InfraError, InputError
from harness.faults.base import TargetedFaultKind, parallel
from harness.model.faults import DiskStep, PowerLossStep, StepBase
from harness.model.history import Event
from harness.runtime.run import Node
from harness.runtime.wait import wait_until
from harness.systems.capabilities import Capability

KILL_DEADLINE_S = 30.0


class StorageFaults(TargetedFaultKind):
    steps: ClassVar[tuple[type[StepBase], ...]] = (PowerLossStep, DiskStep)
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.PROCESSES})

    def apply(self, step: StepBase) -> list[Event]:
        assert isinstance(step, PowerLossStep | DiskStep)
        if not self.ctx.system.lazy_storage:
            raise InputError(f"{step.kind}: needs the topology's data on the harness's storage "
                             f"(storage: lazyfs); {self.ctx.run.topology.name} has storage: plain")  # fmt: skip
        nodes = self.targets(step)
        self.forget()
        if isinstance(step, PowerLossStep):
            return [self.power_loss(nodes, step.power_loss.window)]
        fault = step.disk
        at = self.ctx.events.clock.now()
        parallel(lambda n: self.ctx.system.storage(n).disk_fault(fault.kind, list(fault.ops), fault.latency_ms),
                 nodes)  # fmt: skip
        detail = {"kind": fault.kind, "ops": list(fault.ops), **({"latency_ms": fault.latency_ms}
                                                                  if fault.kind == "slow" else {})}  # fmt: skip
        return [self.ctx.events.open("disk", "lazyfs", [n.name for n in nodes], detail, at=at)]

    def power_loss(self, nodes: list[Node], window_s: float = 0.0) -> Event:
        """SIGKILL each node (at a random moment within ``window_s``), then drop its un-fsynced writes."""
        order = list(nodes)
        self.ctx.rng.shuffle(order)
        offsets = sorted(self.ctx.rng.uniform(0, window_s) for _ in order) if window_s else [0.0] * len(order)
        runtime = self.ctx.runtime
        began, at = time.monotonic(), self.ctx.events.clock.now()
        if window_s:
            for node, offset in zip(order, offsets, strict=True):
                delay = began + offset - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # the schedule itself, not synchronisation
                runtime.kill(node.container, "KILL")
        else:
            parallel(lambda n: runtime.kill(n.container, "KILL"), order)
        # Every process must be gone before its data is: nothing may write after the loss.
        wait_until(lambda: not any(runtime.state(n.container).running for n in order), timeout=KILL_DEADLINE_S,
                   interval=0.02, what="the nodes' containers dead after SIGKILL")  # fmt: skip
        dropped = {}
        for node in order:
            try:
                lost = self.ctx.system.storage(node).power_loss()
            except InfraError as exc:
                raise InfraError(f"power_loss: {exc}") from None
            dropped[node.name] = {"files": lost.files, "bytes": lost.bytes}
        detail = {"window_s": window_s, "order": [n.name for n in order], "dropped": dropped}
        return self.ctx.events.open("power-loss", "lazyfs", [n.name for n in order], detail, at=at)

    def heal(self) -> list[Event]:
        """A healthy disk under every node again (faults cleared; a node that died of one is started by
        the process heal). Power losses end when their nodes start."""
        if self.ctx.system.lazy_storage:
            parallel(lambda n: self.ctx.system.storage(n).clear_faults(), list(self.ctx.run.nodes))
        return [self.ctx.events.close(ev) for ev in list(self.ctx.events.open_events.values())
                if ev.name == "disk"]  # fmt: skip
