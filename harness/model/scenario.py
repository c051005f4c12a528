"""Scenario specs (``scenarios/*.yaml``): a workload and a timeline of faults, then the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.model.faults import Step, StepDuration, WaitStep
from harness.model.guarantees import validate_expect
from harness.model.loading import load_model
from harness.model.topology import StrictModel

WORKLOADS = ("sql-set", "sql-bank", "sql-register", "amqp-queue")
SQL_TX = ("sql-bank", "sql-register")
ONLY_FOR = {  # fields that mean something to some workload types only
    "accounts": ("sql-bank",),
    "balance": ("sql-bank",),
    "allow_negative": ("sql-bank",),
    "keys": ("sql-register",),
    "isolation": SQL_TX,
    "causal_reads": SQL_TX,
}


class WorkloadSpec(StrictModel):
    type: Literal["sql-set", "sql-bank", "sql-register", "amqp-queue"]
    clients: int = Field(default=4, ge=1, le=64)
    rate: float = Field(default=100.0, gt=0, le=10000, description="offered ops/s over all clients")
    timeout: StepDuration = 2.0  # one op; past it the op is `info`
    nodes: list[str] | None = None  # target nodes (default: all)
    quiesce: StepDuration = 3.0  # after heal + recovery, before the final read
    accounts: int = Field(default=5, ge=2, le=1000, description="sql-bank: number of accounts")
    balance: int = Field(default=100, ge=0, le=10**12, description="sql-bank: each account's opening balance")
    allow_negative: bool = Field(default=False, description="sql-bank: let transfers overdraw an account")
    keys: int = Field(default=3, ge=1, le=1000, description="sql-register: number of counters")
    isolation: Literal["read-uncommitted", "read-committed", "repeatable-read", "serializable"] = Field(
        default="repeatable-read", description="sql-bank, sql-register: the sessions' isolation level"
    )
    causal_reads: bool = Field(
        default=True,
        description="sql-bank, sql-register: reads wait for every earlier commit (wsrep_sync_wait)",
    )

    @model_validator(mode="after")
    def _fields_fit_type(self) -> WorkloadSpec:
        """A field another workload type needs must keep its default (stored specs carry every field)."""
        for name, types in ONLY_FOR.items():
            if self.type not in types and getattr(self, name) != type(self).model_fields[name].default:
                raise ValueError(f"{name} is only for {' and '.join(types)}, not {self.type}")
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
