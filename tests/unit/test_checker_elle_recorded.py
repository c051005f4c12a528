"""The elle checker on large random concurrent histories gives exactly the result it gave before its
throughput work (issue #14): the figures, the first cycle of each class and a digest of the whole result
(verdict, figures, every listed example, notes), recorded from the pre-optimisation checker."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from harness.checkers import CheckContext, check_elle
from tests.unit.elle_histories import concurrent

# (n, seed), generator options, checker options, digest, figures, first cycle per class (txn op indexes)
RECORDED: list[tuple[tuple[int, int], dict[str, Any], dict[str, Any], str, dict[str, Any], dict[str, list[int]]]] = [
    (
        (3000, 7),
        {},
        {"model": "strict-serializable", "process": True},
        "2a552efe79352144",
        {"edges": 18788, "sccs": 52, "cycles": 368, "anomalies": {
            "duplicate-elements": 57, "incompatible-order": 62, "internal": 46, "G1a": 1, "G1b": 8, "lost-update": 1,
            "G0": 11, "G1c": 11, "G-single": 30, "G-nonadjacent": 30, "G2-item": 31, "G0-process": 14,
            "G1c-process": 9, "G-single-process": 39, "G-nonadjacent-process": 34, "G2-item-process": 21,
            "G0-realtime": 15, "G1c-realtime": 15, "G-single-realtime": 50, "G-nonadjacent-realtime": 36,
            "G2-item-realtime": 22}},
        {"G0": [5361, 5353], "G1c": [2270, 2273, 2261], "G-single": [5759, 5746],
         "G-nonadjacent": [5747, 5753, 5759, 5746], "G2-item": [5917, 5916], "G0-process": [2261, 2273],
         "G1c-process": [1315, 1332, 1345, 1361, 1362], "G-single-process": [5191, 5195],
         "G-nonadjacent-process": [5755, 5759, 5746, 5747], "G2-item-process": [5605, 5611, 5585],
         "G0-realtime": [5353, 5361], "G1c-realtime": [2270, 2273, 2261], "G-single-realtime": [5674, 5684],
         "G-nonadjacent-realtime": [5755, 5759, 5746, 5747], "G2-item-realtime": [5605, 5611, 5585]},
    ),
    (
        (3000, 7),
        {},
        {"model": "snapshot-isolation"},
        "8d2316bb15fb5a3c",
        {"edges": 8140, "sccs": 47, "cycles": 127, "anomalies": {
            "duplicate-elements": 57, "incompatible-order": 62, "internal": 46, "G1a": 1, "G1b": 8, "lost-update": 1,
            "G0": 12, "G1c": 11, "G-single": 34, "G-nonadjacent": 34, "G2-item": 36}},
        {"G0": [5361, 5353], "G1c": [2270, 2273, 2261], "G-single": [5759, 5746],
         "G-nonadjacent": [5747, 5753, 5759, 5746], "G2-item": [5917, 5916]},
    ),
    (
        (20000, 3),
        {"stale": 0.001, "bad": 0.0},
        {"model": "strict-serializable"},
        "8c41b7f4b978929a",
        {"edges": 108913, "sccs": 14, "cycles": 45, "anomalies": {
            "internal": 2, "G-single": 7, "G-nonadjacent": 3, "G2-item": 6, "G-single-realtime": 14,
            "G-nonadjacent-realtime": 10, "G2-item-realtime": 5}},
        {"G-single": [38268, 38247, 38253], "G-nonadjacent": [28799, 28768, 28781, 28798],
         "G2-item": [28793, 28799, 28775], "G-single-realtime": [35804, 35814],
         "G-nonadjacent-realtime": [38268, 38247, 38253, 38258], "G2-item-realtime": [38252, 38260, 38268, 38247]},
    ),
    (
        (20000, 4),
        {"stale": 0.0, "bad": 0.0},
        {"model": "strict-serializable", "process": True},
        "61bebec26b9c9ec2",
        {"edges": 123143, "sccs": 0, "cycles": 0, "anomalies": {}},
        {},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("size", "gen", "options", "digest", "figures", "first"), RECORDED)
def test_large_random_history_matches_the_recorded_result(
    size: tuple[int, int],
    gen: dict[str, Any],
    options: dict[str, Any],
    digest: str,
    figures: dict[str, Any],
    first: dict[str, list[int]],
) -> None:
    r = check_elle(concurrent(*size, **gen), CheckContext(options={"elle": options}))
    assert {k: r.figures[k] for k in figures} == figures
    cycles = {a: [t["index"] for t in cs[0]["txns"]] for a, cs in r.details.get("anomalies", {}).items()
              if "steps" in cs[0]}  # fmt: skip
    assert cycles == first
    whole = json.dumps([r.valid, r.figures, r.details, list(r.notes)], sort_keys=True, default=str)
    assert hashlib.sha256(whole.encode()).hexdigest()[:16] == digest
