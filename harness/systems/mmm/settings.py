"""MMM topologies: ``system: mmm`` (two masters) and the monitor's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from harness.model.durations import Duration
from harness.model.topology import StrictModel, TopologyBase
from harness.systems.balancer_pair import BALANCER_HOSTS, ROLE, BalancerSettings


class MmmSettings(StrictModel):
    """MMM-style master-master replication: the monitor's (mmm_mond's) timers and checks.

    Defaults are MMM's where MMM has one; test topologies shorten them. Every check (ping, mysql,
    rep_threads, rep_backlog) runs every ``check_period`` with ``timeout``, and counts as failed once it
    has kept failing for ``trap_period``.
    """

    check_period: Duration = 5.0
    trap_period: Duration = 10.0
    timeout: Duration = 2.0
    max_backlog: Duration = Field(
        default=60.0, description="rep_backlog fails above this Seconds_Behind_Master"
    )
    auto_set_online: Duration = Field(
        default=10.0,
        description="seconds in AWAITING_RECOVERY before a recovered host goes ONLINE on its own (MMM's "
        "default 0 would leave every restarted host to an operator's set_online)",
    )
    rep_grace: Duration = Field(
        default=60.0, description="replication checks are ignored on a host whose peer is ONLINE for less"
    )
    # A host that left ONLINE flap_count times within flap_duration is flapping: not set ONLINE on its own.
    flap_count: int = Field(default=3, ge=1, le=100)
    flap_duration: Duration = 3600.0
    buffer_pool_size: str = Field(default="128M", pattern=r"^\d+[KMG]?$")
    balancer: BalancerSettings = Field(
        default_factory=BalancerSettings, description="the frontends: one HAProxy or a pair"
    )

    @field_validator("check_period", "trap_period", "timeout", "max_backlog", "auto_set_online")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be > 0, got {value:g}s")
        return value


class MmmTopology(TopologyBase):
    """Two MariaDB masters replicating from each other, one writer at a time, managed MMM-style."""

    system: Literal["mmm"]
    settings: MmmSettings = MmmSettings()

    @field_validator("nodes")
    @classmethod
    def _two_masters(cls, value: int) -> int:
        if value != 2:
            raise ValueError(
                f"mmm runs exactly 2 masters (n1, n2); read-only slaves are not supported, got {value}"
            )
        return value

    @property
    def helper_target_names(self) -> list[str]:
        """A balancer pair's: ``lb1``, ``lb2`` and ``balancer`` (whichever holds the address then)."""
        return [*BALANCER_HOSTS, ROLE] if self.settings.balancer.pair else []
