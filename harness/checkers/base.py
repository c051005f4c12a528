"""The checker contract: ``(history, ctx) -> Result``, pure and deterministic.

A checker reads a ``History`` plus a frozen ``CheckContext`` (fault events, probe samples, final per-node
checksums, options) and returns a ``Result`` with one of three verdicts: ``True``, ``False`` or
``"unknown"`` ("couldn't tell" is never a pass). Checkers do no I/O and use no clock or randomness, so
re-checking a stored run gives the same ``to_dict()`` exactly.

``merge_valid`` ranks False > "unknown" > True. ``compose`` runs several named checkers (each through
``check_safe``, so one crash yields ``unknown`` with the error text instead of sinking the lot; bad options
are the user's error, an ``InputError``, and are raised).

Options are namespaced by checker name: ``CheckContext(options={"availability": {"max_outage_s": 5}})``.
Each checker declares them as a ``CheckerOptions`` model beside it and reads its own with
``ctx.options_for("availability", AvailabilityOptions)``: an unknown option or a value of the wrong type
raises ``OptionsError``.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol, TypeAlias, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from harness.errors import InputError
from harness.model.history import Event, History, Sample

__all__ = [
    "CheckContext",
    "Checker",
    "CheckerOptions",
    "Name",
    "OptionsError",
    "Problem",
    "Result",
    "Validity",
    "check_safe",
    "compose",
    "jsonable",
    "merge_valid",
    "parse_options",
]

Validity: TypeAlias = Literal[True, False, "unknown"]

_RANK = {False: 2, "unknown": 1, True: 0}


def _check_validity(v: object) -> Validity:
    if v is True or v is False or v == "unknown":
        return v
    raise ValueError(f"validity must be True, False or 'unknown', not {v!r}")


def merge_valid(values: Iterable[Validity]) -> Validity:
    """The worst of ``values``: False > "unknown" > True. An empty collection is True (as in Jepsen)."""
    worst: Validity = True
    for v in values:
        v = _check_validity(v)
        if _RANK[v] > _RANK[worst]:
            worst = v
    return worst


def jsonable(obj: Any) -> Any:
    """A JSON-ready copy of ``obj``: numpy scalars/arrays → Python, tuples → lists, sets → sorted lists,
    mapping keys → str, non-finite floats → None."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Result):
        return obj.to_dict()
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, set | frozenset):
        return [jsonable(v) for v in sorted(obj)]
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


@dataclass(frozen=True)
class Result:
    """A checker's verdict.

    * ``valid``: True / False / "unknown";
    * ``figures``: small named numbers and strings for reports and comparisons;
    * ``details``: bulkier material (lists, time series);
    * ``notes``: human-readable reasons, e.g. why the verdict is unknown;
    * ``error``: set by ``check_safe`` when the checker crashed;
    * ``children``: sub-results of a composed checker, by name.
    """

    valid: Validity
    figures: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    error: str | None = None
    children: Mapping[str, Result] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_validity(self.valid)
        if isinstance(self.notes, list):
            object.__setattr__(self, "notes", tuple(self.notes))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"valid": self.valid, "figures": jsonable(self.figures)}
        if self.details:
            d["details"] = jsonable(self.details)
        if self.notes:
            d["notes"] = list(self.notes)
        if self.error is not None:
            d["error"] = self.error
        if self.children:
            d["children"] = {k: v.to_dict() for k, v in self.children.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Result:
        return cls(
            valid=_check_validity(d["valid"]),
            figures=dict(d.get("figures") or {}),
            details=dict(d.get("details") or {}),
            notes=tuple(d.get("notes") or ()),
            error=d.get("error"),
            children={k: cls.from_dict(v) for k, v in (d.get("children") or {}).items()},
        )


Problem: TypeAlias = tuple[tuple[str | int, ...], str]
"""One invalid option: (location, starting with "checks", message)."""

Name = Annotated[str, Field(coerce_numbers_to_str=True)]
"""A node, table or account name; a number is taken as its string (JSON object keys are strings)."""


class CheckerOptions(BaseModel):
    """Base of every checker's options: frozen, and an unknown option is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


OptionsT = TypeVar("OptionsT", bound=CheckerOptions)


class OptionsError(InputError):
    """Invalid checker options; ``problems`` lists every one, ``str()`` is one line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{_dotted(loc)}: {message}" for loc, message in problems))


def _dotted(loc: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).removeprefix(".")


def parse_options(name: str, model: type[OptionsT], options: Mapping[str, Any]) -> OptionsT:
    """``options`` of checker ``name`` as ``model``; raises ``OptionsError`` listing every problem."""
    try:
        return model.model_validate(options)
    except ValidationError as e:
        raise OptionsError([_problem(name, model, err) for err in e.errors(include_url=False)]) from None


_MESSAGES = {  # pydantic's words where they would puzzle someone writing YAML
    "tuple_type": "input should be a list",
    "model_type": "input should be a mapping of options",
}


def _problem(name: str, model: type[CheckerOptions], err: ErrorDetails) -> Problem:
    loc = ("checks", name, *err["loc"])
    if err["type"] == "extra_forbidden":
        expected = ", ".join(model.model_fields)
        return loc, f"unknown option {err['loc'][-1]!r}, expected one of: {expected}"
    message = _MESSAGES.get(err["type"]) or err["msg"][0].lower() + err["msg"][1:]
    if not isinstance(err["input"], Mapping | list | tuple):
        message += f", got {err['input']!r}"
    return loc, message


@dataclass(frozen=True)
class CheckContext:
    """Everything besides the op history a checker may read. Frozen; build one per check.

    * ``events``: fault windows, any order (checkers sort them by (start, id));
    * ``samples``: probe samples (e.g. metric "replication_lag_s");
    * ``checksums``: final per-node table checksums ``{node: {table: {"rows": n, "checksum": str}}}``,
      or None when not taken;
    * ``options``: ``{checker name: {option: value}}``.
    """

    events: tuple[Event, ...] = ()
    samples: tuple[Sample, ...] = ()
    checksums: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.events, tuple):
            object.__setattr__(self, "events", tuple(self.events))
        if not isinstance(self.samples, tuple):
            object.__setattr__(self, "samples", tuple(self.samples))

    def opts(self, name: str) -> Mapping[str, Any]:
        """Options for checker ``name`` (empty when none were given)."""
        return self.options.get(name) or {}

    def options_for(self, name: str, model: type[OptionsT]) -> OptionsT:
        """Options for checker ``name`` as ``model`` (its defaults when none were given); raises
        ``OptionsError`` (an ``InputError``) for an unknown option or a bad value."""
        return parse_options(name, model, self.opts(name))

    def sorted_events(self) -> list[Event]:
        return sorted(self.events, key=lambda e: (e.start, e.id))


class Checker(Protocol):
    """A pure function from a history and its context to a ``Result``."""

    def __call__(self, history: History, ctx: CheckContext, /) -> Result: ...


def check_safe(checker: Checker) -> Checker:
    """Wrap ``checker`` so that an exception becomes ``Result("unknown", error=...)``, except an
    ``InputError`` (e.g. bad options), which is the user's to fix and is raised."""

    def safe(history: History, ctx: CheckContext, /) -> Result:
        try:
            return checker(history, ctx)
        except InputError:
            raise
        except Exception as e:  # the point: a crashing checker must not sink the report
            return Result(
                valid="unknown",
                error=f"{type(e).__name__}: {e}",
                details={"traceback": traceback.format_exc()},
                notes=("checker crashed",),
            )

    safe.__name__ = getattr(checker, "__name__", "checker")
    safe.__doc__ = getattr(checker, "__doc__", None)
    return safe


def compose(checkers: Mapping[str, Checker]) -> Checker:
    """Run each named checker (safely, in name order given) and merge the verdicts; an ``InputError``
    of any of them is raised.

    The composed result has ``valid`` = ``merge_valid`` of the children and ``children`` = {name: result}.
    """
    items = [(name, check_safe(c)) for name, c in checkers.items()]

    def composed(history: History, ctx: CheckContext, /) -> Result:
        children = {name: c(history, ctx) for name, c in items}
        return Result(valid=merge_valid(r.valid for r in children.values()), children=children)

    composed.__name__ = "compose(" + ",".join(checkers) + ")"
    return composed
