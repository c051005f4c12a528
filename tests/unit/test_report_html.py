"""``report.html``: built for the stored real run and for synthetic ones, then loaded in a real headless
browser (Debian's chromium): every plot is in the DOM after the page's script ran, no console message or
uncaught error, no external reference, and a screenshot is kept in the test's tmp dir.

Errors are read from Chromium's own log (``--enable-logging=stderr --v=0`` prints every console message
and uncaught exception as an ``INFO:CONSOLE`` line); ``test_the_browser_check_catches_a_broken_page``
proves that a page with a JavaScript error fails it."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import cli
from harness.checkers.base import Result
from harness.report.html import MAX_POINTS, build_report, parse_ranges, write_report
from harness.runner import check_report
from harness.stored_run import load_stored_run
from tests.unit.test_compare import STORED, bound, make_run, with_guarantees

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (setup.sh installs "
                                                             "Debian's chromium; apt-get install chromium)")  # fmt: skip

PLOTS = ("plot-faults", "plot-ops-outcome", "plot-ops-node", "plot-latency", "plot-availability", "plot-lag",
         "plot-membership", "plot-metric-wsrep-cluster-size")  # fmt: skip


@dataclass
class Loaded:
    dom: str
    errors: list[str]
    screenshot: Path


def load_in_chromium(page: Path, screenshot: Path) -> Loaded:
    """Load ``page`` in headless Chromium: the DOM after its scripts ran, every console message or uncaught
    error it logged, and a 1400×3000 screenshot."""
    assert CHROMIUM is not None
    flags = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
             "--no-first-run", "--disable-extensions", f"--user-data-dir={screenshot.parent / '.chromium'}"]  # fmt: skip
    url = page.resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    shot = subprocess.run([*flags, f"--screenshot={screenshot}", "--window-size=1400,3000", url],
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    errors = [line for line in (dom.stderr + shot.stderr).splitlines()
              if ":CONSOLE" in line or "Uncaught" in line]  # fmt: skip
    return Loaded(dom.stdout, errors, screenshot)


_URL = re.compile(
    r"""(?:https?:)?//[\w.-]+|(?:src|href|action)\s*=\s*["']?(?:[a-z][\w+.-]*:|//)|@import|url\((?!#)""", re.I
)


def external_references(text: str) -> list[str]:
    """Everything in a page that could make a browser fetch something: a URL, a scheme in src/href, an
    @import, a CSS url() that is not a local #id."""
    return sorted(set(_URL.findall(text)))


@pytest.fixture
def stored_report(tmp_path: Path) -> tuple[Path, Result]:
    run = tmp_path / "set-partition"
    shutil.copytree(STORED, run)
    result = check_report(run, write=False)
    write_report(run, result)
    return run, result


def test_report_has_every_section_and_plot(stored_report: tuple[Path, Result]) -> None:
    run, _ = stored_report
    page = (run / "report.html").read_text()
    for plot in PLOTS:
        assert f'data-plot="{plot}"' in page, plot
    for section in (
        'id="headline"',
        'id="checks"',
        'id="elements"',
        'id="outages"',
        'id="events"',
        'id="run"',
    ):
        assert section in page
    assert "partition isolate: [n1] | [n2,n3]" in page
    assert '<a href="logs/' not in page  # the stored run keeps no logs
    assert "galera-3-eeaa1c" in page and "<th>seed</th><td>0</td>" in page
    assert "&quot;sst_method&quot;: &quot;rsync&quot;" in page  # the topology as run
    assert (run / "junit.xml").exists()


def test_report_references_nothing_outside(stored_report: tuple[Path, Result]) -> None:
    run, _ = stored_report
    text = (run / "report.html").read_text()
    assert external_references(text) == []
    assert "<link" not in text and "<script src" not in text and "<img" not in text
    assert external_references('<img src="https://cdn.example/x.png">') != []  # the scan would see one


@needs_chromium
def test_report_renders_in_chromium(stored_report: tuple[Path, Result], tmp_path: Path) -> None:
    run, _ = stored_report
    loaded = load_in_chromium(run / "report.html", tmp_path / "report.png")
    assert loaded.errors == []
    assert 'data-ready="1"' in loaded.dom  # the page's script ran to its end
    plots = int(re.search(r'data-plots="(\d+)"', loaded.dom).group(1))  # type: ignore[union-attr]
    assert plots >= len(PLOTS)
    for plot in PLOTS:
        m = re.search(rf'<figure class="plot" id="{plot}".*?</figure>', loaded.dom, re.S)
        assert m is not None, plot
        assert "<svg" in m.group(0) and ("<path" in m.group(0) or "<rect" in m.group(0)), plot
    assert loaded.screenshot.stat().st_size > 50_000  # a page with plots, not a blank one


@needs_chromium
def test_the_browser_check_catches_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><script>document.body.dataset.ready = "
                    "noSuchThing();</script></body></html>")  # fmt: skip
    loaded = load_in_chromium(page, tmp_path / "broken.png")
    assert any("Uncaught ReferenceError: noSuchThing is not defined" in e for e in loaded.errors)
    assert 'data-ready="1"' not in loaded.dom


def test_lost_and_duplicated_elements_are_listed_with_their_fault_window(tmp_path: Path) -> None:
    # ids 101, 102 and 104 are acknowledged by n2 and n3 during the partition, 5 before it
    run = make_run(tmp_path / "r", lost=(5, 101, 102, 104), duplicated=(7,))
    result = check_report(run, write=False)
    assert result.children["set"].figures["lost"] == 4
    write_report(run, result)
    page = (run / "report.html").read_text()
    rows = re.findall(
        r"<tr class=bad><td>set</td><td>(\w+)</td><td class=num>(\d+)</td>.*?<td>([^<]*)</td></tr>", page
    )
    by_id = {(kind, int(i)): window for kind, i, window in rows}
    assert by_id[("lost", 5)] == "before any fault"
    assert by_id[("lost", 102)].startswith("during partition-1 (partition isolate: [n1] | [n2,n3])")
    assert ("duplicated", 7) in by_id
    assert '<a href="logs/n1.log">logs/n1.log</a>' in page and '<a href="harness.log">' in page


def test_harness_actions_are_drawn_apart_from_faults(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r")
    page = build_report(load_stored_run(run), check_report(run, write=False))
    faults = re.search(r'<figure class="plot" id="plot-faults".*?</figure>', page, re.S).group(0)  # type: ignore[union-attr]
    assert 'class="seg ev-harness"' in faults and 'class="mark-harness"' in faults
    assert 'class="seg ev-partition"' in faults
    assert "harness: operator-recovery on n1" in faults
    lag = re.search(r'<figure class="plot" id="plot-lag".*?</figure>', page, re.S).group(0)  # type: ignore[union-attr]
    assert 'class="band ev-harness"' in lag and 'class="band ev-partition"' in lag  # every plot is shaded


def test_guarantees_come_first_with_their_bounds(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", write_result=False)
    result = with_guarantees(check_report(run, write=False), [
        bound("no loss", "set", "lost", "==", 0, 0, True),
        bound("short outage", "availability", "longest_outage_s", "<=", 0.5, 2.0, False)])  # fmt: skip
    page = build_report(load_stored_run(run), result)
    section = re.search(r'<section id="guarantees">.*?</section>', page, re.S).group(0)  # type: ignore[union-attr]
    assert "1 of 2 held" in section
    assert "<td>short outage</td><td><code>availability.longest_outage_s &lt;= 0.5</code></td>" in section
    assert section.index("no loss") < section.index("short outage")
    assert page.index('id="guarantees"') < page.index('id="timeline"')
    plain = build_report(load_stored_run(run), check_report(run, write=False))
    assert 'id="guarantees"' not in plain


def test_latency_points_are_sampled_for_display_only(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", seconds=1600)  # 32 000 adds: 64 006 ops
    result = check_report(run, write=False)
    stored = load_stored_run(run)
    completions = int((stored.history.type != 0).sum())
    assert completions > MAX_POINTS
    page = build_report(stored, result)
    latency = re.search(r'<figure class="plot" id="plot-latency".*?</figure>', page, re.S).group(0)  # type: ignore[union-attr]
    drawn = sum(d.count("M") for d in re.findall(r'<path class="pt [^"]*" d="([^"]*)"', latency))
    assert drawn == MAX_POINTS
    assert f"showing {MAX_POINTS:,} of {completions:,} ops" in latency
    fails = int((stored.history.type == 2).sum())
    fail_path = re.search(r'<path class="pt c-fail" d="([^"]*)"', latency).group(1)  # type: ignore[union-attr]
    assert fail_path.count("M") == fails  # few failures: every one is drawn
    assert (
        result.children["set"].figures["acknowledged"]
        == check_report(run, write=False).children["set"].figures["acknowledged"]
    )


def test_parse_ranges() -> None:
    assert parse_ranges("1-3,7,10-11", 100) == ([1, 2, 3, 7, 10, 11], False)
    assert parse_ranges("1-3,7,... (+4 more)", 100) == ([1, 2, 3, 7], True)
    assert parse_ranges("1-1000", 5) == ([1, 2, 3, 4, 5], True)


def test_cli_report_rebuilds_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(STORED, run)
    assert cli.main(["report", str(run)]) == 0
    assert "report.html" in capsys.readouterr().out
    assert (run / "report.html").stat().st_size > 10_000 and (run / "junit.xml").exists()
    assert not (run / "result.json").exists()  # rebuilding the report writes only its two files
    (run / "history.jsonl").unlink()
    assert cli.main(["report", str(run)]) == 3  # incomplete run: unknown, no report


def test_cli_check_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert cli.main(["check", str(STORED), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is True
    assert doc["result"]["children"]["set"]["figures"]["lost"] == 0
    assert doc["result"]["children"]["availability"]["figures"]["outage_count"] == 3


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"harness {version('ha-harness')}"


def test_cli_status_json(
    fake_system: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from harness.lifecycle import up
    from harness.runtime.fake import FakeRuntime
    from tests.support import fake_system as fake

    runtime = FakeRuntime()
    monkeypatch.setattr(cli, "_runtime", lambda: runtime)
    run = up(fake.fake_topology(), runtime, hand_over=True)
    capsys.readouterr()
    assert cli.main(["status", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (entry,) = doc["runs"]
    assert entry["run"] == run.id and entry["system"] == "fake"
    assert [n["node"] for n in entry["nodes"]] == [f"n{i}" for i in range(1, len(entry["nodes"]) + 1)]
    assert entry["healthy"] == len(entry["nodes"]) and all(n["healthy"] is True for n in entry["nodes"])
    assert "━" not in json.dumps(doc)
    runtime.kill(f"hh-{run.id}-n1", "KILL")
    assert cli.main(["status", run.id, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runs"][0]["healthy"] == len(entry["nodes"]) - 1


def test_membership_shows_whatever_states_the_probes_hold(tmp_path: Path) -> None:
    """RabbitMQ's partitions and queue leaders, MMM's roles: string metrics become state lanes, numeric
    ones a plot each; a probe that fell silent leaves its lane blank."""
    import json

    run = make_run(tmp_path / "r", write_result=False)
    lines = []
    for t in range(0, 20):
        for node in ("n1", "n2", "n3"):
            if node == "n3" and 8 <= t < 16:
                continue  # n3's probe silent for 8 s
            leader = "n2" if 9 <= t < 12 else "n1"
            lines += [{"time": t * S_ + 1, "node": node, "metric": "queue_leader:hh-q", "value": leader},
                      {"time": t * S_ + 2, "node": node, "metric": "partitions", "value": float(node == "n1" and t > 9)},
                      {"time": t * S_ + 3, "node": node, "metric": "mmm_roles", "value": "writer" if node == "n1" else "reader"}]  # fmt: skip
    (run / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    page = build_report(load_stored_run(run), check_report(run, write=False))
    membership = re.search(r'<figure class="plot" id="plot-membership".*?</figure>', page, re.S).group(0)  # type: ignore[union-attr]
    assert "n1 queue_leader:hh-q" in membership and "n3 mmm_roles" in membership
    assert "n2 queue_leader:hh-q = n2: 9.0–12.0 s" in membership  # the leader moved, and back
    assert "n3 queue_leader:hh-q = n1: 0.0–8.0 s" in membership  # silent from 8 s: the lane stops there
    assert 'data-plot="plot-metric-partitions"' in page
    assert 'data-plot="plot-lag" data-empty="1"' in page  # no lag samples in this run: said so
    from harness.report.html import _runs

    assert _runs([(0, "a"), (S_, "a"), (2 * S_, "b"), (20 * S_, "b")], 30 * S_) == [
        (0.0, 2.0 * S_, "a"), (2.0 * S_, 3.0 * S_, "b"), (20.0 * S_, 30 * S_, "b")]  # fmt: skip


S_ = 1_000_000_000


def test_a_report_bug_leaves_a_page_that_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.report import html

    run = make_run(tmp_path / "r", write_result=False)
    result = check_report(run, write=False)

    def broken(*_: object) -> str:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(html, "build_report", broken)
    write_report(run, result)
    page = (run / "report.html").read_text()
    assert "could not be drawn: <code>ZeroDivisionError: boom</code>" in page
    assert (run / "junit.xml").exists()
