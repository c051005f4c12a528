"""Galera topologies: ``system: galera`` and its settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.model.durations import Duration
from harness.model.topology import StrictModel, TopologyBase


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
