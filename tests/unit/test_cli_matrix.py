"""``harness run`` with several scenarios (``--count``, ``--json``), ``harness matrix``, ``harness nightly`` and
``harness trends`` end to end on the fake runtime (the fake system: control flow only, no claim about any
real system)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import cli
from harness.runtime.fake import FakeRuntime
from tests.support import fake_system

etree = pytest.importorskip("lxml.etree", reason="lxml is in the test extra")
lxml_html = pytest.importorskip("lxml.html")

pytestmark = pytest.mark.usefixtures("fake_system")
XSD = Path(__file__).resolve().parents[1] / "data" / "junit.xsd"

TOPOLOGY = "system: fake\nname: {name}\nnodes: 3\ntimeouts: {{startup: 5, heal: 5}}\n"
SCENARIO = """name: {name}
systems: [{system}]
settle: 0.05s
workload:
  {system}: {{type: sql-set, clients: 2, rate: 200, quiesce: 0s}}
steps:
  - {step}
  - wait: 0.05s
"""


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    rt = FakeRuntime()
    monkeypatch.setattr(cli, "_runtime", lambda: rt)
    return rt


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """topologies/fake-3.yaml, fake-4.yaml; scenarios/wait.yaml, kill.yaml (fake), galera-only.yaml."""
    (tmp_path / "topologies").mkdir()
    (tmp_path / "scenarios").mkdir()
    for name in ("fake-3", "fake-4"):
        (tmp_path / "topologies" / f"{name}.yaml").write_text(TOPOLOGY.format(name=name))
    (tmp_path / "topologies" / "fake-4.yaml").write_text(TOPOLOGY.format(name="fake-4").replace("3", "4"))
    for name, system, step in [("wait", "fake", "wait: 0.05s"), ("kill", "fake", "kill: n2"),
                               ("galera-only", "galera", "wait: 0.05s")]:  # fmt: skip
        (tmp_path / "scenarios" / f"{name}.yaml").write_text(
            SCENARIO.format(name=name, system=system, step=step)
        )
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def run_dirs(reports: Path) -> list[Path]:
    return sorted(p.parent for p in reports.rglob("result.json"))


# ---------------------------------------------------------------------------------------------- run
def test_run_several_scenarios(capsys: pytest.CaptureFixture[str], runtime: FakeRuntime, files: Path) -> None:
    reports = files / "reports"
    code, out, _ = run(capsys, "run", files / "topologies/fake-3.yaml", files / "scenarios/wait.yaml",
                       files / "scenarios/kill.yaml", "--reports", reports)  # fmt: skip
    assert code == 0, out
    assert len(run_dirs(reports)) == 2
    assert "wait on fake-3 — run" in out and "kill on fake-3 — run" in out
    assert "2 runs on fake-3" in out
    assert runtime.containers() == []  # nothing left


def test_run_count_and_json(capsys: pytest.CaptureFixture[str], runtime: FakeRuntime, files: Path) -> None:
    reports = files / "reports"
    code, out, _ = run(capsys, "run", files / "topologies/fake-3.yaml", files / "scenarios/wait.yaml",
                       files / "scenarios/kill.yaml", "--count", "2", "--json", "--reports", reports)  # fmt: skip
    assert code == 0
    doc = json.loads(out)  # stdout is one JSON document, the progress went to stderr
    assert doc["valid"] is True and doc["count"] == 2 and doc["topology"] == "fake-3"
    assert [r["scenario"] for r in doc["runs"]] == ["wait", "kill", "wait", "kill"]
    first = doc["runs"][0]
    assert set(first) >= {"run_id", "report_dir", "verdict", "figures", "reused", "replaced", "cluster_id"}
    assert first["verdict"] == "valid" and first["figures"]["lost"] == 0
    assert 0 < first["figures"]["availability"] <= 1
    assert Path(first["report_dir"]).is_dir() and len({r["run_id"] for r in doc["runs"]}) == 4


def test_run_exit_1_when_any_verdict_is_invalid(
    capsys: pytest.CaptureFixture[str], runtime: FakeRuntime, files: Path
) -> None:
    fake_system.LOST.update({1, 2})
    code, out, _ = run(capsys, "run", files / "topologies/fake-3.yaml", files / "scenarios/wait.yaml",
                       "--json", "--reports", files / "reports")  # fmt: skip
    assert code == 1 and json.loads(out)["runs"][0]["verdict"] == "invalid"


def test_run_refuses_every_bad_input_before_anything_starts(
    capsys: pytest.CaptureFixture[str], runtime: FakeRuntime, files: Path
) -> None:
    bad = files / "scenarios/bad.yaml"
    bad.write_text(SCENARIO.format(name="bad", system="fake", step="wait: soon"))
    code, _, err = run(capsys, "run", files / "topologies/fake-3.yaml", files / "scenarios/wait.yaml", bad,
                       files / "scenarios/galera-only.yaml", files / "scenarios/missing.yaml",
                       "--reports", files / "reports")  # fmt: skip
    assert code == 2
    lines = err.strip().splitlines()
    assert any(ln.startswith(f"{bad}:7: steps[0].wait") for ln in lines), lines
    assert any("galera-only.yaml" in ln and "not fake" in ln for ln in lines), lines
    assert any(ln.startswith(f"{files / 'scenarios/missing.yaml'}: file not found") for ln in lines), lines
    assert runtime.calls == [] and not (files / "reports").exists()
    code, _, err = run(capsys, "run", files / "topologies/fake-3.yaml", files / "scenarios/wait.yaml",
                       "--count", "0")  # fmt: skip
    assert code == 2 and "--count" in err


# ---------------------------------------------------------------------------------------------- matrix
def test_matrix_dry_run_lists_pairs_and_skipped(
    capsys: pytest.CaptureFixture[str], runtime: FakeRuntime, files: Path
) -> None:
    code, out, _ = run(capsys, "matrix", files / "topologies/fake-3.yaml", files / "topologies/fake-4.yaml",
                       "--scenarios", files / "scenarios", "--dry-run", "--reports", files / "reports")  # fmt: skip
    assert code == 0
    assert "would run on fake-3" in out and "would run on fake-4" in out
    assert "kill, wait" in out  # the directory's files, sorted
    assert out.count("skipped galera-only on fake-") == 2 and "this scenario is for galera, not fake" in out
    assert runtime.calls == [] and not (files / "reports").exists()


def test_matrix_takes_topologies_as_an_option_too(
    capsys: pytest.CaptureFixture[str], runtime: FakeRuntime, files: Path
) -> None:
    code, out, _ = run(capsys, "matrix", "--topologies", files / "topologies/fake-3.yaml", "--scenarios",
                       files / "scenarios", "--dry-run")  # fmt: skip
    assert code == 0 and "would run on fake-3" in out
    code, _, err = run(capsys, "matrix", "--scenarios", files / "scenarios", "--dry-run")
    assert code == 2 and "expected at least one topology" in err
    assert runtime.calls == []


def test_matrix_with_an_invalid_file_is_bad_input(
    capsys: pytest.CaptureFixture[str], runtime: FakeRuntime, files: Path
) -> None:
    (files / "scenarios/kill.yaml").write_text("name: kill\nsteps: []\n")
    code, _, err = run(capsys, "matrix", files / "topologies/fake-3.yaml", "--scenarios",
                       files / "scenarios/*.yaml", "--dry-run")  # fmt: skip
    assert code == 2 and f"{files / 'scenarios/kill.yaml'}:" in err
    assert runtime.calls == []


def test_matrix_runs_compares_and_writes_its_files(
    capsys: pytest.CaptureFixture[str], runtime: FakeRuntime, files: Path
) -> None:
    reports = files / "reports"
    code, out, _ = run(capsys, "matrix", files / "topologies/fake-3.yaml", files / "topologies/fake-4.yaml",
                       "--scenarios", files / "scenarios/wait.yaml", files / "scenarios/kill.yaml",
                       files / "scenarios/galera-only.yaml", "--reports", reports)  # fmt: skip
    assert code == 0, out
    assert "runs compared" in out
    (directory,) = reports.glob("matrix-*")
    for name in ("matrix.html", "matrix.md", "matrix.json", "junit.xml"):
        assert (directory / name).is_file(), name
    assert len(run_dirs(directory)) == 4  # the runs live in the matrix's directory
    doc = json.loads((directory / "matrix.json").read_text())
    assert doc["kind"] == "ha-harness matrix" and doc["valid"] is True
    assert {(c["topology"], c["scenario"]) for c in doc["cells"]} == {
        ("fake-3", "wait"), ("fake-3", "kill"), ("fake-4", "wait"), ("fake-4", "kill")}  # fmt: skip
    assert [(s["topology"], s["scenario"]) for s in doc["skipped"]] == [("fake-3", "galera-only"),
                                                                         ("fake-4", "galera-only")]  # fmt: skip
    assert doc["cells"][0]["figures"]["lost"] == 0
    page = lxml_html.fromstring((directory / "matrix.html").read_text())
    assert len(page.xpath('//td[@class="cell"]')) == 4 and len(page.xpath('//li[@class="skipped"]')) == 2
    assert "galera-only on fake-3" in (directory / "matrix.md").read_text()
    junit = etree.fromstring((directory / "junit.xml").read_bytes())
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    assert schema.validate(junit), schema.error_log
    suites = junit.findall("testsuite")
    assert [s.get("name") for s in suites] == ["fake-3", "fake-4"]
    assert [c.get("name") for c in suites[0].findall("testcase")] == ["wait", "kill"]
    assert junit.get("tests") == "4" and junit.get("failures") == "0"


def test_matrix_count_repeats_and_failures_reach_junit(
    capsys: pytest.CaptureFixture[str], runtime: FakeRuntime, files: Path
) -> None:
    fake_system.LOST.add(1)
    reports = files / "reports"
    code, _, _ = run(capsys, "matrix", files / "topologies/fake-3.yaml", "--scenarios", files / "scenarios/wait.yaml",
                     "--count", "2", "--reports", reports)  # fmt: skip
    assert code == 1
    (directory,) = reports.glob("matrix-*")
    junit = etree.fromstring((directory / "junit.xml").read_bytes())
    cases = junit.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == ["wait", "wait #2"]
    assert all(c.find("failure") is not None for c in cases) and junit.get("failures") == "2"
    (cell,) = json.loads((directory / "matrix.json").read_text())["cells"]
    assert cell["runs"] == 2 and cell["verdict"] == "invalid" and cell["figures"]["lost"] == 1


# ---------------------------------------------------------------------------------------------- nightly
NIGHTLY = """name: nightly
topologies: [topologies/fake-3.yaml]
scenarios: [scenarios/wait.yaml, scenarios/galera-only.yaml]
reports: out
history: 2
regressions: {availability_drop: 0.5}
"""


def test_nightly_then_a_regression_then_trends_rebuilt(
    capsys: pytest.CaptureFixture[str], runtime: FakeRuntime, files: Path
) -> None:
    nightly = files / "nightly.yaml"
    nightly.write_text(NIGHTLY)
    out_dir = files / "out"
    code, out, _ = run(capsys, "nightly", nightly, "--dry-run")
    assert code == 0 and "would run on fake-3" in out and not out_dir.exists()
    code, out, err = run(capsys, "nightly", nightly)
    assert code == 0, out + err
    code, out, err = run(capsys, "nightly", nightly)
    assert code == 0, out + err
    for name in ("trends.html", "trends.json", "regressions.md"):
        assert (out_dir / name).is_file()
    assert "**passed**" in (out_dir / "regressions.md").read_text()
    fake_system.LOST.update({1, 2})  # the third nightly loses acknowledged ids
    code, out, _ = run(capsys, "nightly", nightly)
    assert code == 1
    assert "regression" in out and "lost 0 → 2" in out
    nightlies = sorted(p.name for p in out_dir.glob("nightly-*"))
    assert len(nightlies) == 2  # history: 2 keeps the two newest
    lines = [json.loads(line) for line in (out_dir / "history.jsonl").open()]  # and the figures of all three
    assert len({line["nightly"] for line in lines}) == 3
    lost = [line["value"] for line in lines if (line["scenario"], line["figure"]) == ("wait", "lost")]
    assert lost == [0, 0, 2]
    doc = json.loads((out_dir / "trends.json").read_text())
    assert doc["failed"] is True and [n["id"] for n in doc["nightlies"]] == nightlies
    assert {(r["figure"], r["against"]) for r in doc["regressions"]} == {
        ("verdict", "previous"),
        ("lost", "previous"),
    }
    page = lxml_html.fromstring((out_dir / "trends.html").read_text())
    (row,) = page.xpath('//tr[@data-topology="fake-3"][@data-scenario="wait"]')
    assert {s.get("data-figure") for s in row.xpath(".//svg")} >= {"verdict", "lost", "availability"}
    assert {td.get("data-figure") for td in row.xpath('.//td[contains(@class, "regressed")]')} == {
        "verdict",
        "lost",
    }
    # rebuilt from the stored nightlies, nothing runs
    calls = len(runtime.calls)
    (out_dir / "trends.html").unlink()
    code, out, _ = run(capsys, "trends", out_dir, "--nightly", nightly)
    assert code == 1 and (out_dir / "trends.html").is_file() and len(runtime.calls) == calls
    code, _, err = run(capsys, "trends", files / "scenarios")
    assert code == 2 and "no nightly in it" in err


def test_ctrl_c_during_a_matrix_keeps_the_finished_runs_and_leaves_nothing(
    capsys: pytest.CaptureFixture[str], runtime: FakeRuntime, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = files / "reports"
    seen: list[str] = []

    def interrupted_after_the_first(outcome: object) -> str:  # Ctrl-C arrives as the first run is logged
        seen.append(str(outcome))
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_scenario_name", interrupted_after_the_first)
    code, _, err = run(capsys, "matrix", files / "topologies/fake-3.yaml", files / "topologies/fake-4.yaml",
                       "--scenarios", files / "scenarios/wait.yaml", files / "scenarios/kill.yaml",
                       "--reports", reports)  # fmt: skip
    assert code == 130 and "interrupted" in err and len(seen) == 1
    (directory,) = reports.glob("matrix-*")
    doc = json.loads((directory / "matrix.json").read_text())
    assert doc["interrupted"] is True and len(doc["runs"]) == 1  # the finished run, compared
    assert [(c["topology"], c["scenario"]) for c in doc["cells"]] == [("fake-3", "wait")]
    assert len(run_dirs(directory)) == 1 and (directory / "junit.xml").is_file()
    assert runtime.containers() == [] and runtime.networks() == []  # the cluster was removed
