"""Explicit registry of workloads: scenario ``workload.type`` → what it needs and where its class lives.

Classes are imported lazily (drivers are heavy); what validation needs — the capabilities a workload
requires of a system and the checkers its history is meant for — is here, so a scenario can be checked
against a topology without importing a driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

from harness.systems.capabilities import Capability as C

if TYPE_CHECKING:
    from harness.workloads.base import Workload


@dataclass(frozen=True)
class WorkloadInfo:
    name: str
    cls: str  # "module:Class"
    requires: frozenset[C]
    checkers: tuple[str, ...]  # the checkers its history is meant for (a scenario's defaults)


WORKLOADS: dict[str, WorkloadInfo] = {
    info.name: info
    for info in (
        WorkloadInfo("sql-set", "harness.workloads.sql_set:SqlSet", frozenset({C.SQL}),
                     ("set", "set-full", "availability", "divergence")),
        WorkloadInfo("sql-bank", "harness.workloads.sql_bank:SqlBank", frozenset({C.SQL, C.SYNC_WAIT}),
                     ("bank", "availability")),
        WorkloadInfo("sql-register", "harness.workloads.sql_register:SqlRegister",
                     frozenset({C.SQL, C.SYNC_WAIT}), ("counter", "availability")),
        WorkloadInfo("amqp-queue", "harness.workloads.amqp_queue:AmqpQueue", frozenset({C.AMQP}),
                     ("queue", "availability")),
        WorkloadInfo("sql-append", "harness.workloads.sql_append:SqlAppend", frozenset({C.SQL}),
                     ("elle", "availability")),
        WorkloadInfo("openstack-boot", "harness.workloads.openstack_boot:OpenstackBoot",
                     frozenset({C.DB_AND_BROKER}), ("boot", "availability")),
    )
}  # fmt: skip


def workload_class(name: str) -> type[Workload]:
    module, _, attr = WORKLOADS[name].cls.partition(":")
    return getattr(import_module(module), attr)  # type: ignore[no-any-return]
