"""Load any spec file: a topology (has ``system``) or a scenario (has ``steps``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from harness.model.loading import SpecError, read_yaml


def load_spec(path: Path) -> BaseModel:
    doc = read_yaml(path)
    if "steps" in doc:
        try:
            from harness.model.scenario import load_scenario
        except ImportError:  # pragma: no cover - scenarios arrive with the runner
            raise SpecError([f"{path}: scenarios are not supported yet"]) from None
        return load_scenario(path)
    from harness.model.topology import load_topology

    if "system" not in doc:
        raise SpecError([f"{path}:1: top level: not a topology (no `system`) nor a scenario (no `steps`)"])
    return load_topology(path)
