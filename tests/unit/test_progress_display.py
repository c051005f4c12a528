"""The live progress display (``harness.progress`` and ``harness.report.progress``): on a terminal it shows
every long phase with its current step; off a terminal, with ``--no-progress``, ``HARNESS_PROGRESS=0`` or
``--json``, the output is the plain log lines and nothing else. A whole run on the fake runtime (control flow
only, no claim about any real system)."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from harness import cli, progress
from harness.model.scenario import Scenario
from harness.report import console as console_mod
from harness.report.progress import LiveReporter, live_display, wanted
from harness.runner import describe_step, run_scenario
from harness.runtime.fake import FakeRuntime
from harness.runtime.wait import wait_until
from tests.support.fake_system import fake_topology

pytestmark = pytest.mark.usefixtures("fake_system")

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(force_terminal=True, file=buf, width=120, highlight=False, soft_wrap=True), buf


def plain(buf: io.StringIO) -> str:
    return ANSI.sub("", buf.getvalue()).replace("\r", "\n")


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LiveReporter, io.StringIO]]:
    """A live display on a terminal console that the log lines are printed on too, installed."""
    term, buf = terminal()
    monkeypatch.setattr(console_mod, "console", term)
    reporter = LiveReporter(term, refresh_per_second=20)
    with progress.installed(reporter):
        yield reporter, buf
    reporter.stop()


@pytest.fixture
def log_lines() -> Iterator[None]:
    """The harness's log on the console (``ProgressHandler``), as the CLI has it."""
    root = logging.getLogger("harness")
    handler = console_mod.ProgressHandler()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    yield
    root.removeHandler(handler)
    root.setLevel(previous)


def scenario(*steps: dict[str, object]) -> Scenario:
    doc = {"name": "t", "systems": ["fake"], "settle": "0.05s", "steps": list(steps),
           "workload": {"fake": {"type": "sql-set", "clients": 2, "rate": 200, "quiesce": "0s"}}}  # fmt: skip
    return Scenario.model_validate(doc)


# ------------------------------------------------------------------------------------ the display itself
def test_phases_rows_steps_and_notes_are_drawn(live: tuple[LiveReporter, io.StringIO]) -> None:
    reporter, buf = live
    with progress.phase("bring-up", total=3) as shown:
        shown.update("network")
        shown.row("n1", "started", completed=1, total=2)
        progress.note("waiting for n1 answering")
        reporter.bar.refresh()
    with progress.phase("timeline", total=45, clock=True) as shown:
        shown.update("step 2/6 t=12s partition n1 | n2,n3", completed=12)
        reporter.bar.refresh()
    text = plain(buf)
    assert "bring-up" in text and "network; waiting for n1 answering" in text
    assert "· n1" in text and "started" in text
    assert "step 2/6 t=12s partition n1 | n2,n3" in text and "12s/45s, 33s left" in text
    assert reporter.phases == [] and not reporter.bar.live.is_started  # gone once the last phase ends


def test_a_timeline_runs_with_the_wall_clock_during_a_wait(live: tuple[LiveReporter, io.StringIO]) -> None:
    reporter, _ = live
    with progress.phase("timeline", total=10, clock=True) as shown:
        shown.update(completed=2.0, until=2.3)
        time.sleep(0.1)
        list(reporter.bar.get_renderables())
        (task,) = reporter.bar.tasks
        assert 2.05 < task.completed < 2.3
        time.sleep(0.3)
        list(reporter.bar.get_renderables())
        assert task.completed == pytest.approx(2.3)  # never past the wait's end
        shown.update(completed=5.0)  # a fault step: the clock stands still
        time.sleep(0.05)
        list(reporter.bar.get_renderables())
        assert task.completed == 5.0


def test_a_note_goes_to_the_phase_of_the_calling_thread(live: tuple[LiveReporter, io.StringIO]) -> None:
    reporter, _ = live
    with progress.phase("bring-up"):
        other = threading.Thread(target=progress.note, args=("from a workload thread",))
        other.start()
        other.join()
        assert reporter.bar.tasks[0].fields["note"] == ""
        assert wait_until(lambda: reporter.bar.tasks[0].fields["note"], timeout=1, what="n1 answering") == (
            "waiting for n1 answering"
        )
        assert reporter.bar.tasks[0].fields["note"] == ""  # cleared once the wait is over


def test_off_a_terminal_or_when_turned_off_nothing_is_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    with live_display(Console(file=buf)) as reporter, progress.phase("bring-up", total=3) as shown:
        shown.update("network")
        assert reporter is progress.NULL and not progress.enabled()
    term, term_buf = terminal()
    with live_display(term, enabled=False), progress.phase("bring-up"):
        assert not progress.enabled()
    assert buf.getvalue() == "" and term_buf.getvalue() == ""
    assert wanted() and not wanted(flag_off=True)
    monkeypatch.setenv("HARNESS_PROGRESS", "0")
    assert not wanted()


def test_steps_in_a_few_words() -> None:
    sc = scenario({"kill": "primary"}, {"partition": {"isolate": "n1"}}, {"heal": "all"}, {"wait": "1s"},
                  {"partition": {"groups": [["n1"], ["n2", "n3"]]}})  # fmt: skip
    assert [describe_step(s) for s in sc.steps] == ["kill primary", "partition isolate=n1", "heal all", "wait 1s",
                                                    "partition groups=n1 | n2,n3"]  # fmt: skip


# ---------------------------------------------------------------------------------------- a whole run
def test_a_whole_run_shows_every_phase_above_which_the_log_lines_stay(
    live: tuple[LiveReporter, io.StringIO], log_lines: None, tmp_path: Path
) -> None:
    reporter, buf = live
    sc = scenario({"kill": "n2"}, {"wait": "0.3s"}, {"start": "all"})
    outcome = run_scenario(fake_topology(), sc, runtime=FakeRuntime(), reports=tmp_path)
    assert outcome.result.valid is True
    text = plain(buf)
    for shown in ("bring-up", "· n1", "· n3", "started", "workload setup", "timeline", "step 1/3 t=0s kill n2",
                  "after the timeline", "final reads", "checks"):  # fmt: skip
        assert shown in text, shown
    assert "network hh-" in text and "kill on n2 via" in text  # the log lines, printed through the display
    assert reporter.phases == [] and not reporter.bar.live.is_started


def test_a_run_off_a_terminal_prints_the_plain_log_lines_only(
    monkeypatch: pytest.MonkeyPatch, log_lines: None, tmp_path: Path
) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(console_mod, "console", Console(file=buf, width=120, highlight=False, soft_wrap=True))
    with live_display(console_mod.console):
        run_scenario(fake_topology(), scenario({"kill": "n2"}, {"start": "all"}), runtime=FakeRuntime(),
                     reports=tmp_path)  # fmt: skip
    text = buf.getvalue()
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert lines and all(re.match(r"^ *\d+\.\ds ", line) for line in lines), lines
    assert not any("bring-up" in line or "s left" in line for line in lines)


# ----------------------------------------------------------------------------------------------- --json
def write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    topology = tmp_path / "fake-3.yaml"
    topology.write_text("system: fake\nname: fake-3\nnodes: 3\ntimeouts: {startup: 5, heal: 5}\n")
    sc = tmp_path / "kill.yaml"
    sc.write_text("name: kill\nsystems: [fake]\nsettle: 0.05s\nworkload:\n"
                  "  fake: {type: sql-set, clients: 2, rate: 200, quiesce: 0s}\nsteps:\n  - kill: n2\n"
                  "  - start: all\n")  # fmt: skip
    return topology, sc


def test_json_output_stays_one_document_with_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    term, buf = terminal()
    monkeypatch.setattr(console_mod, "console", term)
    runtime = FakeRuntime()
    monkeypatch.setattr(cli, "_runtime", lambda: runtime)
    topology, sc = write_inputs(tmp_path)
    code = cli.main(["run", str(topology), str(sc), "--json", "--reports", str(tmp_path / "reports")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["valid"] is True  # stdout: the document and nothing else
    assert buf.getvalue() == ""  # no display drawn on the terminal meanwhile
    assert "\x1b" not in err and "network hh-" in err  # the plain log lines on stderr


def test_no_progress_is_a_global_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    term, buf = terminal()
    monkeypatch.setattr(console_mod, "console", term)
    runtime = FakeRuntime()
    monkeypatch.setattr(cli, "_runtime", lambda: runtime)
    topology, sc = write_inputs(tmp_path)
    code = cli.main(["--no-progress", "run", str(topology), str(sc), "--reports", str(tmp_path / "reports")])
    assert code == 0
    text = plain(buf)
    assert "kill on n2 via" in text and "bring-up" not in text and "s left" not in text
    assert "HARNESS_PROGRESS=0" in cli.build_parser().format_help()
