"""Scenario specs (``scenarios/*.yaml``): a workload and a timeline of faults, then the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.model.faults import Step, StepDuration, WaitStep
from harness.model.guarantees import validate_expect
from harness.model.loading import load_model
from harness.model.topology import StrictModel

WORKLOADS = ("sql-set", "sql-bank", "sql-register", "amqp-queue", "sql-append", "openstack-boot")
SQL_TX = ("sql-bank", "sql-register", "sql-append")
ONLY_FOR = {  # fields that mean something to some workload types only
    "accounts": ("sql-bank",),
    "balance": ("sql-bank",),
    "allow_negative": ("sql-bank",),
    "locking": ("sql-bank",),
    "read_share": ("sql-set",),
    "keys": ("sql-register", "sql-append"),
    "max_txn_len": ("sql-append",),
    "key_rotation": ("sql-append",),
    "isolation": SQL_TX,
    "causal_reads": SQL_TX,
    "computes": ("openstack-boot",),
    "durable": ("amqp-queue",),
    "persistent": ("amqp-queue",),
    "confirms": ("amqp-queue",),
    "failover": ("amqp-queue",),
}


class WorkloadSpec(StrictModel):
    type: Literal["sql-set", "sql-bank", "sql-register", "amqp-queue", "sql-append", "openstack-boot"]
    clients: int = Field(default=4, ge=1, le=64)
    rate: float = Field(default=100.0, gt=0, le=10000, description="offered ops/s over all clients")
    timeout: StepDuration = 2.0  # one op; past it the op is `info`
    nodes: list[str] | None = None  # target nodes (default: all)
    quiesce: StepDuration = 3.0  # after heal + recovery, before the final read
    accounts: int = Field(default=5, ge=2, le=1000, description="sql-bank: number of accounts")
    balance: int = Field(default=100, ge=0, le=10**12, description="sql-bank: each account's opening balance")
    allow_negative: bool = Field(default=False, description="sql-bank: let transfers overdraw an account")
    locking: Literal["for-update", "none", "compare-and-set"] = Field(
        default="for-update",
        description="sql-bank: how a transfer guards its read-modify-write (harness.workloads.sql_bank)",
    )
    read_share: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="sql-set: share of the ops that read the whole set during the run",
    )
    keys: int = Field(
        default=3, ge=1, le=1000, description="sql-register: number of counters; sql-append: active keys (8)"
    )
    max_txn_len: int = Field(default=4, ge=1, le=32, description="sql-append: most micro-ops per txn")
    key_rotation: int = Field(
        default=32,
        ge=1,
        le=10**6,
        description="sql-append: appends a key takes before a fresh one replaces it",
    )
    isolation: Literal["read-uncommitted", "read-committed", "repeatable-read", "serializable"] = Field(
        default="repeatable-read", description="sql-bank, sql-register, sql-append: the isolation level"
    )
    computes: int = Field(
        default=2, ge=1, le=16, description="openstack-boot: compute services consuming casts"
    )
    causal_reads: bool = Field(
        default=True,
        description="sql-bank, sql-register, sql-append: reads wait for every earlier commit (wsrep_sync_wait)",
    )
    durable: bool = Field(default=True, description="amqp-queue: a durable queue (quorum queues always are)")
    persistent: bool = Field(default=True, description="amqp-queue: persistent messages (delivery mode 2)")
    confirms: bool = Field(
        default=True,
        description="amqp-queue: publisher confirms; off, a publish is ok once sent (oslo.messaging's default)",
    )
    failover: bool = Field(
        default=False,
        description="amqp-queue: as oslo.messaging with rabbit_hosts, a client whose connection is lost moves "
        "to the next node, declares the queue again and resumes",
    )

    @model_validator(mode="before")
    @classmethod
    def _append_keys(cls, data: Any) -> Any:
        """sql-append's own default key count (8), where sql-register's is 3."""
        if isinstance(data, dict) and data.get("type") == "sql-append" and "keys" not in data:
            return {**data, "keys": 8}
        return data

    @model_validator(mode="after")
    def _fields_fit_type(self) -> WorkloadSpec:
        """A field another workload type needs must keep its default (stored specs carry every field)."""
        for name, types in ONLY_FOR.items():
            if self.type not in types and getattr(self, name) != type(self).model_fields[name].default:
                raise ValueError(f"{name} is only for {' and '.join(types)}, not {self.type}")
        if self.type == "sql-append" and self.isolation == "read-uncommitted":
            raise ValueError("sql-append runs at read-committed, repeatable-read or serializable")
        return self


class Scenario(StrictModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")
    description: str = ""
    # the systems this scenario is meant for (names from the registry; checked by ``harness.plan``)
    systems: list[str] = Field(default_factory=lambda: ["galera", "rabbitmq"])
    workload: dict[str, WorkloadSpec] = Field(description="per system: the workload to run")
    steps: list[Step] = Field(min_length=1)
    # checker -> options; any checker named here is added to the workload's and the probes' defaults
    checks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    settle: StepDuration = 5.0  # workload runs this long before the first step
    # guarantee -> bound (``harness.checkers.guarantees``), or a system/topology name -> bounds for it only;
    # overrides the topology's ``expect`` per name
    expect: dict[str, Any] = Field(default_factory=dict, description="bounds on the checkers' figures")

    @field_validator("expect")
    @classmethod
    def _known_guarantees(cls, value: dict[str, Any]) -> dict[str, Any]:
        return validate_expect(value, sections=True)  # type: ignore[no-any-return]

    @property
    def duration_s(self) -> float:
        return self.settle + sum(s.wait for s in self.steps if isinstance(s, WaitStep))


def load_scenario(path: str | Path) -> Scenario:
    return load_model(Path(path), Scenario)
