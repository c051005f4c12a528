"""What one kind of fault is: the steps it applies, what it needs of a system, apply and an idempotent heal.

After Jepsen's ``nemesis.clj``: a nemesis declares the ops it handles, ``compose`` routes each op to the
one that handles it and refuses two that claim the same; every heal restores the mechanism's baseline
whatever state a crashed earlier run left, so it is run before a scenario as well as after. Here a
``FaultKind`` handles some step models (``harness.model.faults``); the ``Nemesis`` composes the kinds,
refuses a fault whose (mechanism, target) claim is already held by one in effect, and records events.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Protocol

from harness.errors import InputError
from harness.model.eventlog import EventLog
from harness.model.faults import StepBase
from harness.model.history import Event
from harness.runtime.base import Runtime
from harness.runtime.run import Node, Run
from harness.systems.base import ClusterSystem
from harness.systems.capabilities import Capability


class FaultConflict(InputError):
    """Two faults would act on the same target through the same mechanism at once."""


class FaultContext(Protocol):
    """What a fault kind may use of the nemesis that runs it."""

    system: ClusterSystem
    run: Run
    runtime: Runtime
    rng: random.Random
    events: EventLog

    def resolve(self, target: str | Sequence[str]) -> list[Node]: ...


class FaultKind(ABC):
    steps: ClassVar[tuple[type[StepBase], ...]]  # the step models this kind applies
    requires: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(self, ctx: FaultContext) -> None:
        self.ctx = ctx
        self._resolved: tuple[StepBase, list[Node]] | None = None

    def resolve_once(self, step: StepBase, target: str) -> list[Node]:
        """The nodes ``target`` names for ``step``, resolved once, so that ``claims`` and ``apply`` of one
        step see the same nodes (a ``random`` or ``minority`` target); ``apply`` calls ``forget``."""
        if self._resolved is not None and self._resolved[0] is step:
            return self._resolved[1]
        nodes = self.ctx.resolve(target)
        self._resolved = (step, nodes)
        return nodes

    def forget(self) -> None:
        self._resolved = None

    @abstractmethod
    def apply(self, step: StepBase) -> list[Event]:
        """Put the fault in effect; returns the events it opened (or closed, for a start/resume)."""

    @abstractmethod
    def heal(self) -> list[Event]:
        """Restore this mechanism's baseline, whatever put it off it; idempotent. Returns events ended."""

    def claims(self, step: StepBase) -> set[tuple[str, str]]:
        """(mechanism, target) pairs held while ``step`` is in effect, with targets resolved."""
        return step.claims()

    def requirements(self, step: StepBase) -> frozenset[Capability]:
        """What the system must have for ``step``: the kind's ``requires`` unless a step needs less."""
        return self.requires


class TargetedFaultKind(FaultKind):
    """A kind whose steps each name one ``target`` (a node, a role, ``all``…) and claim (mechanism, node)
    for every node it resolves to; ``claims`` and ``apply`` see the same nodes (``resolve_once``)."""

    def targets(self, step: StepBase) -> list[Node]:
        return self.resolve_once(step, step.target)  # type: ignore[attr-defined]

    def claims(self, step: StepBase) -> set[tuple[str, str]]:
        return {(step.mechanism, n.name) for n in self.targets(step)}  # type: ignore[attr-defined]


def parallel(fn: Callable[[Node], Any], nodes: Sequence[Node]) -> None:
    if not nodes:
        return
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        list(pool.map(fn, nodes))
