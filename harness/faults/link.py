"""Link faults: typed specs turned into Toxiproxy toxics on the proxy of a client → node link.

A spec is a frozen value, validated when it is built (an invalid one raises `InputError` with a one-line
message, so nothing has changed yet). `LinkFaults` applies specs to named links and heals exactly what it
applied::

    faults = LinkFaults(client, {"client->db1": "db1"})
    applied = faults.apply("client->db1", Latency(200, jitter_ms=20, direction="both"))
    ...
    faults.heal(applied)        # removes the two toxics it added, nothing else; safe to call twice

Kind          toxic (Toxiproxy)  attributes
----          -----------------  ----------
latency       latency            latency (ms), jitter (ms)
bandwidth     bandwidth          rate (KB/s)
timeout       timeout            timeout (ms); 0 = stall: data stops, the connection stays open
                                 (removing the toxic closes the connections it held; see `Timeout`)
reset_peer    reset_peer         timeout (ms) before the connection is reset (TCP RST)
slow_close    slow_close         delay (ms) before a close is passed on
slicer        slicer             average_size, size_variation (bytes), delay (µs) between slices
limit_data    limit_data         bytes passed before the connection is closed
down          (none)             the proxy is disabled: listener closed, open connections dropped

Direction: "upstream" is client → server, "downstream" is server → client, "both" adds one toxic per
stream (so `Latency(200, direction="both")` adds about 400 ms to a request/response round trip).
Toxicity (0..1) is the probability that a toxic applies to a given connection.

Every toxic the harness adds is named `hh-<kind>-<n>-<stream>`; `heal_all()` removes every toxic with the
`hh-` prefix from the mapped proxies and re-enables them, which is the baseline restore to run in both
setup and teardown.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, Literal

from harness.errors import InputError
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
    "LINK_FAULT_KINDS",
    "AppliedLinkFault",
    "Bandwidth",
    "Direction",
    "Down",
    "Latency",
    "LimitData",
    "LinkFaultSpec",
    "LinkFaults",
    "LinkHeal",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "Timeout",
    "ToxicFault",
    "link_fault_from_dict",
    "stall",
    "toxic_name",
    "toxics_for",
]

Direction = Literal["upstream", "downstream", "both"]
HARNESS_TOXIC_PREFIX = "hh-"
MECHANISM = "toxiproxy"

_DIRECTIONS: tuple[Direction, ...] = ("upstream", "downstream", "both")


# ---------------------------------------------------------------------------------------------- specs


def _int_field(kind: str, name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{kind}.{name}: must be an integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{kind}.{name}: must be >= {minimum}, got {value}")


@dataclass(frozen=True, kw_only=True)
class ToxicFault:
    """Base of the link faults that are toxics: a direction and a toxicity, validated on construction."""

    kind: ClassVar[str]
    toxic_type: ClassVar[str]
    # (spec field, toxiproxy attribute, minimum)
    _attrs: ClassVar[tuple[tuple[str, str, int], ...]]

    direction: Direction = "downstream"
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        label = self.kind
        if self.direction not in _DIRECTIONS:
            raise InputError(
                f"{label}.direction: must be one of upstream, downstream, both; got {self.direction!r}"
            )
        t = self.toxicity
        if isinstance(t, bool) or not isinstance(t, int | float) or math.isnan(t) or not 0.0 <= t <= 1.0:
            raise InputError(f"{label}.toxicity: must be a number from 0 to 1, got {t!r}")
        for field_name, _attr, minimum in self._attrs:
            _int_field(label, field_name, getattr(self, field_name), minimum=minimum)
        self._check()

    def _check(self) -> None:
        """Cross-field checks of a subclass (after the per-field ones)."""

    @property
    def streams(self) -> tuple[Stream, ...]:
        if self.direction == "both":
            return ("upstream", "downstream")
        return (self.direction,)

    def attributes(self) -> dict[str, int]:
        """The toxic's attributes, as Toxiproxy names them."""
        return {attr: int(getattr(self, field_name)) for field_name, attr, _minimum in self._attrs}


@dataclass(frozen=True)
class Latency(ToxicFault):
    """Delay every chunk of data by `latency_ms` ± `jitter_ms`."""

    kind: ClassVar[str] = "latency"
    toxic_type: ClassVar[str] = "latency"
    _attrs: ClassVar[tuple[tuple[str, str, int], ...]] = (
        ("latency_ms", "latency", 0),
        ("jitter_ms", "jitter", 0),
    )

    latency_ms: int
    jitter_ms: int = 0


@dataclass(frozen=True)
class Bandwidth(ToxicFault):
    """Limit the link to `rate_kbps` kilobytes per second."""

    kind: ClassVar[str] = "bandwidth"
    toxic_type: ClassVar[str] = "bandwidth"
    _attrs: ClassVar[tuple[tuple[str, str, int], ...]] = (("rate_kbps", "rate", 1),)

    rate_kbps: int


@dataclass(frozen=True)
class Timeout(ToxicFault):
    """Stop all data; close the connection after `timeout_ms`, or never when 0 (a stall).

    Observed with Toxiproxy v2.12: when the toxic is removed (healed), the connections it was holding are
    closed and the data held back is dropped; new connections work normally. So a request caught by a
    downstream stall may have been executed, and its client sees a closed connection: indeterminate.
    """

    kind: ClassVar[str] = "timeout"
    toxic_type: ClassVar[str] = "timeout"
    _attrs: ClassVar[tuple[tuple[str, str, int], ...]] = (("timeout_ms", "timeout", 0),)

    timeout_ms: int = 0


@dataclass(frozen=True)
class ResetPeer(ToxicFault):
    """Reset connections (TCP RST) after `timeout_ms` (0: as soon as data arrives)."""

    kind: ClassVar[str] = "reset_peer"
    toxic_type: ClassVar[str] = "reset_peer"
    _attrs: ClassVar[tuple[tuple[str, str, int], ...]] = (("timeout_ms", "timeout", 0),)

    timeout_ms: int = 0


@dataclass(frozen=True)
class SlowClose(ToxicFault):
    """Delay the close of a connection by `delay_ms`."""

    kind: ClassVar[str] = "slow_close"
    toxic_type: ClassVar[str] = "slow_close"
    _attrs: ClassVar[tuple[tuple[str, str, int], ...]] = (("delay_ms", "delay", 0),)

    delay_ms: int


@dataclass(frozen=True)
class Slicer(ToxicFault):
    """Cut data into slices of about `average_size` ± `size_variation` bytes, `delay_us` apart."""

    kind: ClassVar[str] = "slicer"
    toxic_type: ClassVar[str] = "slicer"
    _attrs: ClassVar[tuple[tuple[str, str, int], ...]] = (
        ("average_size", "average_size", 1),
        ("size_variation", "size_variation", 0),
        ("delay_us", "delay", 0),
    )

    average_size: int
    size_variation: int = 0
    delay_us: int = 0

    def _check(self) -> None:
        if self.size_variation >= self.average_size:
            raise InputError(
                f"slicer.size_variation: must be < average_size ({self.average_size}), "
                f"got {self.size_variation}"
            )


@dataclass(frozen=True)
class LimitData(ToxicFault):
    """Close the connection once `bytes` bytes have passed (per stream)."""

    kind: ClassVar[str] = "limit_data"
    toxic_type: ClassVar[str] = "limit_data"
    _attrs: ClassVar[tuple[tuple[str, str, int], ...]] = (("bytes", "bytes", 0),)

    bytes: int


@dataclass(frozen=True)
class Down:
    """Cut the link: the proxy is disabled, so new connections are refused and open ones are closed."""

    kind: ClassVar[str] = "down"


LinkFaultSpec = Latency | Bandwidth | Timeout | ResetPeer | SlowClose | Slicer | LimitData | Down

LINK_FAULT_KINDS: dict[str, type[LinkFaultSpec]] = {
    cls.kind: cls for cls in (Latency, Bandwidth, Timeout, ResetPeer, SlowClose, Slicer, LimitData, Down)
}
"""kind name → spec class."""


def stall(direction: Direction = "both", toxicity: float = 1.0) -> Timeout:
    """Data stops flowing but the connection stays open, until healed: `Timeout(timeout_ms=0)`.

    Healing closes the stalled connections (see `Timeout`)."""
    return Timeout(0, direction=direction, toxicity=toxicity)


def link_fault_from_dict(doc: Mapping[str, Any]) -> LinkFaultSpec:
    """Build a spec from a plain mapping such as `{"kind": "latency", "latency_ms": 200}`.

    "stall" is accepted as a kind (a `Timeout` with timeout_ms 0). Raises InputError on an unknown kind
    or field, a missing field or a bad value.
    """
    params = dict(doc)
    kind = params.pop("kind", None)
    if kind == "stall":
        if params.get("timeout_ms", 0) != 0:
            raise InputError("stall.timeout_ms: a stall has no timeout; use kind timeout instead")
        params.pop("timeout_ms", None)
        kind = "timeout"
    cls = LINK_FAULT_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InputError(f"kind: must be one of {', '.join([*LINK_FAULT_KINDS, 'stall'])}; got {kind!r}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InputError(
            f"{kind}: unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(known)) or 'none'}"
        )
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in missing if name not in params]
    if missing:
        raise InputError(f"{kind}: missing field(s) {', '.join(missing)}")
    return cls(**params)


def toxic_name(kind: str, n: int, stream: Stream) -> str:
    return f"{HARNESS_TOXIC_PREFIX}{kind}-{n}-{stream}"


def toxics_for(spec: LinkFaultSpec, n: int) -> tuple[Toxic, ...]:
    """The toxics that realise `spec` (one per stream), named `hh-<kind>-<n>-<stream>`. Pure.

    `Down` is not a toxic, so it gives none.
    """
    if isinstance(spec, Down):
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
    spec: LinkFaultSpec
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

    def apply(self, link: str, spec: LinkFaultSpec) -> AppliedLinkFault:
        """Put `spec` on `link`. All or nothing: if the server refuses a toxic, the ones already added
        by this call are removed again before the error is raised."""
        if not isinstance(spec, ToxicFault | Down):
            raise InputError(f"link fault: expected a link fault spec, got {type(spec).__name__}")
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
