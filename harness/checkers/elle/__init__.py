"""Elle, natively: transactional anomalies of list-append histories (Jepsen's ``:txn`` ops).

A history of ``f: "txn"`` ops whose value is a list of micro-ops, ``[["append", k, v], ["r", k, null]]`` on
invoke and ``[["append", k, v], ["r", k, [1, 2, 3]]]`` on ok (values unique per key). Each module does one
thing: ``txn`` (ops → txns), ``mops`` (who appended and read what; internal consistency), ``versions``
(version order per key), ``direct`` (G1a, G1b, lost update), ``graph`` (ww / wr / rw / real-time /
process edges), ``scc`` (Tarjan), ``cycles`` (shortest cycle per class, its name), ``explain`` (words),
``models`` (what each consistency model forbids), ``checker`` (the entry: ``check_elle``, ``ElleOptions``).
"""

from __future__ import annotations

from harness.checkers.elle.checker import ElleOptions, check_elle
from harness.checkers.elle.models import FORBIDDEN, MODELS

__all__ = ["FORBIDDEN", "MODELS", "ElleOptions", "check_elle"]
