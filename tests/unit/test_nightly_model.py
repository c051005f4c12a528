"""``nightly.yaml`` (``harness.model.nightly``): strict, every problem as FILE:LINE: field: message; the shipped
file loads and ``harness validate`` checks it with every file it lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cli
from harness.model.loading import SpecError
from harness.model.nightly import load_nightly

ROOT = Path(__file__).resolve().parents[2]

GOOD = """name: nightly
topologies:
  - topologies/galera-3.yaml
scenarios:
  - scenarios/kill-primary.yaml
count: 2
regressions:
  availability_drop: 0.1
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "topologies").mkdir(exist_ok=True)
    (tmp_path / "scenarios").mkdir(exist_ok=True)
    for name in ("topologies/galera-3.yaml", "scenarios/kill-primary.yaml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    path = tmp_path / "nightly.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as exc:
        load_nightly(path)
    return exc.value.problems


def test_a_good_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    spec = load_nightly(write(tmp_path, GOOD))
    assert spec.count == 2 and spec.regressions.availability_drop == 0.1 and spec.history == 14
    assert spec.regressions.longest_outage_growth == 0.5  # defaults for what is not given


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (GOOD + "colour: red\n", 9, "colour: unknown field, expected one of: name, description, topologies"),
        (GOOD.replace("availability_drop", "availabilty_drop"), 8,
         "regressions.availabilty_drop: unknown field, expected one of: availability_drop"),
        (GOOD.replace("count: 2", "count: 0"), 6, "count: input should be greater than or equal to 1, got 0"),
        (GOOD.replace("0.1", "2"), 8, "regressions.availability_drop: input should be less than or equal to 1"),
        (GOOD + "history: many\n", 9, "history: input should be a valid integer"),
        (GOOD.replace("kill-primary", "nope"), 5, "scenarios[0]: no such file 'scenarios/nope.yaml'"),
        (GOOD.replace("scenarios/kill-primary.yaml", "scenarios/x*.yaml"), 5,
         "scenarios[0]: no file matches 'scenarios/x*.yaml'"),
        (GOOD + "pairs:\n  - {topology: topologies/mmm.yaml, scenarios: [scenarios/]}\n", 10,
         "pairs[0].topology: no such file 'topologies/mmm.yaml'"),
        (GOOD + "pairs:\n  - {topology: topologies/galera-3.yaml, scenario: [x]}\n", 10,
         "pairs[0].scenario: unknown field, expected one of: topology, scenarios"),
    ],
)  # fmt: skip
def test_problems_name_file_line_and_field(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = write(tmp_path, text)
    found = problems(path)
    assert any(p.startswith(f"{path}:{line}: {expected}") for p in found), found


def test_every_problem_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("count: 2", "count: -1") + "colour: red\nhistory: 0\n")
    assert [p.split(": ", 2)[1] for p in problems(path)] == ["count", "colour", "history"]


def test_nothing_to_run_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: nightly\ncount: 1\n")
    assert problems(path) == [f"{path}: top level: nothing to run: give topologies and scenarios, or pairs"]
    path = write(tmp_path, "topologies: [topologies/galera-3.yaml]\n")
    assert "scenarios is empty" in problems(path)[0]


def test_the_shipped_nightly_file_validates(capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_nightly(ROOT / "nightly.yaml")
    assert {Path(t).stem for t in spec.topologies} == {"galera-3", "rabbitmq-3"}
    code = cli.main(["validate", str(ROOT / "nightly.yaml")])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    assert "nightly, 9 pair(s) to run, 1 skipped" in out


def test_validate_names_the_nightly_files_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD + "colour: red\n")
    (tmp_path / "scenarios" / "kill-primary.yaml").write_text(
        "name: k\nworkload: {}\nsteps: [{wait: soon}]\n"
    )
    code = cli.main(["validate", str(path)])
    _, err = capsys.readouterr()
    assert code == 2
    assert f"{path}:9: colour: unknown field" in err
    # the listed files are checked only once the nightly file itself is good
    path.write_text(GOOD)
    code = cli.main(["validate", str(path)])
    _, err = capsys.readouterr()
    assert code == 2 and f"{tmp_path / 'scenarios' / 'kill-primary.yaml'}:3: steps[0].wait" in err
