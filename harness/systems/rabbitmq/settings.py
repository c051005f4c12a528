"""RabbitMQ topologies: ``system: rabbitmq`` and its settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.model.durations import Duration
from harness.model.topology import StrictModel, TopologyBase


class RabbitSettings(StrictModel):
    """RabbitMQ cluster settings."""

    queue_type: Literal["quorum", "classic-mirrored"] = "quorum"
    partition_handling: Literal["ignore", "pause_minority", "autoheal", "pause_if_all_down"] = (
        "pause_minority"
    )
    net_ticktime: int = Field(default=60, ge=1, le=600, description="Erlang distribution tick, seconds")
    autoheal_grace: Duration = Field(
        default=20.0,
        description="autoheal: how long RabbitMQ gets to merge the cluster by itself after a heal before "
        "the harness does what an operator would (restart the losing side's app), and says so",
    )


class RabbitTopology(TopologyBase):
    system: Literal["rabbitmq"]
    settings: RabbitSettings = RabbitSettings()
