"""Explicit registry of clustered systems: topology ``system`` → module class."""

from __future__ import annotations

from harness.systems.base import ClusterSystem
from harness.systems.galera import GaleraCluster
from harness.systems.mmm import MmmCluster
from harness.systems.rabbitmq import RabbitCluster

SYSTEMS: dict[str, type[ClusterSystem]] = {
    "galera": GaleraCluster,
    "rabbitmq": RabbitCluster,
    "mmm": MmmCluster,
}

__all__ = ["SYSTEMS", "ClusterSystem", "GaleraCluster", "MmmCluster", "RabbitCluster"]
