"""Async replication topologies: ``system: mysql-async`` (a source, replicas, a failover manager)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from harness.model.durations import Duration
from harness.model.topology import StrictModel, TopologyBase
from harness.systems.balancer_pair import BALANCER_HOSTS, ROLE, BalancerSettings


class AsyncSettings(StrictModel):
    """MariaDB GTID replication from one source, failed over by a replication manager.

    The manager's timers are MHA's and orchestrator's kind (MHA: ``ping_interval`` 3 s, four failures; test
    topologies shorten them). ``semi_sync`` turns on MariaDB's built-in semi-synchronous replication: a
    commit waits (AFTER_SYNC) until a replica has the transaction in its relay log, or for
    ``semi_sync_timeout``, after which the source carries on asynchronously until a replica catches up.
    """

    check_period: Duration = 1.0
    failover_after: Duration = Field(
        default=3.0, description="the source's checks kept failing this long: the manager fails it over"
    )
    apply_timeout: Duration = Field(
        default=5.0, description="a promotion first applies the relay log for at most this long"
    )
    check_timeout: Duration = 1.0
    semi_sync: bool = False
    semi_sync_timeout: Duration = 10.0
    buffer_pool_size: str = Field(default="128M", pattern=r"^\d+[KMG]?$")
    balancer: BalancerSettings = Field(
        default_factory=BalancerSettings, description="the frontends: one HAProxy or a pair"
    )

    @field_validator("check_period", "failover_after", "apply_timeout", "check_timeout", "semi_sync_timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be > 0, got {value:g}s")
        return value


class AsyncTopology(TopologyBase):
    """One MariaDB source and ``nodes - 1`` replicas (n1 is the first source)."""

    system: Literal["mysql-async"]
    settings: AsyncSettings = AsyncSettings()

    @field_validator("nodes")
    @classmethod
    def _source_and_replicas(cls, value: int) -> int:
        if value < 2:
            raise ValueError(f"mysql-async needs a source and at least one replica (2 or more), got {value}")
        return value

    @property
    def helper_target_names(self) -> list[str]:
        """A balancer pair's: ``lb1``, ``lb2`` and ``balancer`` (whichever holds the address then)."""
        return [*BALANCER_HOSTS, ROLE] if self.settings.balancer.pair else []
