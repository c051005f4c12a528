"""Process faults through the runtime: SIGKILL, freezer pause, graceful stop, start, crash-all."""

from __future__ import annotations

import time
from typing import ClassVar

from harness.faults.base import FaultKind, parallel
from harness.model.faults import (
    CrashAllStep,
    KillStep,
    PauseStep,
    ProcessStep,
    RestartStep,
    ResumeStep,
    StartStep,
    StepBase,
    StopStep,
)
from harness.model.history import Event
from harness.runtime.run import Node
from harness.systems.capabilities import Capability

DOWN = ("exited", "created", "dead")


class ProcessFaults(FaultKind):
    steps: ClassVar[tuple[type[StepBase], ...]] = (KillStep, PauseStep, StopStep, ResumeStep, StartStep,
                                                   RestartStep, CrashAllStep)  # fmt: skip
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.PROCESSES})

    def claims(self, step: StepBase) -> set[tuple[str, str]]:
        if isinstance(step, CrashAllStep):
            return {("process", n.name) for n in self.ctx.run.nodes}
        if isinstance(step, KillStep | StopStep | PauseStep):
            return {(step.mechanism, n.name) for n in self.ctx.resolve(step.target)}
        return set()

    def apply(self, step: StepBase) -> list[Event]:
        if isinstance(step, CrashAllStep):
            return [self.crash_all(step.crash_all.window)]
        assert isinstance(step, ProcessStep)
        nodes = self.ctx.resolve(step.target)
        if isinstance(step, KillStep):
            return [self._signal(nodes, "kill", "signal", {"signal": "SIGKILL"},
                                 lambda n: self.ctx.runtime.kill(n.container, "KILL"))]  # fmt: skip
        if isinstance(step, PauseStep):
            return [self._signal(nodes, "pause", "docker", {"freezer": True},
                                 lambda n: self.ctx.runtime.pause(n.container))]  # fmt: skip
        if isinstance(step, StopStep):
            return [self._signal(nodes, "stop", "docker", {"signal": "SIGTERM"},
                                 lambda n: self.ctx.runtime.stop(n.container, timeout=30))]  # fmt: skip
        if isinstance(step, ResumeStep):
            return self.resume(nodes)
        if isinstance(step, StartStep):
            return self.start(nodes, wait=False)
        assert isinstance(step, RestartStep)
        stopped = self._signal(nodes, "stop", "docker", {"signal": "SIGTERM", "restart": True},
                               lambda n: self.ctx.runtime.stop(n.container, timeout=30))  # fmt: skip
        self.start(nodes, wait=True)
        return [stopped]

    def _signal(self, nodes: list[Node], name: str, mechanism: str, detail: dict[str, object],
                act: object) -> Event:  # fmt: skip
        at = self.ctx.events.clock.now()  # the fault acts from the moment the signal goes out
        parallel(act, nodes)  # type: ignore[arg-type]
        return self.ctx.events.open(name, mechanism, [n.name for n in nodes], detail, at=at)

    def crash_all(self, window_s: float) -> Event:
        """SIGKILL every node, each at a random moment within ``window_s`` seconds."""
        nodes = list(self.ctx.run.nodes)
        offsets = sorted(self.ctx.rng.uniform(0, window_s) for _ in nodes)
        self.ctx.rng.shuffle(nodes)
        began, at = time.monotonic(), self.ctx.events.clock.now()
        for node, offset in zip(nodes, offsets, strict=True):
            delay = began + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the schedule itself, not synchronisation
            self.ctx.runtime.kill(node.container, "KILL")
        detail = {"window_s": window_s, "order": [n.name for n in nodes]}
        return self.ctx.events.open("crash-all", "signal", [n.name for n in nodes], detail, at=at)

    def resume(self, nodes: list[Node]) -> list[Event]:
        paused = [n for n in nodes if self.ctx.system.container_state(n) == "paused"]
        parallel(lambda n: self.ctx.runtime.unpause(n.container), paused)
        return self._end({n.name for n in paused}, ("pause",))

    def start(self, nodes: list[Node], *, wait: bool) -> list[Event]:
        """Start stopped/killed nodes; they rejoin (after all crashed: the system's recovery)."""
        down = [n for n in nodes if self.ctx.system.container_state(n) in DOWN]
        if down:
            self.ctx.system.restart_nodes(down)
            if wait:
                self.ctx.system.wait_healthy(self.ctx.run.topology.timeouts.heal)
        return self._end({n.name for n in down}, ("kill", "crash-all", "stop", "power-loss"))

    def _end(self, names: set[str], kinds: tuple[str, ...]) -> list[Event]:
        ended = []
        for ev in list(self.ctx.events.open_events.values()):
            targets = {ev.target} if isinstance(ev.target, str) else set(ev.target)
            if ev.name in kinds and targets & names:
                ended.append(self.ctx.events.close(ev))
        return ended

    def heal(self) -> list[Event]:
        """Every node and helper target (a balancer) resumed and started."""
        nodes = [*self.ctx.run.nodes, *self.ctx.system.helper_targets().values()]
        return self.resume(nodes) + self.start(nodes, wait=False)
