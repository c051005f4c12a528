"""``junit.xml``: one testsuite per run, a testcase per check and per guarantee bound, validated against
the Ant/Jenkins JUnit schema (``tests/data/junit.xsd``) with lxml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.checkers.base import Result
from harness.report.html import write_report
from harness.report.junit import junit_xml
from harness.runner import check_report
from tests.unit.test_compare import STORED, bound, make_run, with_guarantees

etree = pytest.importorskip("lxml.etree", reason="lxml is in the test extra (pip install -e '.[test]')")

XSD = Path(__file__).resolve().parents[1] / "data" / "junit.xsd"


@pytest.fixture(scope="module")
def schema() -> object:
    return etree.XMLSchema(etree.parse(str(XSD)))


def validate(schema: object, data: bytes) -> object:
    doc = etree.fromstring(data)
    ok = schema.validate(doc)  # type: ignore[attr-defined]
    assert ok, schema.error_log  # type: ignore[attr-defined]
    return doc


def test_stored_run_junit_is_valid(tmp_path: Path, schema: object) -> None:
    run = tmp_path / "run"
    shutil.copytree(STORED, run)
    write_report(run, check_report(run, write=False))
    doc = validate(schema, (run / "junit.xml").read_bytes())
    (suite,) = doc.findall("testsuite")  # type: ignore[attr-defined]
    assert suite.get("name") == "partition-isolate-primary on galera-3"
    assert suite.get("tests") == "5" and suite.get("failures") == "0" and suite.get("skipped") == "0"
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names == ["check set", "check set-full", "check availability", "check divergence", "check lag"]
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["run_id"] == "galera-3-eeaa1c" and props["seed"] == "0"
    assert props["set.lost"] == "0" and props["availability.outage_count"] == "3"
    assert props["lag.overall.p99"].startswith("16.5")
    assert float(suite.get("time")) == pytest.approx(41.0, abs=0.1)
    out = suite.find("testcase").find("system-out").text
    assert "acknowledged = 1365" in out


def test_invalid_unknown_and_crashed_checks_and_bounds(tmp_path: Path, schema: object) -> None:
    run = make_run(tmp_path / "r", lost=(5,), write_result=False)
    result = check_report(run, write=False)
    children = dict(result.children)
    children["lag"] = Result("unknown", notes=("no numeric samples",))
    children["bank"] = Result("unknown", error="ZeroDivisionError: division by zero",
                              details={"traceback": "Traceback ...\x00bad byte"}, notes=("checker crashed",))  # fmt: skip
    result = with_guarantees(Result(False, children=children), [
        bound("no loss", "set", "lost", "==", 0, 1, False),
        bound("available", "availability", "availability", ">=", 0.5, 0.9, True),
        {"name": "lag bound", "check": "lag", "figure": "overall.p99", "op": "<=", "bound": 1, "value": None,
         "passed": None}])  # fmt: skip
    data = junit_xml(result, suite="s on t", classname="t.s", properties={"seed": 7}, time_s=21.5)
    doc = validate(schema, data)
    suite = doc.find("testsuite")  # type: ignore[attr-defined]
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["check set"].find("failure").get("message").startswith("1 lost id(s): 5")
    assert cases["check lag"].find("skipped").get("message") == "verdict unknown: no numeric samples"
    error = cases["check bank"].find("error")
    assert error.get("message") == "ZeroDivisionError: division by zero" and "\x00" not in error.text
    assert (
        cases["guarantee no loss: set.lost == 0"].find("failure").get("message")
        == "no loss: set.lost == 0, value 1"
    )
    passed = cases["guarantee available: availability.availability >= 0.5"]
    assert passed.find("failure") is None and passed.find("skipped") is None
    assert cases["guarantee lag bound: lag.overall.p99 <= 1"].find("skipped") is not None
    assert "check guarantees" not in cases  # its bounds are the cases
    assert cases["check divergence"].find("skipped") is not None  # the synthetic run took no checksums
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
        "9",
        "3",  # set and set-full both see the lost id
        "1",
        "3",
    )
    assert doc.get("tests") == "9" and suite.get("time") == "21.500"  # type: ignore[attr-defined]


def test_schema_rejects_what_jenkins_would(schema: object) -> None:
    bad = b'<testsuites><testsuite name="x" tests="1"><testcase classname="c"/></testsuite></testsuites>'
    assert not schema.validate(etree.fromstring(bad))  # type: ignore[attr-defined]  # a testcase needs a name
    misplaced = (b'<testsuites><testsuite name="x" tests="1"><testcase name="a"><properties/></testcase>'
                 b"</testsuite></testsuites>")  # fmt: skip
    assert not schema.validate(etree.fromstring(misplaced))  # type: ignore[attr-defined]
