"""Topology specs: what every topology has (name, node count, image, timeouts); systems add settings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from harness.model.durations import Duration
from harness.model.guarantees import validate_expect

MAX_NODES = 9


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageSpec(StrictModel):
    """``offline``: the node image built here from Debian packages; ``upstream``: an official image."""

    profile: Literal["offline", "upstream"] = "offline"
    name: str | None = Field(default=None, description="upstream image reference, e.g. rabbitmq:3.13")

    @model_validator(mode="after")
    def _name_for_upstream(self) -> ImageSpec:
        if self.profile == "upstream" and not self.name:
            raise ValueError("profile upstream needs a name, e.g. percona/percona-xtradb-cluster:8.0")
        if self.profile == "offline" and self.name:
            raise ValueError("profile offline takes no name (the image is built by `harness images build`)")
        return self


class Timeouts(StrictModel):
    """Deadlines: cluster start-up, one client operation, a client connect, recovery after heal."""

    startup: Duration = 120.0
    op: Duration = 5.0
    connect: Duration = 3.0
    heal: Duration = 90.0


class TopologyBase(StrictModel):
    """What every topology has; each system package subclasses it with ``system: Literal[...]`` and its
    settings (the union of them is built from the registry, ``harness.systems.registry``)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$", description="lower-case letters, digits and dashes")
    nodes: int = Field(ge=1, le=MAX_NODES)
    image: ImageSpec = ImageSpec()
    timeouts: Timeouts = Timeouts()
    description: str = ""
    system: str  # the system package's name; each subclass narrows it to its Literal
    # ``lazyfs``: each node's data directory sits on the harness's LazyFS-semantics mount
    # (``harness.storage``), which power_loss and disk faults need; ``plain``: the container's own layer.
    storage: Literal["plain", "lazyfs"] = Field(
        default="plain", description="plain, or lazyfs: data on a mount that can lose power and fail"
    )
    # ``faketime``: every node runs under libfaketime (``harness.runtime.node_clock``), which clock faults
    # need; ``real``: the host's clock.
    clock: Literal["real", "faketime"] = Field(
        default="real", description="real, or faketime: node wall clocks the harness can move"
    )
    # guarantee -> bound (``harness.checkers.guarantees``): the defaults of every scenario run on it
    expect: dict[str, Any] = Field(default_factory=dict, description="bounds on the checkers' figures")

    # K of the first node, nK: 1, except for a part of a composite topology, whose broker's nodes follow
    # its database's (n4-n6 after n1-n3): set by the composite on every validation, never stored
    _first_node: int = PrivateAttr(default=1)

    @field_validator("expect")
    @classmethod
    def _known_guarantees(cls, value: dict[str, Any]) -> dict[str, Any]:
        return validate_expect(value, sections=False)  # type: ignore[no-any-return]

    @property
    def node_names(self) -> list[str]:
        return [f"n{i}" for i in range(self._first_node, self._first_node + self.nodes)]

    @property
    def data_node_names(self) -> list[str]:
        """The nodes that hold the data and serve clients: all of them, but for an arbitrator (garbd)."""
        return self.node_names

    @property
    def helper_target_names(self) -> list[str]:
        """Containers beside the nodes that faults may also target by name (a balancer pair's), and the
        roles among them; none by default."""
        return []

    def parts(self) -> list[TopologyBase]:
        """The clusters of the topology: itself, or each of a composite's (a database and a broker)."""
        return [self]
