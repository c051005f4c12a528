"""Probes per system: what the runner samples while a scenario runs (see ``harness.probes.base``)."""

from __future__ import annotations

from harness.model.history import SampleWriter
from harness.probes.base import Probe, Probes
from harness.systems.base import ClusterSystem

__all__ = ["Probe", "Probes", "probe_checkers", "probes_for"]


def _classes(system_name: str) -> list[type[Probe]]:
    if system_name == "galera":
        from harness.probes.galera import GaleraProbe

        return [GaleraProbe]
    if system_name == "rabbitmq":
        from harness.probes.rabbitmq import RabbitProbe

        return [RabbitProbe]
    if system_name == "mmm":
        from harness.probes.mmm import MmmProbe

        return [MmmProbe]
    return []


def probes_for(system: ClusterSystem, samples: SampleWriter) -> Probes:
    return Probes([cls(system, samples) for cls in _classes(system.name)])


def probe_checkers(system_name: str) -> tuple[str, ...]:
    """Checkers that read the samples this system's probes write (added to a scenario's defaults)."""
    return tuple(name for cls in _classes(system_name) for name in cls.checkers)
