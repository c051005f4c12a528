"""Probes per system: what the runner samples while a scenario runs (see ``harness.probes.base``).

Each system package names its probes in its ``SystemInfo``; this only builds them for a run.
"""

from __future__ import annotations

from harness.model.history import SampleWriter
from harness.probes.base import Probe, Probes
from harness.systems.base import ClusterSystem
from harness.systems.registry import probe_classes, system_info

__all__ = ["Probe", "Probes", "probe_checkers", "probes_for"]


def probes_for(system: ClusterSystem, samples: SampleWriter) -> Probes:
    """Every probe of each of the system's clusters (a composite's database and broker each have theirs)."""
    return Probes([cls(part, samples) for part in system.parts() for cls in probe_classes(part.name)])


def probe_checkers(system_name: str) -> tuple[str, ...]:
    """Checkers that read the samples this system's probes write (added to a scenario's defaults)."""
    return system_info(system_name).probe_checkers
