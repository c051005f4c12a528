"""Scenario specs (``scenarios/*.yaml``): a workload and a timeline of faults, then the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.model.durations import Duration, parse_duration
from harness.model.loading import load_model
from harness.model.topology import StrictModel

WORKLOADS = ("sql-set", "sql-bank", "sql-register", "amqp-queue")
STEP_KINDS = ("wait", "partition", "heal", "kill", "pause", "resume", "stop", "start", "restart",
              "crash_all", "link")  # fmt: skip
PARTITION_KEYS = ("isolate", "shape", "groups", "one_way")
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
    timeout: Duration = 2.0  # one op; past it the op is `info`
    nodes: list[str] | None = None  # target nodes (default: all)
    quiesce: Duration = 3.0  # after heal + recovery, before the final read
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


class Step(StrictModel):
    """One timeline step: exactly one of the keys below."""

    wait: Duration | None = None
    partition: dict[str, Any] | None = None
    heal: Literal["all", "partition", "links"] | None = None
    kill: str | None = None
    pause: str | None = None
    resume: str | None = None
    stop: str | None = None
    start: str | None = None
    restart: str | None = None
    crash_all: dict[str, Any] | None = None
    link: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        given = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a step has exactly one of: {', '.join(STEP_KINDS)}; got {len(given)}")
        return self

    @field_validator("partition")
    @classmethod
    def _partition(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and (len(value) != 1 or next(iter(value)) not in PARTITION_KEYS):
            raise ValueError(
                f"partition takes one of: {', '.join(PARTITION_KEYS)}, e.g. {{isolate: primary}}"
            )
        return value

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    @property
    def argument(self) -> Any:
        return getattr(self, self.kind)


class Scenario(StrictModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")
    description: str = ""
    systems: list[Literal["galera", "rabbitmq", "mmm"]] = Field(
        default_factory=lambda: ["galera", "rabbitmq"]
    )
    workload: dict[str, WorkloadSpec] = Field(description="per system: the workload to run")
    steps: list[Step] = Field(min_length=1)
    # checker -> options; any checker named here is added to the workload's and the probes' defaults
    checks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    settle: Duration = 5.0  # workload runs this long before the first step

    @property
    def duration_s(self) -> float:
        return self.settle + sum(parse_duration(s.wait) for s in self.steps if s.wait is not None)


def load_scenario(path: str | Path) -> Scenario:
    return load_model(Path(path), Scenario)
