"""Scenario specs (``scenarios/*.yaml``): a workload and a timeline of faults, then the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.model.durations import Duration, parse_duration
from harness.model.loading import load_model
from harness.model.topology import StrictModel

WORKLOADS = ("sql-set", "amqp-queue")
STEP_KINDS = ("wait", "partition", "heal", "kill", "pause", "resume", "stop", "start", "restart",
              "crash_all", "link")  # fmt: skip
PARTITION_KEYS = ("isolate", "shape", "groups", "one_way")


class WorkloadSpec(StrictModel):
    type: Literal["sql-set", "amqp-queue"]
    clients: int = Field(default=4, ge=1, le=64)
    rate: float = Field(default=100.0, gt=0, le=10000, description="offered ops/s over all clients")
    timeout: Duration = 2.0  # one op; past it the op is `info`
    nodes: list[str] | None = None  # target nodes (default: all)
    quiesce: Duration = 3.0  # after heal + recovery, before the final read


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
    systems: list[Literal["galera", "rabbitmq"]] = Field(default_factory=lambda: ["galera", "rabbitmq"])
    workload: dict[str, WorkloadSpec] = Field(description="per system: the workload to run")
    steps: list[Step] = Field(min_length=1)
    checks: dict[str, dict[str, Any]] = Field(default_factory=dict)  # checker name -> options
    settle: Duration = 5.0  # workload runs this long before the first step

    @property
    def duration_s(self) -> float:
        return self.settle + sum(parse_duration(s.wait) for s in self.steps if s.wait is not None)


def load_scenario(path: str | Path) -> Scenario:
    return load_model(Path(path), Scenario)
