"""``harness compare``: runs side by side (rows topologies, columns scenarios), on small synthetic run
directories written with the history writers, plus the stored real run; every output format parsed back,
the HTML page loaded in headless Chromium.

``make_run`` here is also what the report tests build their runs with."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.checkers.base import Result
from harness.model.history import EventWriter, HistoryWriter, SampleWriter
from harness.report.compare import compare, find_runs, render, rich_table
from harness.runner import check_report

ROOT = Path(__file__).resolve().parents[2]
STORED = ROOT / "tests" / "data" / "runs" / "set-partition"
S = 1_000_000_000
MS = 1_000_000


class ManualClock:
    """A run clock a test sets by hand (ns since run start)."""

    def __init__(self) -> None:
        self.t = 0

    def now(self) -> int:
        return self.t


def make_run(
    directory: Path,
    *,
    topology: str = "galera-3",
    scenario: str = "partition-isolate-primary",
    seconds: int = 20,
    lost: Iterable[int] = (),
    duplicated: Iterable[int] = (),
    outage: tuple[float, float] | None = (8.0, 10.0),
    lag_peak: float = 2.0,
    harness_action: bool = True,
    seed: int = 7,
    write_result: bool = True,
    guarantees: Sequence[dict[str, Any]] | None = None,
) -> Path:
    """A small Galera sql-set run directory: three nodes, ~20 adds a second, a partition of n1 from 5 s
    to 12 s (every write failing in ``outage``), a harness action, probe samples, final reads that leave out
    ``lost`` and read ``duplicated`` twice; ``result.json`` from the real checkers (plus a ``guarantees``
    child with ``guarantees`` as its bounds, when given)."""
    directory.mkdir(parents=True, exist_ok=True)
    clock = ManualClock()
    nodes = ("n1", "n2", "n3")
    events = EventWriter(directory / "events.jsonl", clock)
    samples = SampleWriter(directory / "samples.jsonl", clock, background=False)
    acked: list[int] = []
    with HistoryWriter(directory / "history.jsonl", clock, concurrency=3, background_flush=False) as h:
        partition = None
        action = None
        next_id = 1
        procs = [0, 1, 2]
        for step in range(seconds * 20):
            t = step * 50 * MS
            clock.t = t
            if partition is None and t >= 5 * S:
                partition = events.start("partition", "iptables(nsenter)", "[n1] | [n2,n3]",
                                         {"shape": "isolate", "components": [["n1"], ["n2", "n3"]]})  # fmt: skip
            if partition is not None and partition.end is None and t >= 12 * S:
                partition = events.end(partition)
                if harness_action:
                    action = events.start("operator-recovery", "rabbitmqctl stop_app/start_app", ["n1"],
                                          {"by": "harness"})  # fmt: skip
            if action is not None and action.end is None and t >= 13 * S:
                action = events.end(action)
            w = step % 3
            node = nodes[w]
            p = h.next_process(procs[w])
            procs[w] = p
            op = h.invoke(p, "add", next_id, node)
            clock.t = t + (3 + w) * MS
            down = outage is not None and outage[0] * S <= t < outage[1] * S
            if down or (partition is not None and partition.end is None and node == "n1"):
                if step % 7 == 0:
                    h.info(op, "timeout")
                else:
                    h.fail(op, "Deadlock found when trying to get lock")
            else:
                h.ok(op)
                acked.append(next_id)
            next_id += 1
            if step % 4 == 0:
                for i, n in enumerate(nodes):
                    clock.t = t + (10 + i) * MS
                    cut = partition is not None and partition.end is None and n == "n1"
                    value: float | str = (
                        round(lag_peak * (t - 5 * S) / (7 * S), 3) if cut else 0.001 * (i + 1)
                    )
                    samples.record(n, "replication_lag_s", value)
                    samples.record(n, "wsrep_cluster_status", "non-Primary" if cut else "Primary")
                    samples.record(n, "wsrep_cluster_size", 1.0 if cut else (2.0 if partition is not None
                                                                               and partition.end is None else 3.0))  # fmt: skip
        gone = set(lost)
        for i, n in enumerate(nodes):
            clock.t = (seconds + 1) * S + i * 10 * MS
            p = h.new_process()
            op = h.invoke(p, "read", None, n)
            clock.t += 5 * MS
            read = [x for x in acked if x not in gone]
            if i == 1:
                read += list(duplicated)
            h.ok(op, read)
    events.close()
    samples.close()
    for name in ("scenario.json", "topology.json"):
        doc = json.loads((STORED / name).read_text())
        doc["name"] = scenario if name == "scenario.json" else topology
        (directory / name).write_text(json.dumps(doc, indent=2))
    (directory / "meta.json").write_text(json.dumps({"run_id": f"{topology}-{directory.name}", "seed": seed}))
    (directory / "logs").mkdir(exist_ok=True)
    for n in nodes:
        (directory / "logs" / f"{n}.log").write_text(f"{n}: started\n")
    (directory / "harness.log").write_text("run log\n")
    if write_result:
        result = check_report(directory, write=False)
        if guarantees is not None:
            result = with_guarantees(result, guarantees)
        (directory / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    return directory


def with_guarantees(result: Result, bounds: Sequence[dict[str, Any]]) -> Result:
    """``result`` with a ``guarantees`` child of ``bounds``, the shape the guarantees checker gives."""
    valid = not any(b["passed"] is False for b in bounds)
    g = Result(valid=valid, figures={"bounds": len(bounds), "broken": sum(b["passed"] is False for b in bounds)},
               details={"bounds": list(bounds)})  # fmt: skip
    children = {**result.children, "guarantees": g}
    return Result(valid=False if valid is False else result.valid, children=children, notes=result.notes)


def bound(
    name: str, check: str, figure: str, op: str, limit: float, value: float, passed: bool
) -> dict[str, Any]:
    return {"name": name, "check": check, "figure": figure, "op": op, "bound": limit, "value": value,
            "passed": passed}  # fmt: skip


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Two topologies × two scenarios; galera-3 × partition three times; mmm-2 × kill loses two ids."""
    base = tmp_path / "reports"
    for i, peak in enumerate((1.0, 2.0, 4.0)):
        make_run(base / f"g{i}", lag_peak=peak, outage=(8.0, 9.0 + i))
    make_run(base / "gk", scenario="kill-primary", outage=None)
    make_run(base / "mp", topology="mmm-2", outage=(8.0, 8.5), guarantees=[
        bound("lost", "set", "lost", "==", 0, 0, True),
        bound("longest_outage_s", "availability", "longest_outage_s", "<=", 0.1, 0.6, False)])  # fmt: skip
    make_run(base / "mk", topology="mmm-2", scenario="kill-primary", lost=(5, 6), duplicated=(9,))
    return base


def test_compare_groups_runs_by_topology_and_scenario(runs: Path) -> None:
    c = compare([runs])
    assert c.topologies == ["galera-3", "mmm-2"]
    assert c.scenarios == ["kill-primary", "partition-isolate-primary"]
    cell = c.cells[("galera-3", "partition-isolate-primary")]
    assert len(cell.runs) == 3
    lag = cell.stats("p99_lag_s")
    assert lag is not None and lag["n"] == 3 and lag["min"] < lag["median"] < lag["max"]
    outage = cell.stats("longest_outage_s")
    assert outage is not None and outage["min"] == pytest.approx(1.0, abs=0.11)
    assert outage["max"] == pytest.approx(3.0, abs=0.11)
    kill = c.cells[("mmm-2", "kill-primary")]
    assert kill.stats("lost") == {"median": 2.0, "min": 2.0, "max": 2.0, "n": 1, "values": [2.0]}
    assert kill.stats("duplicated")["max"] == 1.0  # type: ignore[index]
    assert kill.valid is False


def test_cells_are_coloured_by_guarantees_else_by_loss(runs: Path) -> None:
    from harness.report.compare import METRICS

    m = {x.key: x for x in METRICS}
    c = compare([runs])
    guarded = c.cells[("mmm-2", "partition-isolate-primary")]
    assert guarded.status(m["lost"]) == "pass"
    assert guarded.status(m["longest_outage_s"]) == "fail"
    assert guarded.bound_text(m["longest_outage_s"]) == "<= 0.1"
    assert guarded.status(m["availability"]) == "none"  # no bound: shown plain
    assert c.cells[("mmm-2", "kill-primary")].status(m["lost"]) == "fail"  # loss fails without a guarantee
    assert c.cells[("galera-3", "kill-primary")].status(m["lost"]) == "pass"


def test_every_format_parses_back(runs: Path) -> None:
    c = compare([runs])
    doc = json.loads(render(c, "json"))
    assert doc["topologies"] == ["galera-3", "mmm-2"]
    cell = next(
        x
        for x in doc["cells"]
        if x["topology"] == "galera-3" and x["scenario"] == "partition-isolate-primary"
    )
    assert len(cell["runs"]) == 3 and cell["metrics"]["p99_lag_s"]["n"] == 3
    rows = list(csv.DictReader(io.StringIO(render(c, "csv"))))
    assert len(rows) == 4
    mk = next(r for r in rows if r["topology"] == "mmm-2" and r["scenario"] == "kill-primary")
    assert mk["lost_median"] == "2.0" and mk["lost_status"] == "fail" and mk["valid"] == "False"
    md = render(c, "md").splitlines()
    assert md[0] == "| topology | kill-primary | partition-isolate-primary |"
    assert md[2].startswith("| galera-3 |") and "n=3" in md[2]
    assert "longest outage" in md[3] and "✗" in md[3]
    page = render(c, "html")
    assert page.count('<td class="cell"') == 4 and 'data-status="fail"' in page


def test_terminal_table_has_a_row_per_topology(runs: Path) -> None:
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    console.print(rich_table(compare([runs])))
    text = console.export_text()
    assert "galera-3" in text and "mmm-2" in text and "lost 2 ✗" in text


def test_compare_takes_the_stored_real_run_without_a_result(tmp_path: Path) -> None:
    run = tmp_path / "real"
    shutil.copytree(STORED, run)
    assert not (run / "result.json").exists()
    c = compare([run])
    cell = c.cells[("galera-3", "partition-isolate-primary")]
    assert cell.valid is True
    assert cell.stats("availability")["median"] == pytest.approx(0.753788)  # type: ignore[index]
    assert cell.stats("lost")["median"] == 0  # type: ignore[index]


def test_find_runs_refuses_a_directory_without_runs(tmp_path: Path) -> None:
    from harness.errors import InputError

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no run directories"):
        find_runs([tmp_path / "empty"])
    with pytest.raises(InputError, match="no such directory"):
        find_runs([tmp_path / "nope"])


def test_cli_compare_json_and_output_file(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["compare", str(runs), "--json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)  # nothing but the document on stdout
    assert len(doc["cells"]) == 4
    target = tmp_path / "cmp.csv"
    assert cli.main(["compare", str(runs), "--format", "csv", "-o", str(target)]) == 0
    assert target.read_text().startswith("topology,scenario,runs,valid,lost_median")
    assert cli.main(["compare", str(tmp_path / "nope")]) == 2


def test_compare_html_loads_in_chromium_without_errors(runs: Path, tmp_path: Path) -> None:
    from tests.unit.test_report_html import CHROMIUM, external_references, load_in_chromium

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (setup.sh installs Debian's chromium)")
    page = tmp_path / "compare.html"
    page.write_text(render(compare([runs]), "html"))
    assert external_references(page.read_text()) == []
    loaded = load_in_chromium(page, tmp_path / "compare.png")
    assert loaded.errors == []
    assert 'data-cells="4"' in loaded.dom
    assert loaded.screenshot.stat().st_size > 5_000


def test_a_fault_never_recovered_from_reads_never() -> None:
    import math

    from harness.report.compare import METRICS, Cell, Comparison, RunSummary, metric_text
    from harness.report.html import recovery_s

    outages = [
        {"event": "kill-1", "time_to_recover_ns": 2 * S},
        {"event": "none", "time_to_recover_ns": 9 * S},
    ]
    assert recovery_s({"outages": outages}) == 2.0  # an outage no fault explains is not a recovery
    assert recovery_s({"outages": [*outages, {"event": "kill-2", "time_to_recover_ns": None}]}) == math.inf
    assert recovery_s({"outages": outages[1:]}) is None
    run = RunSummary(Path("r"), "r", "t", "s", False, {"time_to_recover_s": math.inf}, {})
    cell = Cell("t", "s", [run])
    ttr = next(m for m in METRICS if m.key == "time_to_recover_s")
    assert metric_text(cell, ttr) == "time to recover never"
    doc = json.loads(render(Comparison(["t"], ["s"], {("t", "s"): cell}), "json"))
    assert doc["cells"][0]["metrics"]["time_to_recover_s"]["median"] is None  # JSON has no infinity


def test_an_openstack_boot_run_shows_its_lost_rows_and_duplicates(tmp_path: Path) -> None:
    run = make_run(tmp_path / "os" / "r1", topology="openstack-galera-rabbitmq", scenario="boot-db-partition")
    doc = json.loads((run / "result.json").read_text())
    doc["children"].pop("set")
    doc["children"]["boot"] = {"valid": False, "figures": {"lost": 3, "duplicated": 2, "stuck": 1}}
    (run / "result.json").write_text(json.dumps(doc))
    cell = compare([tmp_path / "os"]).cells[("openstack-galera-rabbitmq", "boot-db-partition")]
    assert cell.stats("lost")["median"] == 3.0  # type: ignore[index]
    assert cell.stats("duplicated")["median"] == 2.0  # type: ignore[index]
