"""Bad topology input: one line `FILE:LINE: field: message`, exit code 2, no traceback, nothing started."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cli
from harness.specs import load_topology

ROOT = Path(__file__).resolve().parents[2]  # the repository, whatever the working directory
GOOD = """\
name: g3
system: galera
nodes: 3
"""


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing may be started for bad input: reaching the runtime at all is a failure."""

    def refuse() -> None:
        raise AssertionError("the runtime was reached for bad input")

    monkeypatch.setattr(cli, "_runtime", refuse)


def write(tmp_path: Path, text: str, name: str = "topo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD + "colour: blue\n",
            "{f}:4: colour: unknown field, expected one of: name, nodes, image, timeouts, "
            "description, system, storage, clock, expect, settings",
        ),
        (
            GOOD.replace("nodes: 3", "nodes: 0"),
            "{f}:3: nodes: input should be greater than or equal to 1, got 0",
        ),
        (
            GOOD.replace("nodes: 3", "nodes: 100"),
            "{f}:3: nodes: input should be less than or equal to 9, got 100",
        ),
        (
            GOOD.replace("nodes: 3", "nodes: three"),
            "{f}:3: nodes: input should be a valid integer, unable to parse string as an integer, got 'three'",
        ),
        (
            GOOD.replace("galera", "mongodb"),
            "{f}:2: system: unknown system 'mongodb', expected one of: galera, rabbitmq, mmm, mysql-async, openstack, ndb",
        ),
        (
            GOOD.replace("system: galera\n", ""),
            "{f}:1: system: field required, expected one of: galera, rabbitmq, mmm, mysql-async, openstack, ndb",
        ),
        (
            GOOD + "settings:\n  suspect_timeout: soon\n",
            "{f}:5: settings.suspect_timeout: expected a duration like 10s, 500ms or 2m, got 'soon'",
        ),
        (
            GOOD + "settings:\n  queue_type: quorum\n",
            "{f}:5: settings.queue_type: unknown field, expected one of: sst_method, keepalive_period, "
            "inactive_check_period, suspect_timeout, inactive_timeout, install_timeout, buffer_pool_size, "
            "flush_log_at_trx_commit, flush_log_at_timeout, arbitrator, weights, sync_wait, balancer",
        ),
        (
            GOOD + "image:\n  profile: upstream\n",
            "{f}:4: image: profile upstream needs a name, e.g. percona/percona-xtradb-cluster:8.0",
        ),
        (
            GOOD.replace("name: g3", "name: Bad Name!"),
            "{f}:1: name: string should match pattern '^[a-z][a-z0-9-]{{0,30}}$', got 'Bad Name!'",
        ),
        (
            "name: g3\nsystem: [galera\n",
            "{f}:3: YAML syntax error: expected ',' or ']', but got '<stream end>'",
        ),
        ("", "{f}: file is empty, expected a YAML mapping"),
        ("- a\n- b\n", "{f}:1: top level: expected a mapping of fields, got a list"),
    ],
)
def test_bad_topology(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str) -> None:
    path = write(tmp_path, text)
    code, out, err = run_cli(capsys, "up", str(path))
    assert code == 2
    assert err.strip() == expected.format(f=path)
    assert "Traceback" not in err + out


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.yaml"
    code, _, err = run_cli(capsys, "up", str(path))
    assert (code, err.strip()) == (2, f"{path}: file not found, expected a YAML file")


def test_validate_reports_every_problem_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "name: g3\nsystem: galera\nnodes: 100\nfoo: 1\n")
    code, _, err = run_cli(capsys, "validate", str(path))
    assert code == 2
    assert err.splitlines() == [
        f"{path}:3: nodes: input should be less than or equal to 9, got 100",
        f"{path}:4: foo: unknown field, expected one of: name, nodes, image, timeouts, description, system, storage, clock, expect, settings",
    ]


def test_validate_shipped_topologies(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in (ROOT / "topologies").glob("*.yaml"))
    assert files, "no topologies shipped"
    code, out, _ = run_cli(capsys, "validate", *files)
    assert code == 0, out
    assert out.count("ok ") == len(files)


def test_durations_and_defaults(tmp_path: Path) -> None:
    topo = load_topology(
        write(tmp_path, GOOD + "settings:\n  suspect_timeout: 1500ms\n  inactive_timeout: 1m\n")
    )
    assert topo.settings.suspect_timeout == 1.5  # type: ignore[union-attr]
    assert topo.settings.inactive_timeout == 60.0  # type: ignore[union-attr]
    assert topo.node_names == ["n1", "n2", "n3"]
    assert topo.image.profile == "offline"


def test_galera_timer_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD + "settings:\n  suspect_timeout: 20s\n")
    code, _, err = run_cli(capsys, "validate", str(path))
    assert code == 2
    assert err.strip() == (
        f"{path}:4: settings: timers must satisfy keepalive_period <= suspect_timeout <= inactive_timeout"
    )


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2
    code, _, err = run_cli(capsys, "down")
    assert code == 2 and "name a run" in err
