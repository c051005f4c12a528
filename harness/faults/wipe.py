"""A node lost with its disk: ``wipe``.

The node's container is removed with SIGKILL — its data directory lived in it (or on the harness's storage,
which is emptied) — and a new one is started from the same spec with the image's data directory, as a
replaced machine would come back. The system then re-seeds it the way it does (``ClusterSystem.reseed``:
Galera's state transfer by itself; for MMM and async replication an operator's dump; for RabbitMQ the node
forgotten by a survivor, joined again and the quorum queues grown onto it: those are events of the run by
the harness). With ``return: false`` the node stays away for the rest of the timeline, until the heal, which
brings it back the same way (final reads run on the whole cluster).
"""

from __future__ import annotations

from typing import ClassVar

from harness.faults.base import TargetedFaultKind, parallel
from harness.model.faults import StepBase, WipeStep
from harness.model.history import Event
from harness.runtime.run import Node
from harness.systems.capabilities import Capability


class WipeFaults(TargetedFaultKind):
    steps: ClassVar[tuple[type[StepBase], ...]] = (WipeStep,)
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.PROCESSES, Capability.RESEED})

    def apply(self, step: StepBase) -> list[Event]:
        assert isinstance(step, WipeStep)
        nodes = self.targets(step)
        self.forget()
        system = self.ctx.system
        at = self.ctx.events.clock.now()
        parallel(system.lose_disk, nodes)
        returns = step.wipe.return_
        detail = {"return": returns, "data": "container removed; back with the image's data directory"}
        ev = self.ctx.events.open("wipe", "docker", [n.name for n in nodes], detail, at=at)
        if not returns:
            return [ev]
        self._return(nodes)
        return [self.ctx.events.close(ev)]

    def _return(self, nodes: list[Node]) -> None:
        parallel(self.ctx.system.return_empty, nodes)

    def heal(self) -> list[Event]:
        """Nodes wiped with ``return: false`` come back empty and are re-seeded; their events end."""
        ended = []
        for ev in [e for e in self.ctx.events.open_events.values() if e.name == "wipe"]:
            targets = [ev.target] if isinstance(ev.target, str) else list(ev.target)
            self._return([self.ctx.run.node(t) for t in targets])
            ended.append(self.ctx.events.close(ev))
        return ended
