"""Guarantees (``expect:``): bounds parsed and refused at load with FILE:LINE, resolved topology < scenario <
section, judged on composed results (breached: invalid; figure missing: unknown, never a pass), on a real
stored run, through ``check_report`` and on the fake runtime."""

from __future__ import annotations

import json
import math
import operator
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.checkers.base import CheckContext, Checker, Result, compose
from harness.checkers.guarantees import (
    GUARANTEES,
    NEVER,
    OPS,
    Bound,
    check_guarantees,
    expect_problems,
    parse_bound,
    resolve_bounds,
)
from harness.model.loading import SpecError
from harness.model.scenario import Scenario
from harness.report.console import console, result_table
from harness.runner import check_report, run_scenario
from harness.runtime.fake import FakeRuntime
from harness.specs import load_scenario, load_topology
from tests.support import fake_system
from tests.support.fake_system import fake_topology

ROOT = Path(__file__).resolve().parents[2]
STORED = ROOT / "tests" / "data" / "runs" / "set-partition"
PY_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
          ">=": operator.ge}  # fmt: skip

finite = st.one_of(st.integers(-(10**9), 10**9), st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False))


# ------------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize(
    ("raw", "op", "value"),
    [(0, "==", 0), (2.5, "==", 2.5), ("0", "==", 0), (">= 0.95", ">=", 0.95), ("<=10", "<=", 10),
     ("< 2", "<", 2), ("> -1", ">", -1), ("!= 3", "!=", 3), ("== 1e3", "==", 1000.0), ("  <= .5 ", "<=", 0.5)],
)  # fmt: skip
def test_a_bound_is_a_number_or_op_number(raw: object, op: str, value: float) -> None:
    bound = parse_bound(raw)
    assert (bound.op, bound.value) == (op, value)
    assert type(bound.value) is type(value)


@pytest.mark.parametrize(
    "raw", ["<= ten", "=< 3", "~ 1", "<=", "", "<= 10s", "nan", "inf", ">= 1e999", True, None, [1], {"a": 1},
            math.nan, math.inf],
)  # fmt: skip
def test_a_malformed_bound_is_refused_with_the_syntax(raw: object) -> None:
    with pytest.raises(ValueError, match=r"a bound is a number \(meaning ==\) or a string 'OP NUMBER'"):
        parse_bound(raw)


@given(op=st.sampled_from(list(OPS)), bound=finite, figure=finite)
def test_each_operator_compares_as_python_does(op: str, bound: float, figure: float) -> None:
    parsed = parse_bound(f"{op} {bound!r}")
    assert parsed == Bound(op, bound)
    assert parsed.holds(figure) is PY_OPS[op](float(figure), float(bound))


@pytest.mark.parametrize(("op", "holds"), [("==", False), ("!=", True), ("<", False), ("<=", False),
                                           (">", True), (">=", True)])  # fmt: skip
def test_never_recovered_compares_as_infinity(op: str, holds: bool) -> None:
    assert Bound(op, 15).holds(NEVER) is holds


def test_an_unknown_operator_is_no_bound() -> None:
    with pytest.raises(ValueError, match="unknown operator '=<'"):
        Bound("=<", 1)


# ------------------------------------------------------------------------------------------ at load
def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


SCENARIO = """\
name: t
systems: [galera, rabbitmq]
workload:
  galera: {type: sql-set}
  rabbitmq: {type: amqp-queue}
steps:
  - wait: 1s
expect:
"""


def test_an_unknown_guarantee_is_an_input_error_naming_file_line_and_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, SCENARIO + "  lost: 0\n  lsot: 0\n")
    with pytest.raises(SpecError) as exc:
        load_scenario(path)
    (line,) = exc.value.problems
    assert line.startswith(f"{path}:10: expect.lsot: unknown guarantee 'lsot', expected one of: ")
    assert ", ".join(GUARANTEES) in line


def test_every_bad_bound_is_reported_at_its_line_sections_included(tmp_path: Path) -> None:
    path = write(tmp_path, SCENARIO + '  availability: ">= x"\n  galera:\n    duplicated: true\n    nope: 1\n'
                 "  Bad_Name: {lost: 0}\n")  # fmt: skip
    with pytest.raises(SpecError) as exc:
        load_scenario(path)
    lines = exc.value.problems
    assert [ln.split(": ", 2)[:2] for ln in lines] == [
        [f"{path}:9", "expect.availability"],
        [f"{path}:11", "expect.galera.duplicated"],
        [f"{path}:12", "expect.galera.nope"],
        [f"{path}:13", "expect.Bad_Name"],
    ]
    assert "got '>= x'" in lines[0] and "got True" in lines[1]
    assert (
        "unknown guarantee 'nope'" in lines[2] and "(or a system" not in lines[2]
    )  # no sections in sections
    assert "nor a system or topology name" in lines[3]


def test_a_topology_takes_flat_bounds_only(tmp_path: Path) -> None:
    base = "name: g\nsystem: galera\nnodes: 3\nexpect:\n"
    topology = load_topology(write(tmp_path, base + '  lost: 0\n  lag_p99_s: "< 2"\n', "ok.yaml"))
    assert topology.expect == {"lost": 0, "lag_p99_s": "< 2"}
    bad = write(tmp_path, base + "  galera: {lost: 0}\n", "bad.yaml")
    with pytest.raises(SpecError) as exc:
        load_topology(bad)
    assert exc.value.problems[0].startswith(f"{bad}:5: expect.galera: unknown guarantee 'galera'")


def test_shipped_scenarios_state_only_known_guarantees() -> None:
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        scenario = load_scenario(path)
        assert scenario.expect, f"{path.name} states no guarantee"
        assert expect_problems(scenario.expect, sections=True) == []


def test_mmm_kill_writer_promises_no_lost_bound_and_quorum_queues_do() -> None:
    """Honesty: async replication may lose the old writer's last writes; quorum queues may not."""
    writer = load_scenario(ROOT / "scenarios" / "kill-writer.yaml")
    mmm = load_topology(ROOT / "topologies" / "mmm-2.yaml")
    bounds = resolve_bounds(mmm.expect, writer.expect, system="mmm", topology=mmm.name)
    assert "lost" not in bounds and bounds["longest_outage_s"] == Bound("<=", 10)
    isolate = load_scenario(ROOT / "scenarios" / "partition-isolate-primary.yaml")
    for name, lost in [("rabbitmq-3", True), ("rabbitmq-3-autoheal", False), ("galera-3", True)]:
        topology = load_topology(ROOT / "topologies" / f"{name}.yaml")
        got = resolve_bounds(topology.expect, isolate.expect, system=topology.system, topology=name)
        assert ("lost" in got) is lost, name


# ------------------------------------------------------------------------------------------ resolving
def test_later_layers_win_per_name_in_table_order() -> None:
    topology = {"lost": 5, "availability": ">= 0.5", "lag_p99_s": "< 9"}
    scenario = {"availability": ">= 0.9", "galera": {"lost": 1, "lag_p99_s": "< 3"}, "galera-3": {"lost": 0},
                "rabbitmq": {"lost": 7}}  # fmt: skip
    got = resolve_bounds(topology, scenario, system="galera", topology="galera-3")
    assert got == {"lost": Bound("==", 0), "availability": Bound(">=", 0.9), "lag_p99_s": Bound("<", 3)}
    assert list(got) == [n for n in GUARANTEES if n in got]
    other = resolve_bounds(topology, scenario, system="rabbitmq", topology="rabbitmq-3")
    assert other["lost"] == Bound("==", 7) and other["lag_p99_s"] == Bound("<", 9)


# ------------------------------------------------------------------------------------------ judging
def returning(result: Result) -> Checker:
    def checker(history: Any, ctx: CheckContext, /) -> Result:
        return result

    return checker


def composed(**children: Result) -> Result:
    """What ``compose`` makes of checkers returning these results."""
    return compose({name: returning(r) for name, r in children.items()})((), CheckContext())  # type: ignore[arg-type]


def bounds(**raw: Any) -> dict[str, Bound]:
    return {name: parse_bound(v) for name, v in raw.items()}


def test_no_bounds_leaves_the_result_as_it_was() -> None:
    result = composed(set=Result(True, figures={"lost": 0}))
    assert check_guarantees(result, {}) is result


def test_a_held_bound_passes_with_the_documented_shape() -> None:
    result = check_guarantees(composed(set=Result(True, figures={"lost": 0})), bounds(lost=0))
    assert result.valid is True
    assert result.to_dict()["children"]["guarantees"] == {
        "valid": True,
        "figures": {"lost": 0},
        "details": {
            "bounds": [
                {
                    "name": "lost",
                    "check": "set",
                    "figure": "lost",
                    "op": "==",
                    "bound": 0,
                    "value": 0,
                    "passed": True,
                }
            ]
        },
    }


def test_a_breached_bound_makes_the_verdict_invalid_even_when_every_checker_is_valid() -> None:
    result = check_guarantees(composed(queue=Result(True, figures={"lost": 0, "duplicated": 4})),
                              bounds(lost=0, duplicated=0))  # fmt: skip
    child = result.children["guarantees"]
    assert result.valid is False and child.valid is False
    assert [(r["check"], r["passed"]) for r in child.details["bounds"]] == [("queue", True), ("queue", False)]
    assert child.notes == ("duplicated == 0 breached: queue.duplicated = 4",)


@pytest.mark.parametrize(
    ("children", "why"),
    [({}, "the run has no set, queue or boot checker"),
     ({"set": Result("unknown", notes=("no final read",))}, "set has no figure lost; set says: no final read"),
     ({"set": Result("unknown", error="ValueError: boom")}, "set says: ValueError: boom")],
)  # fmt: skip
def test_a_figure_the_run_does_not_have_is_unknown_never_a_pass(
    children: dict[str, Result], why: str
) -> None:
    result = check_guarantees(composed(availability=Result(True, figures={"availability": 1.0}), **children),
                              bounds(lost=0))  # fmt: skip
    (row,) = result.children["guarantees"].details["bounds"]
    assert row["passed"] == "unknown" and row["value"] is None
    assert result.valid == "unknown"
    assert why in result.children["guarantees"].notes[0]


def test_a_breach_outranks_an_unknown() -> None:
    result = check_guarantees(
        composed(set=Result(True, figures={"lost": 3})), bounds(lost=0, lag_p99_s="< 2")
    )
    assert result.children["guarantees"].valid is False and result.valid is False


@given(op=st.sampled_from(list(OPS)), bound=finite, figure=finite)
def test_the_verdict_is_the_comparison(op: str, bound: float, figure: float) -> None:
    result = check_guarantees(composed(availability=Result(True, figures={"longest_outage_s": figure})),
                              {"longest_outage_s": Bound(op, bound)})  # fmt: skip
    assert result.valid is PY_OPS[op](float(figure), float(bound))


def outage(event: str, ttr_ns: int | None) -> dict[str, Any]:
    return {"event": event, "time_to_recover_ns": ttr_ns}


@pytest.mark.parametrize(
    ("figures", "value"),
    [({"outage_count": 0, "outages": []}, 0.0),
     ({"outage_count": 3, "outages": [outage("none", None), outage("e1", 2_500_000_000), outage("e2", 900)]}, 2.5),
     ({"outage_count": 2, "outages": [outage("e1", 1_000), outage("e2", None)]}, NEVER),
     ({"outage_count": 5, "outages": [outage("e1", 1_000)]}, None),
     ({"writes": 0}, None)],
)  # fmt: skip
def test_time_to_recover_is_the_slowest_recovery_from_a_fault(figures: dict[str, Any], value: object) -> None:
    result = check_guarantees(
        composed(availability=Result(True, figures=figures)), bounds(time_to_recover_s="<= 15")
    )
    (row,) = result.children["guarantees"].details["bounds"]
    assert row["value"] == value
    assert row["passed"] == {0.0: True, 2.5: True, NEVER: False, None: "unknown"}[value]  # type: ignore[index]


def test_lag_p99_and_divergence_are_read_where_they_live() -> None:
    result = check_guarantees(
        composed(lag=Result(True, figures={"overall": {"p99": 1.5}}),
                 divergence=Result(False, figures={"differing": ["t", "u"]})),
        bounds(lag_p99_s="< 2", divergent_tables=0),
    )  # fmt: skip
    rows = result.children["guarantees"].details["bounds"]
    assert [(r["name"], r["figure"], r["value"], r["passed"]) for r in rows] == [  # in the order given
        ("lag_p99_s", "overall.p99", 1.5, True),
        ("divergent_tables", "differing (count)", 2, False),
    ]


# ------------------------------------------------------------------------------------------ stored runs
def stored_with(
    tmp_path: Path, expect: dict[str, Any], topology_expect: dict[str, Any] | None = None
) -> Path:
    run = tmp_path / "run"
    shutil.copytree(STORED, run)
    scenario = json.loads((run / "scenario.json").read_text())
    (run / "scenario.json").write_text(json.dumps({**scenario, "expect": expect}))
    if topology_expect is not None:
        topology = json.loads((run / "topology.json").read_text())
        (run / "topology.json").write_text(json.dumps({**topology, "expect": topology_expect}))
    return run


def test_a_stored_run_without_expect_has_no_guarantees_child() -> None:
    result = check_report(STORED, write=False)
    assert "guarantees" not in result.children and result.valid is True


def test_a_stored_run_meets_the_bounds_its_design_gives(tmp_path: Path) -> None:
    run = stored_with(tmp_path, {"unexpected": 0, "galera": {"lost": 0, "duplicated": 0, "divergent_tables": 0},
                                 "rabbitmq-3": {"lost": 5}})  # fmt: skip
    result = check_report(run)
    child = result.children["guarantees"]
    assert result.valid is True and child.valid is True
    assert child.figures == {"lost": 0, "unexpected": 0, "duplicated": 0, "divergent_tables": 0}
    stored = json.loads((run / "result.json").read_text())
    assert stored["children"]["guarantees"] == child.to_dict()
    assert check_report(run, write=False).to_dict() == stored  # a re-check gives the same


def test_a_stored_run_breaching_bounds_is_invalid_and_says_which(tmp_path: Path) -> None:
    run = stored_with(tmp_path, {"availability": ">= 0.9", "time_to_recover_s": "< 4", "lag_p99_s": "< 2",
                                 "bad_reads": 0}, topology_expect={"lost": 0})  # fmt: skip
    result = check_report(run, write=False)
    rows = {r["name"]: r for r in result.children["guarantees"].details["bounds"]}
    assert result.valid is False
    assert {n: r["passed"] for n, r in rows.items()} == {
        "lost": True, "bad_reads": "unknown", "availability": False, "time_to_recover_s": False, "lag_p99_s": False,
    }  # fmt: skip
    assert rows["availability"]["value"] == 0.753788 and rows["time_to_recover_s"]["value"] == 4.321813
    assert rows["lag_p99_s"]["value"] == 16.516633 and rows["bad_reads"]["check"] == "counter"


def test_the_scenario_overrides_the_topology_per_name(tmp_path: Path) -> None:
    run = stored_with(
        tmp_path, {"galera-3": {"availability": ">= 0.7"}}, topology_expect={"availability": ">= 0.99"}
    )
    result = check_report(run, write=False)
    (row,) = result.children["guarantees"].details["bounds"]
    assert (row["op"], row["bound"], row["passed"]) == (">=", 0.7, True)


def test_a_stored_topology_that_does_not_validate_is_an_input_error(tmp_path: Path) -> None:
    from harness.errors import InputError

    run = stored_with(tmp_path, {}, topology_expect={"lsot": 0})
    with pytest.raises(InputError, match=r"topology.json: expect\.lsot: .*unknown guarantee 'lsot'"):
        check_report(run, write=False)


def test_the_console_table_shows_each_bound_its_figure_and_pass_or_fail(tmp_path: Path) -> None:
    run = stored_with(tmp_path, {"lost": 0, "availability": ">= 0.9", "bad_reads": 0})
    with console.capture() as captured:
        console.print(result_table("t", check_report(run, write=False)))
    rows = {ln.split("│")[1].strip(): ln for ln in captured.get().splitlines() if "expect " in ln}
    assert set(rows) == {"expect lost == 0", "expect availability >= 0.9", "expect bad_reads == 0"}
    assert "pass" in rows["expect lost == 0"] and "set.lost = 0" in rows["expect lost == 0"]
    assert "FAIL" in rows["expect availability >= 0.9"] and "= 0.754" in rows["expect availability >= 0.9"]
    assert (
        "unknown" in rows["expect bad_reads == 0"]
        and "counter.bad_reads = -" in rows["expect bad_reads == 0"]
    )


# ------------------------------------------------------------------------------------------ a whole run
@pytest.mark.usefixtures("fake_system")
@pytest.mark.parametrize(("lost", "valid"), [(set(), True), ({1, 2}, False)])
def test_a_run_judges_its_scenarios_guarantees(tmp_path: Path, lost: set[int], valid: bool) -> None:
    fake_system.LOST.update(lost)
    scenario = Scenario.model_validate({
        "name": "t", "systems": ["fake"], "settle": "0.05s", "steps": [{"wait": "0.1s"}],
        "workload": {"fake": {"type": "sql-set", "clients": 2, "rate": 200, "quiesce": "0s"}},
        "expect": {"lost": 0, "fake-3": {"availability": ">= 0.5"}},
    })  # fmt: skip
    outcome = run_scenario(fake_topology(), scenario, runtime=FakeRuntime(), reports=tmp_path)
    child = outcome.result.children["guarantees"]
    assert child.figures["lost"] == len(lost) and child.figures["availability"] > 0.5
    assert child.valid is valid and outcome.result.valid is valid
    stored = json.loads((outcome.report_dir / "result.json").read_text())
    assert stored["children"]["guarantees"]["details"]["bounds"][0]["passed"] is valid
