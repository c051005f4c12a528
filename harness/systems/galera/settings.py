"""Galera topologies: ``system: galera`` and its settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.model.durations import Duration
from harness.model.topology import StrictModel, TopologyBase
from harness.systems.balancer_pair import BALANCER_HOSTS, ROLE, BalancerSettings


class GaleraSettings(StrictModel):
    """Galera (MariaDB + galera-4, the replication of Percona XtraDB Cluster) settings."""

    sst_method: Literal["rsync", "mariabackup"] = "rsync"
    # Failure detection (gcomm EVS); defaults are Galera's, test topologies shorten them.
    keepalive_period: Duration = 1.0
    inactive_check_period: Duration = 0.5
    suspect_timeout: Duration = 5.0
    inactive_timeout: Duration = 15.0
    install_timeout: Duration = 7.5
    buffer_pool_size: str = Field(default="128M", pattern=r"^\d+[KMG]?$")
    flush_log_at_trx_commit: Literal[0, 1, 2] = 1
    # seconds between the redo log's fsyncs under flush 0 and 2 (innodb_flush_log_at_timeout)
    flush_log_at_timeout: int = Field(default=1, ge=1, le=2700)
    # Galera variants: an arbitrator, node weights in the quorum vote, causal reads for every session
    arbitrator: bool = Field(
        default=False,
        description="the last node runs garbd (galera-arbitrator-4): it votes in the quorum, holds no data "
        "and serves no clients",
    )
    weights: dict[str, int] = Field(
        default_factory=dict,
        description="node -> its weight in the quorum vote (pc.weight, 0-255; default 1)",
    )
    sync_wait: int = Field(
        default=0,
        ge=0,
        le=15,
        description="wsrep_sync_wait for every session (1: reads wait for earlier commits)",
    )

    balancer: BalancerSettings | None = Field(
        default=None,
        description="HAProxy in front (one, or a keepalived pair with pair: true), as OpenStack deploys "
        "Galera: one node takes every client (first healthy by clustercheck, sticky), the others are "
        "backups; absent: each client connects to its own node",
    )

    @field_validator("weights")
    @classmethod
    def _weights_in_range(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [f"{k}={v}" for k, v in value.items() if not 0 <= v <= 255]
        if bad:
            raise ValueError(f"pc.weight must be 0-255: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _ordered_timers(self) -> GaleraSettings:
        order = ["keepalive_period", "suspect_timeout", "inactive_timeout"]
        values = [getattr(self, name) for name in order]
        if values != sorted(values):
            raise ValueError("timers must satisfy keepalive_period <= suspect_timeout <= inactive_timeout")
        return self


class GaleraTopology(TopologyBase):
    system: Literal["galera"]
    settings: GaleraSettings = GaleraSettings()

    @model_validator(mode="after")
    def _variant_fits_the_nodes(self) -> GaleraTopology:
        if self.settings.arbitrator and self.nodes < 3:
            raise ValueError("settings.arbitrator: needs nodes >= 3 (at least two data nodes beside garbd)")
        unknown = sorted(set(self.settings.weights) - set(self.node_names))
        if unknown:
            raise ValueError(f"settings.weights: unknown node {', '.join(unknown)}, expected one of: "
                             f"{', '.join(self.node_names)}")  # fmt: skip
        return self

    @property
    def arbitrator(self) -> str | None:
        """The node running garbd (the last one), if the topology has one."""
        return self.node_names[-1] if self.settings.arbitrator else None

    @property
    def data_node_names(self) -> list[str]:
        return [n for n in self.node_names if n != self.arbitrator]

    @property
    def helper_target_names(self) -> list[str]:
        """A balancer pair's: ``lb1``, ``lb2`` and ``balancer`` (whichever holds the address then)."""
        b = self.settings.balancer
        return [*BALANCER_HOSTS, ROLE] if b is not None and b.pair else []
