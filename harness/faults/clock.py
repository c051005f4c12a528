"""Clock faults on nodes run under libfaketime (topology ``clock: faketime``, ``harness.runtime.node_clock``).

``bump`` moves a node's wall clock once (like an NTP step); ``drift`` makes it run fast or slow (the
harness moves the offset every ``TICK_S``); ``strobe`` flips it between true time and true + delta every
period (Jepsen's clock strobe). Drift and strobe are driven by a thread of the process that applied them
(a scenario's runner); a heal, or that process's end, stops it, and the heal sets every clock true.
Monotonic clocks are never faked, and the harness measures on the host's, so figures stay true.
"""

from __future__ import annotations

import threading
import time
from typing import ClassVar

from harness.errors import InputError
from harness.faults.base import FaultContext, TargetedFaultKind
from harness.model.faults import ClockStep, StepBase
from harness.model.history import Event
from harness.runtime.node_clock import NodeClock

TICK_S = 0.1  # how often a drifting clock's offset moves


class ClockFaults(TargetedFaultKind):
    steps: ClassVar[tuple[type[StepBase], ...]] = (ClockStep,)

    def __init__(self, ctx: FaultContext) -> None:
        super().__init__(ctx)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def apply(self, step: StepBase) -> list[Event]:
        assert isinstance(step, ClockStep)
        if not self.ctx.system.fake_clock:
            raise InputError(f"clock: needs the topology's nodes under libfaketime (clock: faketime); "
                             f"{self.ctx.run.topology.name} has clock: real")  # fmt: skip
        nodes = self.targets(step)
        self.forget()
        clocks = [self.ctx.system.clock(n) for n in nodes]
        fault = step.clock
        at = self.ctx.events.clock.now()
        if fault.bump is not None:
            for c in clocks:
                c.set_offset(c.offset() + fault.bump)
            detail: dict[str, object] = {"bump_s": fault.bump}
        elif fault.drift is not None:
            self._drive(clocks, lambda elapsed, base: base + fault.drift * elapsed)  # type: ignore[operator]
            detail = {"drift": fault.drift}
        else:
            assert fault.strobe is not None
            delta, period = fault.strobe.delta, fault.strobe.period
            self._drive(clocks, lambda elapsed, base: base + (delta if int(elapsed / period) % 2 == 0 else 0.0),
                        tick=period)  # fmt: skip
            detail = {"strobe_delta_s": delta, "strobe_period_s": period}
        detail["mode"] = fault.mode
        return [self.ctx.events.open("clock", "faketime", [n.name for n in nodes], detail, at=at)]

    def _drive(self, clocks: list[NodeClock], offset: object, tick: float = TICK_S) -> None:
        """Rewrite the clocks' offsets every ``tick`` from ``offset(elapsed_s, base_offset)`` until healed."""
        bases = [c.offset() for c in clocks]
        began = time.monotonic()
        stop = self._stop

        def run() -> None:
            while not stop.is_set():
                elapsed = time.monotonic() - began
                for c, base in zip(clocks, bases, strict=True):
                    c.set_offset(offset(elapsed, base))  # type: ignore[operator]
                stop.wait(tick)

        thread = threading.Thread(target=run, name="clock-fault", daemon=True)
        thread.start()
        self._threads.append(thread)

    def heal(self) -> list[Event]:
        """Stop every drift and strobe, and set every node's clock true again."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads, self._stop = [], threading.Event()
        if self.ctx.system.fake_clock:
            for node in self.ctx.run.nodes:
                self.ctx.system.clock(node).set_offset(0.0)
        return [self.ctx.events.close(ev) for ev in list(self.ctx.events.open_events.values())
                if ev.name == "clock"]  # fmt: skip
