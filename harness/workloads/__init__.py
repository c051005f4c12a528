"""Explicit registry of workloads: scenario ``workload.type`` → class (imported lazily: drivers are heavy)."""

from __future__ import annotations

from importlib import import_module

from harness.workloads.base import Workload

WORKLOADS = {
    "sql-set": "harness.workloads.sql_set:SqlSet",
    "sql-bank": "harness.workloads.sql_bank:SqlBank",
    "sql-register": "harness.workloads.sql_register:SqlRegister",
    "amqp-queue": "harness.workloads.amqp_queue:AmqpQueue",
}


def workload_class(name: str) -> type[Workload]:
    module, _, attr = WORKLOADS[name].partition(":")
    return getattr(import_module(module), attr)  # type: ignore[no-any-return]
