"""Topology specs: which system, how many nodes, which image, which settings (``topologies/*.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.model.durations import Duration
from harness.model.loading import SpecError, line_of, load_model, read_yaml

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

    @model_validator(mode="after")
    def _ordered_timers(self) -> GaleraSettings:
        order = ["keepalive_period", "suspect_timeout", "inactive_timeout"]
        values = [getattr(self, name) for name in order]
        if values != sorted(values):
            raise ValueError("timers must satisfy keepalive_period <= suspect_timeout <= inactive_timeout")
        return self


class RabbitSettings(StrictModel):
    """RabbitMQ cluster settings."""

    queue_type: Literal["quorum", "classic-mirrored"] = "quorum"
    partition_handling: Literal["ignore", "pause_minority", "autoheal", "pause_if_all_down"] = (
        "pause_minority"
    )
    net_ticktime: int = Field(default=60, ge=1, le=600, description="Erlang distribution tick, seconds")


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

    @field_validator("check_period", "trap_period", "timeout", "max_backlog", "auto_set_online")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be > 0, got {value:g}s")
        return value


class TopologyBase(StrictModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$", description="lower-case letters, digits and dashes")
    nodes: int = Field(ge=1, le=MAX_NODES)
    image: ImageSpec = ImageSpec()
    timeouts: Timeouts = Timeouts()
    description: str = ""

    @property
    def node_names(self) -> list[str]:
        return [f"n{i}" for i in range(1, self.nodes + 1)]


class GaleraTopology(TopologyBase):
    system: Literal["galera"]
    settings: GaleraSettings = GaleraSettings()


class RabbitTopology(TopologyBase):
    system: Literal["rabbitmq"]
    settings: RabbitSettings = RabbitSettings()


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


Topology = Annotated[GaleraTopology | RabbitTopology | MmmTopology, Field(discriminator="system")]
SYSTEMS: dict[str, type[TopologyBase]] = {"galera": GaleraTopology, "rabbitmq": RabbitTopology,
                                          "mmm": MmmTopology}  # fmt: skip


def load_topology(path: str | Path) -> GaleraTopology | RabbitTopology | MmmTopology:
    """Load and validate a topology file; raises SpecError (exit 2) naming file, line and field."""
    path = Path(path)
    doc = read_yaml(path)
    system = doc.get("system")
    if system not in SYSTEMS:
        line = line_of(doc, ["system"])
        where = f"{path}:{line}" if line else str(path)
        expected = ", ".join(SYSTEMS)
        if system is None:
            raise SpecError([f"{where}: system: field required, expected one of: {expected}"])
        raise SpecError([f"{where}: system: unknown system {system!r}, expected one of: {expected}"])
    return load_model(path, SYSTEMS[system], doc)  # type: ignore[return-value]
