"""``nightly.yaml``: what a nightly CI job runs (a matrix of topologies × scenarios), how many times, where it
keeps its results, how many past nightlies it keeps and compares, and what counts as a regression.

Strict like every spec file: an unknown key, a bad value or a listed file that does not exist is one line
``FILE:LINE: field: message`` (exit 2), every problem at once. Paths are relative to the nightly file's own
directory (a glob or a directory among ``scenarios`` stands for the ``*.yaml`` files it matches).
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from harness.model.loading import SpecError, line_of, load_model, read_yaml
from harness.model.topology import StrictModel

__all__ = ["NightlySpec", "PairSpec", "Regressions", "is_nightly_doc", "load_nightly", "resolve_paths"]


class Regressions(StrictModel):
    """Thresholds: what makes the latest nightly a regression against the one before it (and against the
    rolling median of the last ``baseline`` nightlies)."""

    availability_drop: float = Field(
        default=0.05, ge=0, le=1, description="absolute drop of availability (0.05 = 5 points)"
    )
    longest_outage_growth: float = Field(
        default=0.5, ge=0, description="relative growth of longest_outage_s (0.5 = +50 %)"
    )
    time_to_recover_growth: float = Field(
        default=0.5, ge=0, description="relative growth of time_to_recover_s"
    )
    p99_lag_growth: float = Field(default=1.0, ge=0, description="relative growth of the p99 replication lag")
    min_seconds: float = Field(
        default=0.5, ge=0, description="growth of a duration below this many seconds is noise"
    )
    verdict: bool = Field(default=True, description="a pair valid before and invalid now is a regression")
    lost: bool = Field(default=True, description="lost 0 before and more than 0 now is a regression")
    duplicated: bool = Field(
        default=True, description="duplicated 0 before and more than 0 now is a regression"
    )
    baseline: int = Field(default=5, ge=1, le=100, description="nightlies in the rolling median baseline")  # fmt: skip

    def growth(self, figure: str) -> float | None:
        """The relative growth threshold of a duration figure (None: not a duration figure)."""
        return {"longest_outage_s": self.longest_outage_growth, "time_to_recover_s": self.time_to_recover_growth,
                "p99_lag_s": self.p99_lag_growth}.get(figure)  # fmt: skip


class PairSpec(StrictModel):
    """Scenarios to run on one topology (each must fit it: an explicit pair that does not is skipped)."""

    topology: str
    scenarios: list[str] = Field(min_length=1)


class NightlySpec(StrictModel):
    name: str = Field(default="nightly", pattern=r"^[a-z][a-z0-9-]{0,40}$")
    description: str = ""
    topologies: list[str] = Field(default_factory=list, description="topology files")
    scenarios: list[str] = Field(default_factory=list, description="scenario files, directories or globs: "
                                 "each runs on every listed topology it fits")  # fmt: skip
    pairs: list[PairSpec] = Field(default_factory=list, description="more (topology, scenarios) to run")
    count: int = Field(default=1, ge=1, le=100, description="runs of each pair (their median is compared)")
    seed: int = 0
    keep: bool = False
    reports: str = Field(default="reports/nightly", description="where each nightly's directory goes")
    history: int = Field(default=14, ge=1, le=1000, description="past nightlies kept and compared")
    regressions: Regressions = Field(default_factory=Regressions)

    @model_validator(mode="after")
    def _something_to_run(self) -> NightlySpec:
        if bool(self.topologies) != bool(self.scenarios):
            missing = "scenarios" if self.topologies else "topologies"
            raise ValueError(f"topologies and scenarios go together: {missing} is empty")
        if not self.pairs and not (self.topologies and self.scenarios):
            raise ValueError("nothing to run: give topologies and scenarios, or pairs")
        return self


def is_nightly_doc(doc: Any) -> bool:
    """A parsed YAML mapping that is a nightly file (not a topology nor a scenario)."""
    return (
        isinstance(doc, dict)
        and "steps" not in doc
        and "system" not in doc
        and ("topologies" in doc or "pairs" in doc or "regressions" in doc)
    )


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def resolve_paths(base: Path, entry: str) -> list[Path]:
    """The files ``entry`` names relative to ``base``: itself, the ``*.yaml`` in a directory, a glob's
    matches (sorted). Empty when nothing is there."""
    path = Path(entry) if Path(entry).is_absolute() else base / entry
    if _is_glob(entry):
        return sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    if path.is_dir():
        return sorted(path.glob("*.yaml"))
    return [path] if path.is_file() else []


def load_nightly(path: str | Path) -> NightlySpec:
    """Load and validate a nightly file; every listed file must exist (SpecError, FILE:LINE: field)."""
    path = Path(path)
    doc = read_yaml(path)
    spec = load_model(path, NightlySpec, doc)
    base = path.parent
    problems: list[tuple[int, str]] = []

    def need(loc: list[str | int], entry: str, what: str) -> None:
        if resolve_paths(base, entry):
            return
        line = line_of(doc, loc)
        where = f"{path}:{line}" if line else str(path)
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).removeprefix(".")
        kind = "no file matches" if _is_glob(entry) else "no such file"
        problems.append(
            (line or 0, f"{where}: {field}: {kind} {entry!r} (relative to {base}), expected {what}")
        )

    for i, entry in enumerate(spec.topologies):
        need(["topologies", i], entry, "a topology file")
    for i, entry in enumerate(spec.scenarios):
        need(["scenarios", i], entry, "a scenario file, directory or glob")
    for i, pair in enumerate(spec.pairs):
        need(["pairs", i, "topology"], pair.topology, "a topology file")
        for j, entry in enumerate(pair.scenarios):
            need(["pairs", i, "scenarios", j], entry, "a scenario file, directory or glob")
    if problems:
        raise SpecError([text for _, text in sorted(problems, key=lambda p: p[0])])
    return spec
