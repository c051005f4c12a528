"""Trends over stored nightlies and their regressions (``harness.report.trends``): pure logic on hand-made
``matrix.json`` histories; the HTML page parsed back (a sparkline per figure, regressions marked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.errors import InputError
from harness.model.nightly import Regressions
from harness.report.trends import (
    FIGURES,
    build_trends,
    load_history,
    prune_history,
    regressions_md,
    trends_html,
    write_trends,
)

html = pytest.importorskip("lxml.html", reason="lxml is in the test extra")

G, R = "galera-3", "rabbitmq-3"
P, K = "partition-isolate-primary", "kill-primary"


def figures(**kw: Any) -> dict[str, Any]:
    base = {"lost": 0, "duplicated": 0, "availability": 0.99, "longest_outage_s": 2.0, "time_to_recover_s": 3.0,
            "p99_lag_s": 0.5}  # fmt: skip
    return {**base, **kw}


def cell(topology: str = G, scenario: str = P, valid: Any = True, **kw: Any) -> dict[str, Any]:
    return {"topology": topology, "scenario": scenario, "valid": valid, "runs": 1, "figures": figures(**kw)}


def nightly(root: Path, i: int, *cells: dict[str, Any]) -> Path:
    d = root / f"nightly-2024010{i}T020000Z"
    d.mkdir(parents=True)
    valid = not any(c["valid"] is False for c in cells)
    doc = {"kind": "ha-harness matrix", "version": 1, "created": f"2024-01-0{i}T02:00:00+00:00", "valid": valid,
           "cells": list(cells), "runs": [], "skipped": []}  # fmt: skip
    (d / "matrix.json").write_text(json.dumps(doc))
    return d


def history(tmp_path: Path, *nights: list[dict[str, Any]]) -> list[Any]:
    for i, cells in enumerate(nights, start=1):
        nightly(tmp_path, i, *cells)
    return load_history(tmp_path)


def flagged(trends: Any) -> set[tuple[str, str, str, str]]:
    return {(r.topology, r.scenario, r.figure, r.against) for r in trends.regressions}


def test_a_steady_series_is_no_regression(tmp_path: Path) -> None:
    nights = history(tmp_path, *[[cell(), cell(R, P, availability=0.97)] for _ in range(5)])
    trends = build_trends(nights)
    assert trends.regressions == [] and not trends.failed
    assert trends.pairs == [(G, P), (R, P)]
    assert trends.series[(G, P, "availability")] == [0.99] * 5
    assert trends.series[(G, P, "verdict")] == [1.0] * 5


def test_small_jitter_within_thresholds_is_no_regression(tmp_path: Path) -> None:
    nights = history(tmp_path, [cell()], [cell(availability=0.95, longest_outage_s=2.9, p99_lag_s=0.9)])
    assert build_trends(nights).regressions == []  # drop 0.04 ≤ 0.05; +45 % ≤ 50 %; lag +0.4 s < 0.5 s


def test_an_availability_drop_is_flagged_against_the_previous_nightly(tmp_path: Path) -> None:
    nights = history(tmp_path, [cell()], [cell(availability=0.90)])
    trends = build_trends(nights)
    (r,) = trends.regressions
    assert (r.figure, r.against, r.reference, r.value) == ("availability", "previous", 0.99, 0.90)
    assert "availability 99.00% → 90.00%" in r.message and trends.failed


def test_thresholds_are_respected(tmp_path: Path) -> None:
    nights = history(tmp_path, [cell()], [cell(availability=0.97, longest_outage_s=2.8)])
    assert build_trends(nights).regressions == []
    strict = Regressions(availability_drop=0.01, longest_outage_growth=0.2)
    assert flagged(build_trends(nights, strict)) == {(G, P, "availability", "previous"),
                                                     (G, P, "longest_outage_s", "previous")}  # fmt: skip
    lax = Regressions(lost=False, verdict=False)
    lossy = history(tmp_path / "b", [cell()], [cell(valid=False, lost=3)])
    trends = build_trends(lossy, lax)
    assert trends.regressions == [] and trends.invalid == [(G, P)] and trends.failed  # invalid still fails


def test_growth_needs_both_relative_and_absolute_change(tmp_path: Path) -> None:
    nights = history(tmp_path, [cell(longest_outage_s=0.2)], [cell(longest_outage_s=0.6)])
    assert build_trends(nights).regressions == []  # +200 % but 0.4 s: noise
    nights = history(tmp_path / "b", [cell(longest_outage_s=2.0)], [cell(longest_outage_s=3.5)])
    (r,) = build_trends(nights).regressions
    assert r.figure == "longest_outage_s" and "growth of more than 50 %" in r.rule


def test_valid_to_invalid_and_lost_zero_to_some_are_regressions(tmp_path: Path) -> None:
    nights = history(tmp_path, [cell(), cell(G, K)], [cell(valid=False, lost=2), cell(G, K)])
    trends = build_trends(nights)
    assert flagged(trends) == {(G, P, "verdict", "previous"), (G, P, "lost", "previous")}
    assert trends.invalid == [(G, P)]
    # already lossy before: more loss is no new regression against the previous nightly
    nights = history(tmp_path / "b", [cell(valid=False, lost=1)], [cell(valid=False, lost=4)])
    assert build_trends(nights).regressions == []


def test_the_rolling_median_baseline_catches_what_the_previous_nightly_hides(tmp_path: Path) -> None:
    nights = history(tmp_path, *[[cell(longest_outage_s=2.0)]] * 4, [cell(longest_outage_s=9.0)],
                     [cell(longest_outage_s=9.5)])  # fmt: skip
    trends = build_trends(nights)
    assert flagged(trends) == {(G, P, "longest_outage_s", "baseline")}
    (r,) = trends.regressions
    assert r.reference == 2.0 and "baseline" in r.message
    # a baseline of one nightly would be the previous nightly again: not compared
    assert flagged(build_trends(nights, Regressions(baseline=1))) == set()


def test_never_recovering_is_a_regression(tmp_path: Path) -> None:
    nights = history(tmp_path, [cell()], [cell(time_to_recover_s="never")])
    (r,) = build_trends(nights).regressions
    assert (r.figure, r.rule, r.to_dict()["value"]) == ("time_to_recover_s", "never recovered", "never")


def test_missing_and_new_pairs_and_gaps(tmp_path: Path) -> None:
    nights = history(tmp_path, [cell(), cell(R, P)], [cell()], [cell(availability=None), cell(G, K)])
    trends = build_trends(nights)
    assert trends.missing == [] and trends.new == [(G, K)] and trends.regressions == []
    assert trends.series[(G, P, "availability")] == [0.99, 0.99, None]
    assert trends.series[(R, P, "availability")] == [0.99, None, None]
    nights = history(tmp_path / "b", [cell(), cell(R, P)], [cell()])
    trends = build_trends(nights)
    assert trends.missing == [(R, P)] and not trends.failed
    assert "Not run in the latest nightly" in regressions_md(trends)
    # a gap: the previous value is the latest earlier one that exists
    nights = history(tmp_path / "c", [cell(lost=0)], [cell(lost=None)], [cell(lost=1)])
    assert flagged(build_trends(nights)) == {(G, P, "lost", "previous")}


def test_no_history_and_one_nightly(tmp_path: Path) -> None:
    assert build_trends([]).latest is None and "No nightly" in regressions_md(build_trends([]))
    trends = build_trends(history(tmp_path, [cell()]))
    assert trends.regressions == [] and trends.new == []


def test_history_is_read_in_order_and_a_corrupt_file_names_itself(tmp_path: Path) -> None:
    nightly(tmp_path, 3, cell())
    nightly(tmp_path, 1, cell())
    (tmp_path / "not-a-nightly").mkdir()
    assert [n.id for n in load_history(tmp_path)] == ["nightly-20240101T020000Z", "nightly-20240103T020000Z"]
    bad = nightly(tmp_path, 5, cell()) / "matrix.json"
    bad.write_text("{")
    with pytest.raises(InputError, match=f"{bad}: not JSON"):
        load_history(tmp_path)
    bad.write_text('{"kind": "other"}')
    with pytest.raises(InputError, match=r"not a matrix\.json"):
        load_history(tmp_path)
    with pytest.raises(InputError, match="no such directory"):
        load_history(tmp_path / "nope")


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    for i in range(1, 5):
        nightly(tmp_path, i, cell())
    gone = prune_history(tmp_path, 2)
    assert [p.name for p in gone] == ["nightly-20240101T020000Z", "nightly-20240102T020000Z"]
    assert [n.id for n in load_history(tmp_path)] == ["nightly-20240103T020000Z", "nightly-20240104T020000Z"]


def test_the_page_has_a_sparkline_per_figure_and_marks_regressions(tmp_path: Path) -> None:
    nights = history(tmp_path, [cell(), cell(R, P, p99_lag_s=None)], [cell(), cell(R, P, p99_lag_s=None)],
                     [cell(availability=0.80), cell(R, P, p99_lag_s=None)])  # fmt: skip
    trends = build_trends(nights)
    doc = html.fromstring(trends_html(trends))
    assert doc.body.get("data-status") == "failed"
    for topology, scenario in trends.pairs:
        (row,) = doc.xpath(f'//tr[@data-topology="{topology}"][@data-scenario="{scenario}"]')
        sparks = row.xpath('.//svg[contains(@class, "spark")]')
        expected = [f for f in FIGURES if (topology, scenario, f) in trends.series]
        assert [s.get("data-figure") for s in sparks] == expected
        assert all(len(s.xpath(".//circle")) == 3 for s in sparks)  # one dot per nightly
    assert "p99_lag_s" not in [s.get("data-figure") for s in doc.xpath(f'//tr[@data-topology="{R}"]//svg')]
    (marked,) = doc.xpath('//td[contains(@class, "regressed")]')
    assert (
        marked.get("data-figure") == "availability" and marked.get("data-regression") == "baseline previous"
    )
    assert marked.xpath('.//svg[contains(@class, "regressed")]//circle[contains(@class, "regressed")]')
    assert len(doc.xpath('//li[@class="regression"]')) == 2  # against the previous nightly and the baseline
    assert not doc.xpath("//script[@src] | //link[@href] | //img[@src]")  # self-contained


def test_write_trends_files(tmp_path: Path) -> None:
    nights = history(tmp_path, [cell()], [cell(valid=False, lost=1)])
    paths = write_trends(build_trends(nights), tmp_path / "out")
    assert [p.name for p in paths] == ["trends.html", "trends.json", "regressions.md"]
    doc = json.loads(paths[1].read_text())
    assert doc["failed"] is True and doc["invalid"] == [{"topology": G, "scenario": P}]
    assert {r["figure"] for r in doc["regressions"]} == {"verdict", "lost"}
    md = paths[2].read_text()
    assert "**FAILED**" in md and "lost 0 → 1" in md


def test_the_page_loads_in_chromium_without_errors_or_external_references(tmp_path: Path) -> None:
    from tests.unit.test_report_html import CHROMIUM, external_references, load_in_chromium

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (setup.sh installs Debian's chromium)")
    nights = history(tmp_path / "n", [cell()], [cell(time_to_recover_s="never")], [cell(valid=False, lost=2)])
    page, *_ = write_trends(build_trends(nights), tmp_path / "out")
    loaded = load_in_chromium(page, tmp_path / "trends.png")
    assert loaded.errors == [] and external_references(page.read_text()) == []
    assert loaded.dom.count('class="spark') >= len(FIGURES)
