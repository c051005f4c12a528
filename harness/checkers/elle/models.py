"""Which anomalies each consistency model forbids (after Elle's ``consistency-models``, for the item-level
anomalies a list-append history can show).

* data-integrity anomalies (``internal``, ``duplicate-elements``, ``incompatible-order``,
  ``duplicate-appends``) break every model: the store lost track of its own data;
* ``read-committed`` (Adya PL-2): G0, G1a, G1b, G1c;
* ``snapshot-isolation``: those, G-single, G-nonadjacent (every SI cycle has two adjacent rw edges) and
  lost-update;
* ``repeatable-read`` (PL-2.99; on items it is as strong as serializable) and ``serializable`` (PL-3):
  those and G2-item;
* ``strict-serializable``: those and every ``-realtime`` and ``-process`` variant (a txn cannot take effect
  before an earlier completed one).
"""

from __future__ import annotations

from typing import Literal, TypeAlias

__all__ = ["ANOMALIES", "CYCLE_CLASSES", "FORBIDDEN", "MODELS", "Model", "forbidden", "needs_realtime"]

Model: TypeAlias = Literal[
    "read-committed", "snapshot-isolation", "repeatable-read", "serializable", "strict-serializable"
]
MODELS: tuple[Model, ...] = (
    "read-committed", "snapshot-isolation", "repeatable-read", "serializable", "strict-serializable"
)  # fmt: skip

CYCLE_CLASSES = ("G0", "G1c", "G-single", "G-nonadjacent", "G2-item")
INTEGRITY = frozenset({"internal", "duplicate-elements", "incompatible-order", "duplicate-appends"})
_RC = INTEGRITY | {"G0", "G1a", "G1b", "G1c"}
_SI = _RC | {"G-single", "G-nonadjacent", "lost-update"}
_SER = _SI | {"G2-item"}
_STRICT = _SER | {f"{c}-{suffix}" for c in CYCLE_CLASSES for suffix in ("realtime", "process")}

FORBIDDEN: dict[str, frozenset[str]] = {
    "read-committed": frozenset(_RC),
    "snapshot-isolation": frozenset(_SI),
    "repeatable-read": frozenset(_SER),
    "serializable": frozenset(_SER),
    "strict-serializable": frozenset(_STRICT),
}

# every anomaly the checker can report, in the order figures list them
ANOMALIES: tuple[str, ...] = (
    *sorted(INTEGRITY),
    "G1a",
    "G1b",
    "lost-update",
    *CYCLE_CLASSES,
    *(f"{c}-process" for c in CYCLE_CLASSES),
    *(f"{c}-realtime" for c in CYCLE_CLASSES),
)


def forbidden(model: str) -> frozenset[str]:
    return FORBIDDEN[model]


def needs_realtime(model: str) -> bool:
    """The model orders txns by real time (so its check needs real-time edges)."""
    return model == "strict-serializable"
