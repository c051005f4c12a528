"""Checker options as typed models: old defaults kept, unknown options and wrong types refused, all at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from harness.checkers import (
    CHECK_OPTIONS,
    CHECKERS,
    BankOptions,
    CheckContext,
    LagOptions,
    OptionsError,
    check_options,
    compose,
    validate_check_options,
)
from harness.errors import InputError
from harness.model.history import History

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))

# the defaults the checkers applied with ``opts.get(name, default)`` before options became models
OLD_DEFAULTS: dict[str, dict[str, Any]] = {
    "set": {"add_f": "add", "read_f": "read", "require_all_nodes": True, "nodes": None, "max_ranges": 50},
    "queue": {"enqueue_f": "enqueue", "dequeue_f": "dequeue", "drain_f": "drain", "allow_duplicates": True,
              "max_ranges": 50},
    "bank": {"expected_total": None, "accounts": None, "allow_negative": False, "transfer_f": "transfer",
             "read_f": "read", "opening_balance": None},
    "counter": {"add_f": "add", "read_f": "read", "initial": 0, "examples": 5},
    "availability": {"write_fs": ("add", "enqueue", "transfer", "write", "cast"), "demand_fs": ("connect", "insert"),
                     "bin_ms": 100, "max_outage_s": None, "min_availability": None, "max_outages": 100},
    "lag": {"metric": "replication_lag_s", "caught_up_s": 1.0, "max_points": 1000, "max_lag_s": None,
            "max_catch_up_s": None},
    "divergence": {"tables": None},
    "boot": {"max_ranges": 50},
    "set-full": {"add_f": "add", "read_fs": ("scan", "read"), "max_ranges": 50, "worst": 8},
    "elle": {"model": "serializable", "realtime": None, "process": False, "f": "txn", "max_examples": 10},
}  # fmt: skip


def test_every_checker_has_an_options_model() -> None:
    assert list(CHECK_OPTIONS) == list(CHECKERS)


@pytest.mark.parametrize("name", CHECKERS)
def test_defaults_are_the_old_defaults(name: str) -> None:
    assert CHECK_OPTIONS[name]().model_dump() == OLD_DEFAULTS[name]
    assert CheckContext().options_for(name, CHECK_OPTIONS[name]) == CHECK_OPTIONS[name]()
    assert CheckContext(options={name: None}).options_for(name, CHECK_OPTIONS[name]) == CHECK_OPTIONS[name]()  # type: ignore[dict-item]


@pytest.mark.parametrize("name", CHECKERS)
def test_unknown_option_is_refused(name: str) -> None:
    expected = ", ".join(OLD_DEFAULTS[name])
    assert validate_check_options({name: {"nope": 1}}) == [
        (("checks", name, "nope"), f"unknown option 'nope', expected one of: {expected}")
    ]


@pytest.mark.parametrize(
    ("name", "option", "value", "loc", "message"),
    [
        ("availability", "max_outage_s", "abc", (),
         "input should be a valid number, unable to parse string as a number, got 'abc'"),
        ("availability", "write_fs", "add", (), "input should be a list, got 'add'"),
        ("availability", "bin_ms", 0, (), "input should be greater than or equal to 0.001, got 0"),
        ("availability", "min_availability", 1.5, (), "input should be less than or equal to 1, got 1.5"),
        ("bank", "allow_negative", "maybe", (),
         "input should be a valid boolean, unable to interpret input, got 'maybe'"),
        ("bank", "accounts", [0, None], (1,), "input should be a valid string, got None"),
        ("counter", "examples", -1, (), "input should be greater than or equal to 0, got -1"),
        ("divergence", "tables", "t1", (), "input should be a list, got 't1'"),
        ("lag", "max_points", 0, (), "input should be greater than or equal to 1, got 0"),
        ("lag", "max_lag_s", -1, (), "input should be greater than or equal to 0, got -1"),
        ("queue", "max_ranges", "many", (),
         "input should be a valid integer, unable to parse string as an integer, got 'many'"),
        ("set", "read_f", 7, (), "input should be a valid string, got 7"),
    ],
)  # fmt: skip
def test_wrong_type_or_value_is_refused(
    name: str, option: str, value: Any, loc: tuple[int, ...], message: str
) -> None:
    assert validate_check_options({name: {option: value}}) == [(("checks", name, option, *loc), message)]


def test_every_problem_is_reported_at_once() -> None:
    checks: dict[str, dict[str, Any]] = {
        "availability": {"max_outage_s": "abc", "bin_ms": 100},
        "availabilty": {},
        "lag": {"max_lag": 5, "max_points": 0},
        "bank": {"expected_total": 500},
    }
    problems = validate_check_options(checks)
    assert [loc for loc, _ in problems] == [
        ("checks", "availability", "max_outage_s"),
        ("checks", "availabilty"),
        ("checks", "lag", "max_points"),
        ("checks", "lag", "max_lag"),
    ]
    assert problems[1][1] == f"unknown checker 'availabilty', expected one of: {', '.join(CHECKERS)}"
    assert ", ".join(CHECKERS).startswith(
        "set, set-full, queue, bank, counter, availability, lag, divergence"
    )
    assert validate_check_options({}) == []
    assert validate_check_options({"queue": 5}) == [  # type: ignore[dict-item]
        (("checks", "queue"), "input should be a mapping of options, got 5")
    ]


def test_check_options_returns_the_model() -> None:
    assert check_options("lag", {"max_lag_s": 2}) == LagOptions(max_lag_s=2.0)
    bank = check_options("bank", {"accounts": [0, "1"], "expected_total": "500"})
    assert isinstance(bank, BankOptions)
    assert bank.accounts == ("0", "1") and bank.expected_total == 500  # JSON keys are strings
    with pytest.raises(OptionsError) as info:
        check_options("nope", {})
    message = f"unknown checker 'nope', expected one of: {', '.join(CHECKERS)}"
    assert info.value.problems == [(("checks", "nope"), message)]
    assert str(info.value) == f"checks.nope: {message}"


def test_models_are_frozen() -> None:
    opts = LagOptions()
    with pytest.raises(ValueError, match="frozen"):
        opts.max_points = 5  # type: ignore[misc]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenarios_validate(path: Path) -> None:
    checks = YAML(typ="safe").load(path.read_text(encoding="utf-8")).get("checks") or {}
    assert validate_check_options(checks) == []


def test_some_shipped_scenario_has_checks() -> None:
    assert any("checks" in YAML(typ="safe").load(p.read_text(encoding="utf-8")) for p in SCENARIOS)


@pytest.mark.parametrize("name", CHECKERS)
def test_running_a_checker_with_a_bad_option_raises_input_error(name: str) -> None:
    ctx = CheckContext(options={name: {"nope": 1}})
    with pytest.raises(InputError, match=rf"^checks\.{name}\.nope: unknown option 'nope', expected one of: "):
        CHECKERS[name](History.empty(), ctx)
    with pytest.raises(InputError, match=rf"checks\.{name}\.nope"):  # not swallowed into "unknown"
        compose(CHECKERS)(History.empty(), ctx)


def test_input_error_is_one_line_naming_checker_and_option() -> None:
    ctx = CheckContext(options={"availability": {"max_outage_s": "abc", "bin_ms": -1}})
    with pytest.raises(InputError) as info:
        CHECKERS["availability"](History.empty(), ctx)
    assert str(info.value) == (
        "checks.availability.bin_ms: input should be greater than or equal to 0.001, got -1; "
        "checks.availability.max_outage_s: input should be a valid number, unable to parse string as a "
        "number, got 'abc'"
    )
    assert isinstance(info.value, OptionsError) and len(info.value.problems) == 2
