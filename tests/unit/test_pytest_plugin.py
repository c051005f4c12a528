"""The pytest plugin, in pytester sessions on the fake runtime: which scenario files become which tests, how
clusters are shared and always removed, what a failure says and what ``--junitxml`` carries.

Each inner session runs in this process (``runpytest_inprocess``), so the fake system the ``fake_system``
fixture registers is its too; ``FakeHarness`` overrides ``harness_runtime`` with one ``FakeRuntime`` this
test can inspect afterwards. No engine; no claim about any real system."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.runtime import labels as L
from harness.runtime.fake import FakeRuntime
from tests.support import fake_system

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("fake_system")

TOPOLOGY = "name: {name}\nsystem: fake\nnodes: {nodes}\ntimeouts: {{startup: 5s, heal: 5s}}\n"
WORKLOAD = "workload:\n  fake: {type: sql-set, clients: 2, rate: 200, quiesce: 0s}\nsettle: 0.05s\n"
SCENARIOS = {
    "quick": "name: quick\nsystems: [fake]\n" + WORKLOAD + "steps:\n  - wait: 0.05s\nexpect:\n  lost: 0\n",
    "kill-n3": "name: kill-n3\nsystems: [fake]\n" + WORKLOAD + "steps:\n  - kill: n3\n  - start: all\n",
    "ring": "name: ring\nsystems: [fake]\n" + WORKLOAD + "steps:\n  - partition: {shape: majorities_ring}\n",
    "galera-only": "name: galera-only\nsystems: [galera]\nworkload:\n  galera: {type: sql-set}\n"
                   "steps:\n  - wait: 1s\n",
}  # fmt: skip
TWO = ["--harness-topology", "fake-3", "--harness-topology", "topologies/fake-2.yaml"]


class FakeHarness:
    """A plugin for the inner session holding the in-memory runtime its conftest's ``harness_runtime``
    returns (a conftest fixture overrides the installed plugin's; a plugin object's would not)."""

    def __init__(self) -> None:
        self.fake_runtime = FakeRuntime()

    @property
    def runtime(self) -> FakeRuntime:
        return self.fake_runtime

    def ups(self) -> int:
        return len(self.runtime.verbs("create_network"))

    def left(self) -> list[str]:
        r = self.runtime
        return [x.name for x in [*r.containers(), *r.networks(), *r.volumes()]]


CONFTEST = """
import pytest

@pytest.fixture(scope="session")
def harness_runtime(pytestconfig):
    (plugin,) = [p for p in pytestconfig.pluginmanager.get_plugins() if hasattr(p, "fake_runtime")]
    return plugin.fake_runtime
"""


def no_docker(*_: object, **__: object) -> None:
    raise AssertionError("these tests must never reach a Docker engine")


@pytest.fixture
def harness(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> FakeHarness:
    """A pytester directory with two fake topologies and a few scenarios (and a YAML file that is none)."""
    monkeypatch.setattr("harness.runtime.docker.DockerRuntime", no_docker)
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(CONFTEST)
    (pytester.path / "topologies").mkdir()
    (pytester.path / "topologies" / "fake-3.yaml").write_text(TOPOLOGY.format(name="fake-3", nodes=3))
    (pytester.path / "topologies" / "fake-2.yaml").write_text(TOPOLOGY.format(name="fake-2", nodes=2))
    (pytester.path / "scenarios").mkdir()
    for name, text in SCENARIOS.items():
        (pytester.path / "scenarios" / f"{name}.yaml").write_text(text)
    (pytester.path / "scenarios" / "notes.yaml").write_text("title: not a scenario\n")
    return FakeHarness()


def run(pytester: pytest.Pytester, harness: FakeHarness, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", *args, plugins=[harness], no_reraise_ctrlc=True
    )


# ------------------------------------------------------------------------------------------ collection
def test_without_a_topology_no_scenario_file_is_collected(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    result = run(pytester, harness, "--collect-only", "-q", "scenarios")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert harness.runtime.calls == []


def test_one_test_per_topology_a_scenario_is_meant_for(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    result = run(pytester, harness, "--collect-only", "-q", *TWO, "scenarios")
    ids = [ln for ln in result.outlines if "::" in ln]
    assert ids == [
        "scenarios/kill-n3.yaml::fake-3::kill-n3",
        "scenarios/kill-n3.yaml::fake-2::kill-n3",
        "scenarios/quick.yaml::fake-3::quick",
        "scenarios/quick.yaml::fake-2::quick",
        "scenarios/ring.yaml::fake-3::ring",
        "scenarios/ring.yaml::fake-2::ring",
    ]  # galera-only is for another system; notes.yaml has no steps


def test_pairs_that_do_not_fit_are_skipped_with_every_problem(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    result = run(pytester, harness, *TWO, "-rs", "scenarios")
    result.assert_outcomes(passed=3, skipped=3)
    skips = "\n".join(ln for ln in result.outlines if ln.startswith("SKIPPED"))
    assert "kill-n3 does not fit topology fake-2: " in skips and "unknown node or role 'n3'" in skips
    assert skips.count("majorities_ring needs at least 4 nodes") == 2
    assert harness.ups() == 2 and harness.left() == []  # one cluster per topology, reused by its scenarios


def test_a_test_id_selects_one_pair(pytester: pytest.Pytester, harness: FakeHarness) -> None:
    result = run(pytester, harness, *TWO, "-v", "scenarios/quick.yaml::fake-2::quick")
    result.assert_outcomes(passed=1)
    assert harness.ups() == 1
    assert len(harness.runtime.verbs("run")) == 2  # fake-2: two nodes


def test_a_broken_scenario_is_a_collection_error_naming_file_and_line(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    bad = pytester.path / "scenarios" / "bad.yaml"
    bad.write_text(SCENARIOS["quick"].replace("lost: 0", "lsot: 0"))
    result = run(pytester, harness, *TWO, "scenarios/bad.yaml")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # collection errors stop the session
    result.stdout.fnmatch_lines([f"*{bad}:9: expect.lsot: unknown guarantee 'lsot', expected one of: lost,*"])
    assert harness.runtime.calls == []


def test_an_unknown_topology_is_a_usage_error(pytester: pytest.Pytester, harness: FakeHarness) -> None:
    result = run(pytester, harness, "--harness-topology", "nope", "scenarios")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--harness-topology: nope: no such file, nor topologies/nope.yaml under*"])


# ------------------------------------------------------------------------------------------ failures
def properties(element: ET.Element) -> dict[str, str]:
    """The JUnit ``<property name value>`` pairs under ``element``."""
    return {p.get("name", ""): p.get("value", "") for p in element.iter("property")}


def test_a_breached_guarantee_fails_with_the_bound_the_ids_and_the_run_directory(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    fake_system.LOST.update({1, 2, 5})
    xml = pytester.path / "out.xml"
    result = run(
        pytester, harness, "--harness-topology", "fake-3", f"--junitxml={xml}", "scenarios/quick.yaml"
    )
    result.assert_outcomes(failed=1)
    text = "\n".join(result.outlines)
    assert "quick on fake-3: INVALID (run fake-3-" in text
    assert "guarantee lost == 0 breached: set.lost = 3" in text
    assert "check set: INVALID" in text and "lost ids: 1-2,5" in text
    run_dir = next(
        ln.split("run directory: ")[1].split(" (")[0] for ln in result.outlines if "run directory: " in ln
    )
    assert (Path(run_dir) / "result.json").is_file() and Path(run_dir).parent == pytester.path / "reports"
    assert "Traceback" not in text and "def runtest" not in text  # the message, not the harness's code
    props = properties(ET.parse(xml).getroot())
    assert props["harness.verdict"] == "invalid" and props["harness.run_dir"] == run_dir
    assert props["set.lost"] == "3" and props["set.valid"] == "invalid"
    assert props["guarantee.lost"] == "FAIL: set.lost = 3 (== 0)"
    assert float(props["availability.availability"]) > 0
    assert harness.left() == []


def test_a_guarantee_on_a_figure_the_run_lacks_is_unknown_and_fails(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    (pytester.path / "scenarios" / "quick.yaml").write_text(SCENARIOS["quick"] + "  lag_p99_s: '< 2'\n")
    result = run(pytester, harness, "--harness-topology", "fake-3", "scenarios/quick.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["quick on fake-3: unknown (run fake-3-*",
                                 "*guarantee lag_p99_s < 2: unknown, the run has no lag checker"])  # fmt: skip


def test_passing_scenarios_carry_their_figures_in_junitxml(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    xml = pytester.path / "out.xml"
    result = run(pytester, harness, *TWO, f"--junitxml={xml}", "scenarios/quick.yaml")
    result.assert_outcomes(passed=2)
    cases = {f"{c.get('classname')}.{c.get('name')}": c for c in ET.parse(xml).getroot().iter("testcase")}
    assert set(cases) == {"scenarios.quick.yaml.fake-3.quick", "scenarios.quick.yaml.fake-2.quick"}
    for case in cases.values():
        props = properties(case)
        assert props["harness.verdict"] == "valid" and props["set.lost"] == "0"
        assert props["guarantee.lost"] == "pass: set.lost = 0 (== 0)"
        assert int(props["set.acknowledged"]) > 0


# ------------------------------------------------------------------------------------------ keeping
def test_on_failure_keeps_the_failed_run_and_removes_the_passed_one(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    fake_system.LOST.add(1)
    result = run(pytester, harness, *TWO, "--harness-keep=on-failure", "scenarios/quick.yaml")
    result.assert_outcomes(failed=2)
    kept = {r.labels[L.RUN_ID] for r in harness.runtime.networks()}
    assert len(kept) == 2 and all(harness.runtime.volumes(k) for k in kept)  # handed over: never swept
    result.stdout.fnmatch_lines(["*ha-harness: clusters kept*", "fake-3-*: *fake-3::quick failed; `harness down "
                                 "fake-3-*` removes it"])  # fmt: skip
    fake_system.LOST.clear()
    harness.runtime.remove_run()
    result = run(pytester, harness, *TWO, "--harness-keep=on-failure", "scenarios/quick.yaml")
    result.assert_outcomes(passed=2)
    assert harness.left() == []


def test_a_run_that_errors_leaves_nothing_even_when_keeping(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    from harness.errors import InfraError

    def boom(*_: object) -> None:
        raise InfraError("engine gone")

    harness.runtime.fail_on["pause"] = boom
    (pytester.path / "scenarios" / "quick.yaml").write_text(
        SCENARIOS["quick"].replace("- wait: 0.05s", "- pause: n2")
    )
    result = run(
        pytester, harness, "--harness-topology", "fake-3", "--harness-keep=always", "scenarios/quick.yaml"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["InfraError: engine gone"])
    assert harness.ups() == 1 and harness.left() == []


# ------------------------------------------------------------------------------------------ fixtures
HAND_WRITTEN = """
import pytest

SEEN = []

@pytest.mark.topology("fake-3")
def test_one(harness_cluster, nemesis):
    SEEN.append(harness_cluster.id)
    nemesis.kill("n1")
    assert harness_cluster.runtime.state(harness_cluster.run.node("n1").container).status == "exited"

@pytest.mark.topology("fake-3")
def test_two(harness_cluster):
    SEEN.append(harness_cluster.id)
    # the nemesis of test_one healed in its teardown: n1 runs again
    assert harness_cluster.runtime.state(harness_cluster.run.node("n1").container).status == "running"

@pytest.mark.topology("topologies/fake-2.yaml")
def test_other_topology(harness_cluster):
    SEEN.append(harness_cluster.id)
    assert harness_cluster.topology.name == "fake-2"

@pytest.mark.topology("fake-3")
def test_three(harness_cluster):
    SEEN.append(harness_cluster.id)
    assert SEEN[0] == SEEN[1] == SEEN[3] != SEEN[2]
"""


def test_one_cluster_per_topology_is_shared_across_tests(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    pytester.makepyfile(test_hand=HAND_WRITTEN)
    result = run(pytester, harness, "--strict-markers", "test_hand.py")
    result.assert_outcomes(passed=4)
    assert harness.ups() == 2  # fake-3 once, fake-2 once
    assert len(harness.runtime.verbs("kill")) == 1 and harness.runtime.verbs("start")  # healed
    assert harness.left() == []  # removed at session end


def test_a_failed_test_retires_its_cluster_and_the_next_gets_a_new_one(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    pytester.makepyfile(
        test_hand="""
import pytest

IDS = []

@pytest.mark.topology("fake-3")
def test_fails(harness_cluster):
    IDS.append(harness_cluster.id)
    assert False, "on purpose"

@pytest.mark.topology("fake-3")
def test_next(harness_cluster):
    IDS.append(harness_cluster.id)
    assert IDS[0] != IDS[1]
"""
    )
    result = run(pytester, harness, "test_hand.py")
    result.assert_outcomes(passed=1, failed=1)
    assert harness.ups() == 2 and harness.left() == []


def test_an_error_in_setup_removes_the_cluster_even_under_on_failure(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    pytester.makepyfile(
        test_hand="""
import pytest

@pytest.fixture
def broken(harness_cluster):
    raise RuntimeError("setup broke")

@pytest.mark.topology("fake-3")
def test_errors(broken):
    pass

@pytest.mark.topology("fake-3")
def test_after(harness_cluster):
    assert harness_cluster.tests == 1  # a new cluster, not the one of the error
"""
    )
    result = run(pytester, harness, "--harness-keep=on-failure", "test_hand.py")
    result.assert_outcomes(passed=1, errors=1)
    assert harness.ups() == 2 and harness.left() == []


def test_a_cluster_that_does_not_come_up_leaves_nothing(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    from harness.errors import InfraError

    def second_node_fails(name: str) -> None:
        if name.endswith("-n2"):
            raise InfraError("cannot start n2")

    harness.runtime.fail_on["run"] = second_node_fails
    pytester.makepyfile(
        test_hand="""
import pytest

@pytest.mark.topology("fake-3")
def test_needs_a_cluster(harness_cluster):
    pass
"""
    )
    result = run(pytester, harness, "test_hand.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*InfraError: cannot start n2*"])
    assert harness.ups() == 1 and harness.left() == []


def test_ctrl_c_removes_every_cluster_even_under_always(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    pytester.makepyfile(
        test_hand="""
import pytest

@pytest.mark.topology("fake-3")
def test_fine(harness_cluster):
    pass

@pytest.mark.topology("topologies/fake-2.yaml")
def test_interrupted(harness_cluster):
    raise KeyboardInterrupt
"""
    )
    result = run(pytester, harness, "--harness-keep=always", "test_hand.py")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert harness.ups() == 2 and harness.left() == []


def test_always_keeps_the_pooled_clusters_at_the_end(pytester: pytest.Pytester, harness: FakeHarness) -> None:
    pytester.makepyfile(
        test_hand="""
import pytest

@pytest.mark.topology("fake-3", fresh=True)
def test_fresh(harness_cluster):
    assert harness_cluster.tests == 1

@pytest.mark.topology("fake-3", fresh=True)
def test_fresh_too(harness_cluster):
    assert harness_cluster.tests == 1
"""
    )
    result = run(pytester, harness, "--harness-keep=always", "test_hand.py")
    result.assert_outcomes(passed=2)
    assert harness.ups() == 2  # fresh: one each
    assert len({r.labels[L.RUN_ID] for r in harness.runtime.networks()}) == 2
    harness.runtime.remove_run()


def test_a_test_without_a_topology_errors_saying_how_to_give_one(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    pytester.makepyfile(test_hand="def test_x(harness_cluster):\n    pass\n")
    result = run(pytester, harness, "test_hand.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no topology for this test: mark it @pytest.mark.topology('galera-3') or pass "
                                 "--harness-topology PATH*"])  # fmt: skip
    assert harness.runtime.calls == []


def test_run_scenario_runs_a_scenario_on_the_tests_topology(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    pytester.makepyfile(
        test_hand="""
import pytest
from tests.support import fake_system

@pytest.mark.topology("fake-2")
def test_valid(run_scenario):
    outcome = run_scenario("quick")
    assert outcome.result.children["guarantees"].figures == {"lost": 0}

def test_invalid_but_not_checked(run_scenario):
    fake_system.LOST.add(1)
    outcome = run_scenario("scenarios/quick.yaml", topology="fake-3", check=False)
    assert outcome.result.valid is False

def test_invalid_fails(run_scenario):
    fake_system.LOST.add(1)
    run_scenario("quick", topology="fake-3")
"""
    )
    result = run(pytester, harness, "test_hand.py")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*quick on fake-3: INVALID (run fake-3-*", "*guarantee lost == 0 breached: set.lost = 1"]
    )
    # fake-2 once; fake-3 once: an invalid verdict is a finding, not a broken cluster, so it is lent again
    assert harness.ups() == 2 and harness.left() == []


def test_scenarios_reuse_one_cluster_healed_between_them_and_an_unhealthy_one_is_replaced(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    (pytester.path / "scenarios" / "pause-n2.yaml").write_text(
        SCENARIOS["quick"].replace("name: quick", "name: pause-n2").replace("- wait: 0.05s", "- pause: n2")
    )
    pytester.makepyfile(
        test_hand="""
import pytest
from tests.support import fake_system

@pytest.mark.topology("fake-3")
def test_sicken(harness_cluster):
    fake_system.SICK.add(harness_cluster.id)  # it will not come back healthy for the next test

@pytest.mark.topology("fake-3")
def test_replaced(run_scenario):
    outcome = run_scenario("quick")
    assert outcome.replaced and "not healthy within" in outcome.replaced and not outcome.reused
    assert any("replaced the cluster" in note for note in outcome.result.notes)
"""
    )
    result = run(pytester, harness, "--harness-topology", "fake-3", "-p", "no:randomly",
                 "scenarios/quick.yaml", "scenarios/pause-n2.yaml", "scenarios/kill-n3.yaml")  # fmt: skip
    result.assert_outcomes(passed=3)
    assert harness.ups() == 1
    dirs = sorted(p.name for p in (pytester.path / "reports").iterdir())
    (first,) = [d for d in dirs if d.count("-") == 2]
    assert dirs == sorted([first, f"{first}-2", f"{first}-3"])
    verbs = [c[0] for c in harness.runtime.calls]
    assert verbs.index("unpause") > verbs.index("pause")  # healed before the next scenario
    result = run(pytester, harness, "--harness-topology", "fake-3", "test_hand.py")
    result.assert_outcomes(passed=2)
    assert harness.ups() == 3 and harness.left() == []


def test_a_cluster_whose_nemesis_cannot_heal_is_retired(
    pytester: pytest.Pytester, harness: FakeHarness
) -> None:
    pytester.makepyfile(
        test_hand="""
import pytest
from harness.errors import InfraError

IDS = []

def boom(*_):
    raise InfraError("cannot start")

@pytest.mark.topology("fake-3")
def test_breaks_heal(harness_cluster, nemesis):
    IDS.append(harness_cluster.id)
    nemesis.kill("n1")
    harness_cluster.runtime.fail_on["start"] = boom  # the teardown's heal will fail

@pytest.mark.topology("fake-3")
def test_next(harness_cluster):
    harness_cluster.runtime.fail_on.clear()
    IDS.append(harness_cluster.id)
    assert IDS[0] != IDS[1] and harness_cluster.tests == 1
"""
    )
    result = run(pytester, harness, "test_hand.py")
    result.assert_outcomes(passed=2, errors=1)  # the first passes, then errors in teardown
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_breaks_heal*"])
    assert harness.ups() == 2 and harness.left() == []
