"""Every timeline step and every fault as a typed model, parsed once (scenario files, the CLI, schedules).

A scenario step is written with exactly one key, the step's kind::

    - wait: 10s
    - partition: {isolate: primary}          # or {shape: halves} / {groups: [[n1], [n2, n3]]}
    - partition: {one_way: {from: n1, to: n2}}
    - link: {target: n1, kind: latency, latency_ms: 300, jitter_ms: 50}
    - kill: primary                          # pause / resume / stop / start / restart likewise
    - crash_all: {window: 1s}
    - power_loss: all                        # or {target: n1, window: 1s}; needs storage: lazyfs
    - wipe: n1                               # its disk replaced: back empty, re-seeded; or
                                             # {target: n1, return: false}: down until the heal
    - disk: {target: n2, kind: eio, ops: [fsync]}   # eio / enospc / slow (latency_ms); storage: lazyfs
    - clock: {target: n1, bump: -30s}        # or drift: 0.01 / strobe: {delta: 5s, period: 200ms};
                                             # needs clock: faketime
    - heal: all                              # or partition / links / disk / clock

``Step`` is the discriminated union of those (the key present picks the model). Each step model says
what it is with ``kind`` and, for faults, which mechanism and targets it claims (``claims``), so composing
two that act on the same target through the same mechanism at once can be refused before anything runs.
Targets are names here (a node, a role such as ``primary``, ``all``…); which node a role means is known
only on the running cluster, and whether a name exists only against a topology (``harness.plan``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    TypeAdapter,
    field_validator,
    model_validator,
)

from harness.model.durations import Duration
from harness.model.topology import StrictModel

MAX_STEP_S = 24 * 3600.0
ROLE_TARGETS = ("primary", "leader", "writer")
GROUP_TARGETS = ("all", "random", "minority")
PARAMETERLESS_SHAPES = ("halves", "random_halves", "majorities_ring", "bridge")


def _at_most_a_day(seconds: float) -> float:
    if seconds > MAX_STEP_S:
        raise ValueError(f"must be at most 24h ({MAX_STEP_S:.0f}s), got {seconds:.0f}s")
    return seconds


StepDuration = Annotated[Duration, AfterValidator(_at_most_a_day)]
Target = Annotated[str, Field(min_length=1, pattern=r"^\S+$")]
Claim = tuple[str, str]  # (mechanism, target): two faults in effect at once may not share one


def _tagged(field: str, models: dict[str, Any], what: str) -> Any:
    """A union of ``models`` told apart by ``field`` (a key present, or the value of ``kind``).

    Tags are written ``field=value`` so that error locations can drop them (``model.loading``)."""

    def tag(value: Any) -> str | None:
        if isinstance(value, dict):
            if field == "key":
                present = [k for k in value if k in models]
                return f"key={present[0]}" if len(present) == 1 else None
            kind = value.get(field)
            return f"{field}={kind}" if kind in models else None
        for name, model in models.items():
            if isinstance(value, model):
                return f"{field}={name}" if field != "key" else f"key={name}"
        return None

    choices = tuple(Annotated[model, Tag(f"{field}={name}")] for name, model in models.items())
    expected = ", ".join(models)
    return Annotated[
        Union[choices],  # noqa: UP007 - built at run time
        Discriminator(tag, custom_error_type="union_tag", custom_error_message=f"{what}: {expected}"),
    ]


# ------------------------------------------------------------------------------------------ link faults
Direction = Literal["upstream", "downstream", "both"]


class LinkFaultBase(StrictModel):
    """A fault on a proxied client–server link (a Toxiproxy proxy), named by ``target``."""

    kind: str
    target: Target = Field(description="a node (its main client link) or a link name such as n2-repl")

    @property
    def streams(self) -> tuple[Literal["upstream", "downstream"], ...]:
        return ()

    def attributes(self) -> dict[str, int]:
        return {}


class ToxicFault(LinkFaultBase):
    """A link fault realised by one Toxiproxy toxic per stream."""

    toxic_type: ClassVar[str]
    # (spec field, Toxiproxy attribute)
    toxic_attrs: ClassVar[tuple[tuple[str, str], ...]] = ()

    direction: Direction = "downstream"
    toxicity: float = Field(default=1.0, ge=0.0, le=1.0)

    @field_validator("toxicity")
    @classmethod
    def _finite(cls, value: float) -> float:
        if math.isnan(value):
            raise ValueError("must be a number from 0 to 1")
        return value

    @property
    def streams(self) -> tuple[Literal["upstream", "downstream"], ...]:
        return ("upstream", "downstream") if self.direction == "both" else (self.direction,)

    def attributes(self) -> dict[str, int]:
        return {attr: int(getattr(self, name)) for name, attr in self.toxic_attrs}


class Latency(ToxicFault):
    """Delay every chunk of data by ``latency_ms`` ± ``jitter_ms``."""

    toxic_type: ClassVar[str] = "latency"
    toxic_attrs: ClassVar[tuple[tuple[str, str], ...]] = (("latency_ms", "latency"), ("jitter_ms", "jitter"))
    kind: Literal["latency"] = "latency"
    latency_ms: int = Field(ge=0, le=3_600_000)
    jitter_ms: int = Field(default=0, ge=0, le=3_600_000)


class Bandwidth(ToxicFault):
    """Limit the link to ``rate_kbps`` kilobytes per second."""

    toxic_type: ClassVar[str] = "bandwidth"
    toxic_attrs: ClassVar[tuple[tuple[str, str], ...]] = (("rate_kbps", "rate"),)
    kind: Literal["bandwidth"] = "bandwidth"
    rate_kbps: int = Field(ge=1)


class Timeout(ToxicFault):
    """Stop all data; close the connection after ``timeout_ms``, or never when 0 (a stall).

    Observed with Toxiproxy v2.12: when the toxic is removed (healed), the connections it was holding are
    closed and the data held back is dropped; new connections work normally. So a request caught by a
    downstream stall may have been executed, and its client sees a closed connection: indeterminate.
    """

    toxic_type: ClassVar[str] = "timeout"
    toxic_attrs: ClassVar[tuple[tuple[str, str], ...]] = (("timeout_ms", "timeout"),)
    kind: Literal["timeout"] = "timeout"
    timeout_ms: int = Field(default=0, ge=0, le=3_600_000)


class Stall(ToxicFault):
    """Data stops flowing but connections stay open, until healed (a ``timeout`` toxic of 0 ms)."""

    toxic_type: ClassVar[str] = "timeout"
    kind: Literal["stall"] = "stall"
    direction: Direction = "both"

    def attributes(self) -> dict[str, int]:
        return {"timeout": 0}


class ResetPeer(ToxicFault):
    """Reset connections (TCP RST) after ``timeout_ms`` (0: as soon as data arrives)."""

    toxic_type: ClassVar[str] = "reset_peer"
    toxic_attrs: ClassVar[tuple[tuple[str, str], ...]] = (("timeout_ms", "timeout"),)
    kind: Literal["reset_peer"] = "reset_peer"
    timeout_ms: int = Field(default=0, ge=0, le=3_600_000)


class SlowClose(ToxicFault):
    """Delay the close of a connection by ``delay_ms``."""

    toxic_type: ClassVar[str] = "slow_close"
    toxic_attrs: ClassVar[tuple[tuple[str, str], ...]] = (("delay_ms", "delay"),)
    kind: Literal["slow_close"] = "slow_close"
    delay_ms: int = Field(ge=0, le=3_600_000)


class Slicer(ToxicFault):
    """Cut data into slices of about ``average_size`` ± ``size_variation`` bytes, ``delay_us`` apart."""

    toxic_type: ClassVar[str] = "slicer"
    toxic_attrs: ClassVar[tuple[tuple[str, str], ...]] = (
        ("average_size", "average_size"),
        ("size_variation", "size_variation"),
        ("delay_us", "delay"),
    )
    kind: Literal["slicer"] = "slicer"
    average_size: int = Field(ge=1)
    size_variation: int = Field(default=0, ge=0)
    delay_us: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _variation_below_size(self) -> Slicer:
        if self.size_variation >= self.average_size:
            raise ValueError(
                f"size_variation must be < average_size ({self.average_size}), got {self.size_variation}"
            )
        return self


class LimitData(ToxicFault):
    """Close the connection once ``bytes`` bytes have passed (per stream)."""

    toxic_type: ClassVar[str] = "limit_data"
    toxic_attrs: ClassVar[tuple[tuple[str, str], ...]] = (("bytes", "bytes"),)
    kind: Literal["limit_data"] = "limit_data"
    bytes: int = Field(ge=0)


class Down(LinkFaultBase):
    """Cut the link: the proxy is disabled, so new connections are refused and open ones are closed."""

    kind: Literal["down"] = "down"


LINK_FAULTS: dict[str, type[LinkFaultBase]] = {
    cls.model_fields["kind"].default: cls
    for cls in (Latency, Bandwidth, Timeout, Stall, ResetPeer, SlowClose, Slicer, LimitData, Down)
}
LinkFault = Latency | Bandwidth | Timeout | Stall | ResetPeer | SlowClose | Slicer | LimitData | Down
if TYPE_CHECKING:
    LinkFaultField = LinkFault
else:
    LinkFaultField = _tagged("kind", LINK_FAULTS, "kind: expected one of")


# ------------------------------------------------------------------------------------------ partitions
class Isolate(StrictModel):
    isolate: Target


class Shape(StrictModel):
    shape: Literal["halves", "random_halves", "majorities_ring", "bridge"]


class Groups(StrictModel):
    groups: list[list[Target]] = Field(min_length=2)


class Edge(StrictModel):
    from_: Target = Field(alias="from")
    to: Target | list[Target]

    model_config = StrictModel.model_config | {"populate_by_name": True}


class OneWay(StrictModel):
    one_way: Edge


if TYPE_CHECKING:
    PartitionShape = Isolate | Shape | Groups | OneWay
else:
    PartitionShape = _tagged("key", {"isolate": Isolate, "shape": Shape, "groups": Groups, "one_way": OneWay},
                             "a partition has exactly one of")  # fmt: skip


# ------------------------------------------------------------------------------------------ steps
class StepBase(StrictModel):
    kind: ClassVar[str]

    def claims(self) -> set[Claim]:
        """(mechanism, target) pairs this step holds while it is in effect (none for a non-fault)."""
        return set()


class WaitStep(StepBase):
    kind: ClassVar[str] = "wait"
    wait: StepDuration


class HealStep(StepBase):
    kind: ClassVar[str] = "heal"
    heal: Literal["all", "partition", "links", "disk", "clock"]


class PartitionStep(StepBase):
    kind: ClassVar[str] = "partition"
    partition: PartitionShape

    def claims(self) -> set[Claim]:
        return {("iptables", "peer-mesh")}  # the harness owns each node's whole filter table

    @property
    def isolated(self) -> str | None:
        """The target an ``isolate`` partition cuts off (a node, a role, a balancer); None for other shapes."""
        return self.partition.isolate if isinstance(self.partition, Isolate) else None

    def shape_and_params(self) -> tuple[str, dict[str, Any]]:
        """The shape name and its keyword parameters (``harness.faults.partition.plan``)."""
        p = self.partition
        if isinstance(p, Isolate):
            return "isolate", {"node": p.isolate}
        if isinstance(p, Shape):
            return p.shape, {}
        if isinstance(p, Groups):
            return "groups", {"groups": [list(g) for g in p.groups]}
        assert isinstance(p, OneWay)
        return "one_way", {"src": p.one_way.from_, "dst": p.one_way.to}


class LinkStep(StepBase):
    kind: ClassVar[str] = "link"
    link: LinkFaultField

    def claims(self) -> set[Claim]:
        fault: LinkFaultBase = self.link
        return {(f"toxiproxy:{fault.kind}", fault.target)}


class ProcessStep(StepBase):
    """kill / pause / stop / restart start a process fault on a target; resume / start end them."""

    action: ClassVar[str]
    mechanism: ClassVar[str]

    @property
    def target(self) -> str:
        return str(getattr(self, self.kind))

    def claims(self) -> set[Claim]:
        return {(self.mechanism, self.target)} if self.kind in ("kill", "pause", "stop") else set()


class KillStep(ProcessStep):
    kind: ClassVar[str] = "kill"
    mechanism: ClassVar[str] = "process"
    kill: Target


class PauseStep(ProcessStep):
    kind: ClassVar[str] = "pause"
    mechanism: ClassVar[str] = "freezer"
    pause: Target


class StopStep(ProcessStep):
    kind: ClassVar[str] = "stop"
    mechanism: ClassVar[str] = "process"
    stop: Target


class ResumeStep(ProcessStep):
    kind: ClassVar[str] = "resume"
    mechanism: ClassVar[str] = "freezer"
    resume: Target = "all"


class StartStep(ProcessStep):
    kind: ClassVar[str] = "start"
    mechanism: ClassVar[str] = "process"
    start: Target = "all"


class RestartStep(ProcessStep):
    kind: ClassVar[str] = "restart"
    mechanism: ClassVar[str] = "process"
    restart: Target


class CrashAllOptions(StrictModel):
    window: StepDuration = 0.0


class CrashAllStep(StepBase):
    kind: ClassVar[str] = "crash_all"
    crash_all: CrashAllOptions = CrashAllOptions()

    @field_validator("crash_all", mode="before")
    @classmethod
    def _empty(cls, value: Any) -> Any:
        return {} if value is None else value  # `- crash_all:` with nothing after it

    def claims(self) -> set[Claim]:
        return {("process", "all")}


# ------------------------------------------------------------------------------------------ storage
class PowerLossOptions(StrictModel):
    target: Target = Field(description="a node, a role, all, random or minority")
    window: StepDuration = Field(default=0.0, description="each node loses power within this window")


class PowerLossStep(StepBase):
    """The machine loses power: its process dies (SIGKILL) and every write it did not fsync is gone
    (the storage layer, topology ``storage: lazyfs``). The node stays down until ``start`` or a heal."""

    kind: ClassVar[str] = "power_loss"
    mechanism: ClassVar[str] = "process"
    power_loss: PowerLossOptions

    @field_validator("power_loss", mode="before")
    @classmethod
    def _target_alone(cls, value: Any) -> Any:
        return {"target": value} if isinstance(value, str) else value  # `power_loss: all`

    @property
    def target(self) -> str:
        return self.power_loss.target

    def claims(self) -> set[Claim]:
        return {(self.mechanism, self.target)}


class WipeOptions(StrictModel):
    target: Target = Field(description="a node or a role")
    return_: bool = Field(default=True, alias="return",
                          description="back at once (empty, re-seeded); false: down until `heal: all`")  # fmt: skip

    model_config = StrictModel.model_config | {"populate_by_name": True}


class WipeStep(StepBase):
    """A node lost with its disk: killed, its data directory gone; it returns with the image's empty one
    and is re-seeded the way the system does it (Galera's state transfer, an operator's dump for MMM and
    async replication, forget/join/grow for RabbitMQ), at once or, with ``return: false``, at the heal."""

    kind: ClassVar[str] = "wipe"
    mechanism: ClassVar[str] = "process"
    wipe: WipeOptions

    @field_validator("wipe", mode="before")
    @classmethod
    def _target_alone(cls, value: Any) -> Any:
        return {"target": value} if isinstance(value, str) else value  # `wipe: n1`

    @property
    def target(self) -> str:
        return self.wipe.target

    def claims(self) -> set[Claim]:
        return {(self.mechanism, self.target)}


DiskOp = Literal["write", "fsync", "read", "create"]  # harness.storage.lazyfs.FAULT_OPS


class DiskFault(StrictModel):
    """A faulty disk under one node's data directory: operations fail (eio, enospc) or are slow."""

    target: Target = Field(description="a node, a role, all, random or minority")
    kind: Literal["eio", "enospc", "slow"]
    ops: list[DiskOp] = Field(default=["write", "fsync"], min_length=1)
    latency_ms: int = Field(default=0, ge=0, le=3_600_000)

    @model_validator(mode="after")
    def _latency_for_slow(self) -> DiskFault:
        if self.kind == "slow" and self.latency_ms <= 0:
            raise ValueError("a slow disk needs latency_ms > 0")
        if self.kind != "slow" and self.latency_ms:
            raise ValueError(f"latency_ms is for kind slow only, not {self.kind}")
        return self


class DiskStep(StepBase):
    kind: ClassVar[str] = "disk"
    mechanism: ClassVar[str] = "disk"
    disk: DiskFault

    @property
    def target(self) -> str:
        return self.disk.target

    def claims(self) -> set[Claim]:
        return {(self.mechanism, self.target)}


# ------------------------------------------------------------------------------------------ clocks
def _signed_seconds(value: Any) -> float:
    """``-30s``, ``+1.5s``, ``500ms``, ``-2m`` or a number of seconds, either sign; ValueError otherwise."""
    from harness.model.durations import parse_duration

    if isinstance(value, str) and value.strip()[:1] in "+-":
        text = value.strip()
        sign = -1.0 if text[0] == "-" else 1.0
        seconds = sign * parse_duration(text[1:])
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = parse_duration(value)
    if abs(seconds) > 10 * 365 * 86400:
        raise ValueError(f"must be within 10 years, got {value!r}")
    return seconds


def _format_signed(seconds: float) -> str:
    from harness.model.durations import format_duration

    return ("-" if seconds < 0 else "+") + format_duration(abs(seconds))


SignedDuration = Annotated[float, BeforeValidator(_signed_seconds), PlainSerializer(_format_signed)]


class Strobe(StrictModel):
    delta: SignedDuration = Field(description="the clock flips between true time and true time + delta")
    period: StepDuration = Field(description="how long each of the two readings holds")

    @field_validator("period")
    @classmethod
    def _period(cls, value: float) -> float:
        if value < 0.01:
            raise ValueError(f"must be at least 10ms, got {value * 1000:g}ms")
        return value


class ClockFault(StrictModel):
    """A node's wall clock lies (topology ``clock: faketime``): it jumps by ``bump`` once, runs ``drift``
    seconds fast (negative: slow) per true second, or ``strobe``s between true time and true + delta; until
    ``heal: clock`` (or ``heal: all``) sets it true again."""

    target: Target = Field(description="a node, a role, all, random or minority")
    bump: SignedDuration | None = None
    drift: float | None = Field(default=None, ge=-0.99, le=100.0)
    strobe: Strobe | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ClockFault:
        given = [k for k in ("bump", "drift", "strobe") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of bump, drift, strobe (got {', '.join(given) or 'none'})")
        return self

    @property
    def mode(self) -> str:
        return "bump" if self.bump is not None else "drift" if self.drift is not None else "strobe"


class ClockStep(StepBase):
    kind: ClassVar[str] = "clock"
    mechanism: ClassVar[str] = "clock"
    clock: ClockFault

    @property
    def target(self) -> str:
        return self.clock.target

    def claims(self) -> set[Claim]:
        return {(self.mechanism, self.target)}


STEPS: dict[str, type[StepBase]] = {
    cls.kind: cls
    for cls in (
        WaitStep,
        PartitionStep,
        HealStep,
        KillStep,
        PauseStep,
        ResumeStep,
        StopStep,
        StartStep,
        RestartStep,
        CrashAllStep,
        LinkStep,
        PowerLossStep,
        DiskStep,
        ClockStep,
        WipeStep,
    )
}
Step = _tagged("key", STEPS, "a step has exactly one of")
STEP_ADAPTER: TypeAdapter[StepBase] = TypeAdapter(Step)


def step_to_yaml(step: StepBase) -> dict[str, Any]:
    """The plain mapping a scenario file holds for ``step`` (round-trips through ``STEP_ADAPTER``)."""
    return step.model_dump(mode="json", by_alias=True, exclude_none=isinstance(step, ClockStep))


def parse_step(doc: dict[str, Any], where: str = "step") -> StepBase:
    """A step model from a plain mapping (the CLI's flags, a generated schedule); InputError with one line
    per problem, ``where.field: message``."""
    from pydantic import ValidationError

    from harness.errors import InputError

    try:
        return STEP_ADAPTER.validate_python(doc)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            loc = [str(p) for p in error["loc"] if "=" not in str(p)]
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field"
            field = ".".join(p for p in [where, *loc] if p) or "step"
            lines.append(f"{field}: {message[0].lower()}{message[1:]}")
        raise InputError("\n".join(lines)) from None
