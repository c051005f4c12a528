"""Loading spec files with the registry's knowledge: any system's topology, scenarios, either by content.

``model/`` validates one file against one model; this layer knows which model a topology's ``system``
names (from ``harness.systems.registry``). Every problem is ``FILE:LINE: field: message`` (exit 2).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from harness.model.loading import SpecError, line_of, load_model, read_yaml
from harness.model.scenario import load_scenario
from harness.model.topology import TopologyBase
from harness.systems.registry import SYSTEMS

__all__ = ["load_scenario", "load_spec", "load_topology"]


def load_topology(path: str | Path) -> TopologyBase:
    """Load and validate a topology file; raises SpecError (exit 2) naming file, line and field."""
    path = Path(path)
    doc = read_yaml(path)
    system = doc.get("system")
    if system not in SYSTEMS:
        line = line_of(doc, ["system"])
        where = f"{path}:{line}" if line else str(path)
        expected = ", ".join(SYSTEMS)
        if system is None:
            raise SpecError([f"{where}: system: field required, expected one of: {expected}"])
        raise SpecError([f"{where}: system: unknown system {system!r}, expected one of: {expected}"])
    return load_model(path, SYSTEMS[system].topology, doc)


def load_spec(path: Path) -> BaseModel:
    """A topology (has ``system``) or a scenario (has ``steps``)."""
    doc = read_yaml(path)
    if "steps" in doc:
        return load_scenario(path)
    if "system" not in doc:
        raise SpecError([f"{path}:1: top level: not a topology (no `system`) nor a scenario (no `steps`)"])
    return load_topology(path)
