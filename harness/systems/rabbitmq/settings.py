"""RabbitMQ topologies: ``system: rabbitmq`` and its settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.model.durations import Duration
from harness.model.topology import StrictModel, TopologyBase


class Mirroring(StrictModel):
    """The policy that mirrors classic queues (``ha-*`` keys): on which nodes, how a new mirror syncs, and
    whether an unsynchronised mirror may be promoted when the master stops or fails."""

    mode: Literal["all", "exactly", "nodes"] = "all"
    count: int | None = Field(
        default=None, ge=1, le=9, description="exactly: how many copies (master included)"
    )
    nodes: list[str] | None = Field(default=None, min_length=1, description="nodes: the nodes holding a copy")
    sync_mode: Literal["automatic", "manual"] = "automatic"
    promote_on_shutdown: Literal["when-synced", "always"] = "when-synced"
    promote_on_failure: Literal["always", "when-synced"] = "always"

    @model_validator(mode="after")
    def _params_fit_mode(self) -> Mirroring:
        if (self.mode == "exactly") != (self.count is not None):
            raise ValueError("count is for mode exactly, and mode exactly needs it")
        if (self.mode == "nodes") != (self.nodes is not None):
            raise ValueError("nodes is for mode nodes, and mode nodes needs it")
        return self

    def policy(self) -> dict[str, object]:
        """The policy definition ``rabbitmqctl set_policy`` takes."""
        definition: dict[str, object] = {"ha-mode": self.mode}
        if self.mode == "exactly":
            definition["ha-params"] = self.count
        elif self.mode == "nodes":
            definition["ha-params"] = [f"rabbit@{n}" for n in self.nodes or []]
        return definition | {"ha-sync-mode": self.sync_mode, "ha-promote-on-shutdown": self.promote_on_shutdown,
                             "ha-promote-on-failure": self.promote_on_failure}  # fmt: skip


class RabbitSettings(StrictModel):
    """RabbitMQ cluster settings."""

    queue_type: Literal["quorum", "classic-mirrored"] = "quorum"
    mirroring: Mirroring = Field(default_factory=Mirroring, description="classic-mirrored: the ha-* policy")
    quorum_size: int | None = Field(
        default=None, ge=1, le=9, description="quorum: members of the queue (x-quorum-initial-group-size)"
    )
    partition_handling: Literal["ignore", "pause_minority", "autoheal", "pause_if_all_down"] = (
        "pause_minority"
    )
    net_ticktime: int = Field(default=60, ge=1, le=600, description="Erlang distribution tick, seconds")
    autoheal_grace: Duration = Field(
        default=20.0,
        description="autoheal, pause_minority, pause_if_all_down: how long RabbitMQ gets to merge the "
        "cluster by itself after a heal before the harness does what an operator would (restart the "
        "losing side's app), and says so",
    )


class RabbitTopology(TopologyBase):
    system: Literal["rabbitmq"]
    settings: RabbitSettings = RabbitSettings()

    @model_validator(mode="after")
    def _queue_settings_fit(self) -> RabbitTopology:
        s = self.settings
        if s.queue_type == "quorum" and s.mirroring != Mirroring():
            raise ValueError("settings.mirroring is for queue_type classic-mirrored")
        if s.queue_type == "classic-mirrored" and s.quorum_size is not None:
            raise ValueError("settings.quorum_size is for queue_type quorum")
        for name, size in (("quorum_size", s.quorum_size), ("mirroring.count", s.mirroring.count)):
            if size is not None and size > self.nodes:
                raise ValueError(f"settings.{name}: {size} is more than the {self.nodes} nodes")
        unknown = sorted(set(s.mirroring.nodes or []) - set(self.node_names))
        if unknown:
            raise ValueError(f"settings.mirroring.nodes: unknown node {', '.join(unknown)}, expected one of: "
                             f"{', '.join(self.node_names)}")  # fmt: skip
        return self
