"""MMM topologies: ``system: mmm`` (two masters, optionally read-only slaves) and the monitor's settings."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

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
    slaves: list[str] = Field(
        default_factory=list,
        description="nodes that are read-only slaves (MMM's `mode slave`): n3 and on; n1, n2 are the masters",
    )
    balancer: BalancerSettings = Field(
        default_factory=BalancerSettings, description="the frontends: one HAProxy or a pair"
    )

    @field_validator("check_period", "trap_period", "timeout", "max_backlog", "auto_set_online")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be > 0, got {value:g}s")
        return value

    @field_validator("slaves")
    @classmethod
    def _slave_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not SLAVE_NAME.match(name)]
        if bad:
            raise ValueError(
                f"expected node names n3, n4, … (n1 and n2 are the masters), got {', '.join(bad)}"
            )
        twice = sorted({name for name in value if value.count(name) > 1})
        if twice:
            raise ValueError(f"each slave once, got {', '.join(twice)} more than once")
        return sorted(value, key=lambda name: int(name[1:]))


SLAVE_NAME = re.compile(r"^n([3-9]|[1-9]\d+)$")
MASTERS = 2


class MmmTopology(TopologyBase):
    """Two MariaDB masters replicating from each other, one writer at a time, managed MMM-style; every
    other node a read-only slave of the active master (``settings.slaves``)."""

    system: Literal["mmm"]
    settings: MmmSettings = Field(default_factory=MmmSettings, validate_default=True)

    @field_validator("nodes")
    @classmethod
    def _two_masters(cls, value: int) -> int:
        if value < MASTERS:
            raise ValueError(
                f"mmm runs 2 masters (n1, n2), and read-only slaves beside them (settings.slaves), got {value}"
            )
        return value

    @field_validator("settings")
    @classmethod
    def _slaves_are_the_other_nodes(cls, value: MmmSettings, info: ValidationInfo) -> MmmSettings:
        """Every node but the masters is a slave, named in ``settings.slaves`` (MMM's ``mode slave``)."""
        nodes = info.data.get("nodes")
        if nodes is None:  # ``nodes`` itself is wrong: reported there
            return value
        expected = [f"n{k}" for k in range(MASTERS + 1, nodes + 1)]
        if value.slaves == expected:
            return value
        if expected:
            want = f"nodes: {nodes} means masters n1, n2 and slaves {', '.join(expected)}"
        else:
            want = f"nodes: {nodes} has no node beside the masters n1, n2"
        got = ", ".join(value.slaves) or "none"
        raise ValidationError.from_exception_data(
            "MmmSettings",
            [InitErrorDetails(
                type=PydanticCustomError("value_error", "{want}; got {got}", {"want": want, "got": got}),
                loc=("slaves",), input=value.slaves,
            )],
        )  # fmt: skip

    @property
    def masters(self) -> list[str]:
        return self.node_names[:MASTERS]

    @property
    def slaves(self) -> list[str]:
        return self.node_names[MASTERS:]

    @property
    def helper_target_names(self) -> list[str]:
        """A balancer pair's: ``lb1``, ``lb2`` and ``balancer`` (whichever holds the address then)."""
        return [*BALANCER_HOSTS, ROLE] if self.settings.balancer.pair else []
