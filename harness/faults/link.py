"""Link faults applied: a typed link fault (``harness.model.faults``) as Toxiproxy toxics on the proxy
of a client → node link, and healed exactly.

``LinkFaults`` applies specs to named links and heals exactly what it applied::

    faults = LinkFaults(client, {"n1": "n1-mysql"})
    applied = faults.apply(Latency(target="n1", latency_ms=200, jitter_ms=20, direction="both"))
    ...
    faults.heal(applied)        # removes the two toxics it added, nothing else; safe to call twice

Kind          toxic (Toxiproxy)  attributes
----          -----------------  ----------
latency       latency            latency (ms), jitter (ms)
bandwidth     bandwidth          rate (KB/s)
timeout       timeout            timeout (ms); 0 = stall: data stops, the connection stays open
stall         timeout            timeout 0 (removing the toxic closes the connections it held)
reset_peer    reset_peer         timeout (ms) before the connection is reset (TCP RST)
slow_close    slow_close         delay (ms) before a close is passed on
slicer        slicer             average_size, size_variation (bytes), delay (µs) between slices
limit_data    limit_data         bytes passed before the connection is closed
down          (none)             the proxy is disabled: listener closed, open connections dropped

Direction: "upstream" is client → server, "downstream" is server → client, "both" adds one toxic per
stream (so latency 200 ms in both directions adds about 400 ms to a request/response round trip).
Toxicity (0..1) is the probability that a toxic applies to a given connection.

Every toxic the harness adds is named ``hh-<kind>-<n>-<stream>``; ``heal_all()`` removes every toxic with
the ``hh-`` prefix from the mapped proxies and re-enables them, which is the baseline restore to run in
both setup and teardown.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.errors import InputError
from harness.faults.base import FaultContext, FaultKind
from harness.model.faults import (
    ROLE_TARGETS,
    Down,
    LinkFault,
    LinkFaultBase,
    LinkStep,
    StepBase,
    ToxicFault,
    parse_step,
)
from harness.model.history import Event
from harness.runtime.proxies import client as toxiproxy_client
from harness.runtime.toxiproxy import (
    Proxy,
    Stream,
    Toxic,
    ToxiproxyClient,
    ToxiproxyError,
    ToxiproxyNotFound,
)

__all__ = [
    "HARNESS_TOXIC_PREFIX",
    "AppliedLinkFault",
    "LinkFaultKind",
    "LinkFaults",
    "LinkHeal",
    "link_fault_from_dict",
    "toxic_name",
    "toxics_for",
]

HARNESS_TOXIC_PREFIX = "hh-"
MECHANISM = "toxiproxy"


def link_fault_from_dict(doc: Mapping[str, Any]) -> LinkFault:
    """A typed link fault from a plain mapping such as ``{"target": "n1", "kind": "latency",
    "latency_ms": 200}``; InputError (one line per problem) for an unknown kind or field, a missing field
    or a bad value."""
    step = parse_step({"link": dict(doc)}, where="")
    assert isinstance(step, LinkStep)
    return step.link  # type: ignore[no-any-return]


def toxic_name(kind: str, n: int, stream: Stream) -> str:
    return f"{HARNESS_TOXIC_PREFIX}{kind}-{n}-{stream}"


def toxics_for(spec: LinkFaultBase, n: int) -> tuple[Toxic, ...]:
    """The toxics that realise `spec` (one per stream), named `hh-<kind>-<n>-<stream>`. Pure.

    `Down` is not a toxic, so it gives none.
    """
    if not isinstance(spec, ToxicFault):
        return ()
    attributes: dict[str, int | float | str | bool] = dict(spec.attributes())
    return tuple(
        Toxic(
            name=toxic_name(spec.kind, n, stream),
            type=spec.toxic_type,
            stream=stream,
            toxicity=float(spec.toxicity),
            attributes=dict(attributes),
        )
        for stream in spec.streams
    )


# ---------------------------------------------------------------------------------------------- apply / heal


@dataclass(frozen=True)
class AppliedLinkFault:
    """What one `apply` changed: the toxics it added and whether it disabled the proxy.

    The fault took effect between `called_ns` (before the first API call) and `acked_ns` (after the server
    acknowledged the last one); both are `time.monotonic_ns()`.
    """

    mechanism: ClassVar[str] = MECHANISM

    link: str
    proxy: str
    spec: LinkFaultBase
    toxics: tuple[str, ...]
    disabled: bool
    called_ns: int
    acked_ns: int


@dataclass(frozen=True)
class LinkHeal:
    """What a heal changed: the (proxy, toxic) pairs it removed and the proxies it re-enabled.

    The fault was gone by `acked_ns`; `called_ns` is before the first API call (`time.monotonic_ns()`).
    """

    mechanism: ClassVar[str] = MECHANISM

    removed: tuple[tuple[str, str], ...]
    reenabled: tuple[str, ...]
    called_ns: int
    acked_ns: int


class LinkFaults:
    """Applies link faults on the proxies of named links and heals exactly what it applied.

    `links` maps a link name (as scenarios name it) to the Toxiproxy proxy name that carries it.
    """

    def __init__(self, client: ToxiproxyClient, links: Mapping[str, str]) -> None:
        self.client = client
        self.links: dict[str, str] = dict(links)
        self._counter = itertools.count(1)
        self._counter_lock = threading.Lock()

    def _next_n(self) -> int:
        with self._counter_lock:
            return next(self._counter)

    def proxy_for(self, link: str) -> str:
        try:
            return self.links[link]
        except KeyError:
            known = ", ".join(sorted(self.links)) or "none"
            raise InputError(f"link: unknown link {link!r}; known links: {known}") from None

    def apply(self, spec: LinkFaultBase) -> AppliedLinkFault:
        """Put ``spec`` on its target link. All or nothing: if the server refuses a toxic, the ones
        already added by this call are removed again before the error is raised."""
        if not isinstance(spec, ToxicFault | Down):
            raise InputError(f"link fault: expected a link fault spec, got {type(spec).__name__}")
        link = spec.target
        proxy = self.proxy_for(link)
        if isinstance(spec, Down):
            called = time.monotonic_ns()
            was_enabled = self.client.get_proxy(proxy).enabled
            if was_enabled:
                self.client.set_enabled(proxy, False)
            acked = time.monotonic_ns()
            return AppliedLinkFault(link, proxy, spec, (), was_enabled, called, acked)

        toxics = toxics_for(spec, self._next_n())
        added: list[str] = []
        called = time.monotonic_ns()
        try:
            for toxic in toxics:
                self.client.add_toxic(proxy, toxic)
                added.append(toxic.name)
        except ToxiproxyError:
            for name in added:
                self._remove_quietly(proxy, name)
            raise
        acked = time.monotonic_ns()
        return AppliedLinkFault(link, proxy, spec, tuple(added), False, called, acked)

    def heal(self, applied: AppliedLinkFault) -> LinkHeal:
        """Undo exactly what `applied` did. Idempotent: a toxic (or proxy) already gone is not an error."""
        called = time.monotonic_ns()
        removed = tuple(
            (applied.proxy, name) for name in applied.toxics if self._remove_quietly(applied.proxy, name)
        )
        reenabled: tuple[str, ...] = ()
        if applied.disabled and self._enable_quietly(applied.proxy):
            reenabled = (applied.proxy,)
        acked = time.monotonic_ns()
        return LinkHeal(removed, reenabled, called, acked)

    def heal_all(self) -> LinkHeal:
        """Restore the baseline on every mapped proxy: remove every harness toxic (`hh-` prefix, whoever
        added it, e.g. a crashed earlier run) and re-enable the proxy. Foreign toxics are left alone;
        proxies that do not exist are skipped."""
        called = time.monotonic_ns()
        removed: list[tuple[str, str]] = []
        reenabled: list[str] = []
        for proxy in dict.fromkeys(self.links.values()):
            try:
                state = self.client.get_proxy(proxy)
                current = self.client.toxics(proxy)
            except ToxiproxyNotFound:
                continue
            for toxic in current:
                if toxic.name.startswith(HARNESS_TOXIC_PREFIX) and self._remove_quietly(proxy, toxic.name):
                    removed.append((proxy, toxic.name))
            if not state.enabled and self._enable_quietly(proxy):
                reenabled.append(proxy)
        acked = time.monotonic_ns()
        return LinkHeal(tuple(removed), tuple(reenabled), called, acked)

    def _remove_quietly(self, proxy: str, name: str) -> bool:
        """Remove a toxic; False if it (or its proxy) was already gone."""
        try:
            self.client.remove_toxic(proxy, name)
        except ToxiproxyNotFound:
            return False
        return True

    def _enable_quietly(self, proxy: str) -> bool:
        try:
            state: Proxy = self.client.set_enabled(proxy, True)
        except ToxiproxyNotFound:
            return False
        return state.enabled


class LinkFaultKind(FaultKind):
    """Link faults on the run's Toxiproxy: a node's main client link, or a link the system adds."""

    steps: ClassVar[tuple[type[StepBase], ...]] = (LinkStep,)

    def __init__(self, ctx: FaultContext) -> None:
        super().__init__(ctx)
        system = ctx.system
        proxies = {link.name: link.name for link in system.links()}
        for part in system.parts():  # a node's main link: its cluster's first service
            if part.services:
                first = next(iter(part.services))
                proxies.update({n.name: f"{n.name}-{first}" for n in part.run.nodes})
        self.faults = LinkFaults(toxiproxy_client(ctx.run), proxies)
        self.applied: list[tuple[AppliedLinkFault, Event]] = []

    def apply(self, step: StepBase) -> list[Event]:
        assert isinstance(step, LinkStep)
        spec: LinkFaultBase = step.link
        named = spec.target
        holder, dash, rest = named.partition("-")
        if holder in ROLE_TARGETS:  # a role's link: which node holds it is known now
            spec = spec.model_copy(update={"target": self.ctx.resolve(holder)[0].name + dash + rest})
        applied = self.faults.apply(spec)
        detail = {"kind": spec.kind, "spec": spec.model_dump(mode="json"), "proxy": applied.proxy,
                  "toxics": list(applied.toxics), **({"named": named} if named != spec.target else {})}  # fmt: skip
        ev = self.ctx.events.open("link", MECHANISM, spec.target, detail)
        self.applied.append((applied, ev))
        return [ev]

    def heal(self) -> list[Event]:
        if self.faults.links:  # a system without client links has no Toxiproxy
            self.faults.heal_all()
        ended = [self.ctx.events.close(ev) for _, ev in self.applied]
        self.applied.clear()
        return ended
