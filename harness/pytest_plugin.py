"""The pytest plugin: scenario files as tests, and fixtures for hand-written tests on real clusters.

Installed with the package (entry point ``pytest11: ha_harness``).

Options (group "ha-harness"):

* ``--harness-topology PATH`` (repeatable): a topology file, or a name under ``<rootdir>/topologies/``;
* ``--harness-keep never|on-failure|always`` (default never): which clusters outlive their test;
* ``--harness-reports DIR`` (default ``<rootdir>/reports``): where each run's ``<run-id>/`` goes;
* ``--harness-seed N`` (default 0): the runs' seed.

**Collection.** Only with ``--harness-topology``: every ``*.yaml``/``*.yml`` file among the collected paths
whose document has ``steps`` is a scenario, and becomes one test per given topology the scenario is meant
for (its ``systems`` name the topology's system and it has a workload for it), with the id
``FILE::TOPOLOGY::SCENARIO``, e.g. ``scenarios/partition-halves.yaml::galera-3::partition-halves``.
A topology of another system is not collected for it (the scenario was never meant to run there). A pair
that is meant to run but that ``harness.plan.check_pair`` refuses (a shape the node count does not allow,
a node the topology does not have…) is collected and *skipped*, the reason naming every problem, so what
was asked for and not run shows up. A scenario that does not load, or is wrong by itself, is a collection
error (``FILE:LINE: field: message``).

A scenario test runs its scenario (``harness.runner.run_on``) on the session's cluster of its topology,
reused across scenarios and tests (healed, checked healthy and replaced if it does not come back, its
tables or queues reset by the workload), and passes when the verdict is valid, the scenario's guarantees (``expect:``) included. A failure names each breached bound (which check,
figure, bound, value), each invalid check with its notes and first lost/unexpected ids, and the run
directory. The figures go to ``item.user_properties`` (so ``--junitxml`` carries them).

**Fixtures.**

* ``harness_runtime`` (session): a ``DockerRuntime``; a session-scoped ``harness_runtime`` fixture in a
  ``conftest.py`` overrides it (scenario tests use it too);
* ``harness_topology``: the test's topology: ``@pytest.mark.topology("galera-3")`` (a name under
  ``topologies/`` or a path), else the first ``--harness-topology``;
* ``harness_clusters`` (session): the pool of running clusters, one per topology, reused across tests;
* ``harness_cluster``: a ``HarnessCluster`` (run, topology, runtime, system) on the test's topology, from
  the pool (``@pytest.mark.topology(..., fresh=True)``: one for this test only);
* ``nemesis``: a ``Nemesis`` on that cluster with a fresh events file per test, healed (and waited for) in
  teardown;
* ``run_scenario``: ``run_scenario(scenario, topology=None, seed=None, check=True) -> RunOutcome`` runs a
  scenario (a ``Scenario``, a path, or a name under ``scenarios/``) on the pool's cluster; with ``check`` an
  invalid or unknown verdict fails the test with the same message as a scenario test.

**Clusters are removed** when their test is done (a pooled one at session end), and always on Ctrl-C (or
any abnormal end of the session), when a test errors (its setup failed), when a run raises (the engine
failed mid-run) and when a nemesis cannot heal: nothing is left. ``--harness-keep`` keeps more:
``on-failure`` the cluster of a test that failed (its run's verdict or an assertion), ``always`` every
cluster of a test that did not error; kept runs are handed over (the reaper leaves them) and listed at the
end of the session (``harness down RUN`` removes one). A pooled cluster whose test failed or errored, or
whose nemesis could not heal, is never lent to another test; one whose scenario's verdict was invalid is,
unless it is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

if TYPE_CHECKING:
    from harness.checkers.base import Result
    from harness.faults.nemesis import Nemesis
    from harness.model.scenario import Scenario
    from harness.model.topology import TopologyBase
    from harness.runner import RunOutcome
    from harness.runtime.base import Runtime
    from harness.runtime.run import Run
    from harness.systems.base import ClusterSystem

__all__ = [
    "KEEP_MODES",
    "ClusterPool",
    "HarnessCluster",
    "HarnessState",
    "ScenarioFailed",
    "ScenarioFile",
    "ScenarioItem",
    "failure_message",
    "result_properties",
]

log = logging.getLogger(__name__)

KeepMode = Literal["never", "on-failure", "always"]
KEEP_MODES: tuple[KeepMode, ...] = ("never", "on-failure", "always")
Outcome = Literal["passed", "failed", "error", "interrupted"]
MAX_ELEMENTS = 5  # lost/unexpected id ranges shown per figure in a failure message

STATE = pytest.StashKey["HarnessState"]()
PHASES = pytest.StashKey[dict[str, pytest.TestReport]]()  # an item's reports by phase (setup, call…)


# ------------------------------------------------------------------------------------------ options
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ha-harness", "ha-harness: scenarios and fixtures on real clusters")
    group.addoption("--harness-topology", action="append", default=[], metavar="PATH", dest="harness_topology",
                    help="topology file (or a name under topologies/); repeatable; with it, scenario YAML "
                         "files are collected as tests, one per topology they fit")  # fmt: skip
    group.addoption("--harness-keep", choices=KEEP_MODES, default="never", dest="harness_keep",
                    help="keep clusters after their test: never (default), on-failure, always")  # fmt: skip
    group.addoption("--harness-reports", default=None, metavar="DIR", dest="harness_reports",
                    help="where run directories go (default: <rootdir>/reports)")  # fmt: skip
    group.addoption("--harness-seed", type=int, default=0, metavar="N", dest="harness_seed",
                    help="seed of every run (default 0)")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "topology(name_or_path, fresh=False): the topology of the test's harness_cluster / run_scenario "
        "(a name under topologies/ or a path); fresh=True: a cluster for this test only",
    )
    from harness.errors import InputError

    try:
        config.stash[STATE] = HarnessState(config)
    except InputError as exc:
        raise pytest.UsageError(f"--harness-topology: {exc}") from None


@pytest.hookimpl(trylast=True)  # after the fixtures' own teardown (the runner plugin's sessionfinish)
def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is not None:
        state.close()


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        state.close()


def pytest_sessionstart(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is not None:
        state.session = session


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(PHASES, {})[report.when] = report
    return report


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not state.kept:
        return
    terminalreporter.section("ha-harness: clusters kept")
    for run_id, why in state.kept:
        terminalreporter.line(f"{run_id}: {why}; `harness down {run_id}` removes it")


# ------------------------------------------------------------------------------------------ state
def _keep(mode: KeepMode, outcome: Outcome) -> bool:
    """Does a cluster outlive a test that ended so? Errors and interrupts always remove."""
    if mode == "always":
        return outcome in ("passed", "failed")
    return mode == "on-failure" and outcome == "failed"


class HarnessState:
    """The session's options, the topologies given, and every run this session started and has not yet
    removed or kept (``live``), so that nothing is left whatever happens."""

    def __init__(self, config: pytest.Config) -> None:
        self.rootpath = Path(config.rootpath)
        self.invocation_dir = Path(config.invocation_params.dir)
        self.keep: KeepMode = config.getoption("harness_keep", "never")
        reports = config.getoption("harness_reports", None)
        self.reports = self.invocation_dir / reports if reports else self.rootpath / "reports"
        self.seed: int = config.getoption("harness_seed", 0)
        self.session: pytest.Session | None = None
        self.kept: list[tuple[str, str]] = []
        self.live: dict[str, Runtime] = {}
        self.pools: list[ClusterPool] = []
        self._topologies: dict[Path, TopologyBase] = {}
        self.topologies: list[TopologyBase] = [
            self.topology(ref) for ref in config.getoption("harness_topology", [])
        ]
        names = [t.name for t in self.topologies]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            from harness.errors import InputError

            raise InputError(f"topology name(s) given twice: {', '.join(twice)} (test ids need unique names)")

    @property
    def interrupted(self) -> bool:
        """Did the session end abnormally (Ctrl-C, ``pytest.exit``, an internal error)? Known from when
        the fixtures' teardown at session end begins."""
        normal = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)
        return self.session is not None and self.session.exitstatus not in normal

    # -- specs ------------------------------------------------------------------------------------
    def find(self, ref: str | Path, folder: str) -> Path:
        """A spec file: a path (from where pytest was started, or the rootdir), or a name under
        ``<rootdir>/<folder>/``."""
        from harness.errors import InputError

        path = Path(ref)
        candidates = [path] if path.is_absolute() else [self.invocation_dir / path, self.rootpath / path]
        if len(path.parts) == 1 and path.suffix not in (".yaml", ".yml"):
            candidates.append(self.rootpath / folder / f"{path}.yaml")
        for candidate in candidates:
            if candidate.is_file():
                return candidate.resolve()
        raise InputError(f"{ref}: no such file, nor {folder}/{path}.yaml under {self.rootpath}")

    def topology(self, ref: str | Path) -> TopologyBase:
        from harness.specs import load_topology

        path = self.find(ref, "topologies")
        if path not in self._topologies:
            self._topologies[path] = load_topology(path)
        return self._topologies[path]

    def scenario(self, ref: str | Path) -> tuple[Scenario, Path]:
        from harness.specs import load_scenario

        path = self.find(ref, "scenarios")
        return load_scenario(path), path

    # -- runs -------------------------------------------------------------------------------------
    def run(self, item: pytest.Item, topology: TopologyBase, scenario: Scenario, pool: ClusterPool, *,
            seed: int | None = None, path: Path | None = None) -> RunOutcome:  # fmt: skip
        """Run ``scenario`` on the pool's cluster of ``topology`` (healed and checked healthy if an earlier
        test used it, replaced if it does not come back); its figures go to the item's properties. After
        an invalid verdict the cluster goes back to the pool unless ``--harness-keep`` keeps it; after an
        error in the run it is removed."""
        from harness.plan import validate_pair, workload_spec
        from harness.reuse import Lease
        from harness.runner import RunLog, run_on

        validate_pair(scenario, topology, path)
        spec = workload_spec(scenario, topology)
        cluster = pool.acquire(topology)
        lease = Lease(cluster.run, cluster.tests, reused=cluster.tests > 1, replaced=cluster.replaced)
        outcome_of_run: Outcome = "error"
        try:
            with RunLog() as run_log:
                outcome = run_on(lease, topology, scenario, spec, runtime=pool.runtime, reports=self.reports,
                                 seed=self.seed if seed is None else seed, run_log=run_log)  # fmt: skip
            outcome_of_run = "passed" if outcome.result.valid is True else "failed"
        finally:
            why = f"{item.nodeid} {outcome_of_run}"
            pool.release(cluster, outcome_of_run, why=why, reusable=outcome_of_run != "error")
        item.user_properties.extend(result_properties(outcome))
        return outcome

    def outcome(self, item: pytest.Item) -> Outcome:
        """How the item has ended so far (in its teardown: setup and call are known)."""
        if self.interrupted:
            return "interrupted"
        phases = item.stash.get(PHASES, {})
        setup, call = phases.get("setup"), phases.get("call")
        if setup is None or setup.failed:
            return "error"
        if call is not None and call.failed:
            return "failed"
        return "passed"

    def dispose(self, run_id: str, runtime: Runtime, *, keep: bool, why: str) -> None:
        if keep:
            self.live.pop(run_id, None)
            self.kept.append((run_id, why))
            log.info(f"run {run_id} kept ({why})")
        else:
            self.remove(run_id, runtime)

    def remove(self, run_id: str, runtime: Runtime) -> None:
        from harness.lifecycle import down
        from harness.runtime.signals import no_interrupts

        with no_interrupts():  # a second Ctrl-C must not leave half a cluster behind
            down(run_id, runtime)
        self.live.pop(run_id, None)
        log.info(f"run {run_id} removed")

    def close(self) -> None:
        """Session end (or Ctrl-C, or pytest exiting): the pools' clusters per ``--harness-keep``, and every
        other run still live, removed. Idempotent."""
        errors: list[BaseException] = []
        for pool in list(self.pools):
            try:
                pool.close()
            except Exception as exc:
                errors.append(exc)
        for run_id, runtime in list(self.live.items()):
            try:
                self.remove(run_id, runtime)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


# ------------------------------------------------------------------------------------------ clusters
@dataclass
class HarnessCluster:
    """A running cluster lent to a test: ``system`` drives it (``primary()``, ``wait_healthy()``…)."""

    run: Run
    topology: TopologyBase
    runtime: Runtime
    system: ClusterSystem
    fresh: bool = False  # for one test only
    tests: int = 0  # how many tests it has been lent to
    broken: bool = False  # e.g. its nemesis could not heal: never lent again
    replaced: str | None = None  # why the pool's previous cluster of this topology was replaced

    @property
    def id(self) -> str:
        return self.run.id


class ClusterPool:
    """Running clusters by topology, one idle cluster per topology, lent to one test at a time.

    Reuse across tests happens in ``acquire``: an idle cluster is healed and checked healthy before it is
    lent again (one that does not come back is replaced); a scenario's workload resets its own tables or
    queues. A cluster is lent again after a test that passed with it, or after a scenario whose verdict
    was invalid when nobody keeps it.
    """

    def __init__(self, runtime: Runtime, state: HarnessState) -> None:
        self.runtime = runtime
        self.state = state
        self.idle: dict[str, HarnessCluster] = {}
        self.busy: dict[str, HarnessCluster] = {}
        self.started = 0
        state.pools.append(self)

    @staticmethod
    def key(topology: TopologyBase) -> str:
        return topology.model_dump_json()

    def acquire(self, topology: TopologyBase, *, fresh: bool = False) -> HarnessCluster:
        """A cluster of ``topology``: the idle one, healed and checked healthy first (one that does not come
        back within ``timeouts.heal`` is removed and replaced, ``replaced`` saying why), else a new one."""
        cluster = None if fresh else self.idle.pop(self.key(topology), None)
        replaced: str | None = None
        if cluster is not None:
            from harness.reuse import restore

            replaced = restore(cluster.run, self.runtime)
            if replaced is not None:
                log.warning(f"cluster {cluster.id} replaced: {replaced}")
                cluster.broken = True
                self.state.dispose(cluster.id, self.runtime, keep=False, why="not healthy after healing")
                cluster = None
        if cluster is None:
            from harness.lifecycle import system_for, up

            run = up(topology, self.runtime, hand_over=self.state.keep != "never")
            self.state.live[run.id] = self.runtime
            self.started += 1
            cluster = HarnessCluster(run, topology, self.runtime, system_for(run, self.runtime), fresh=fresh)
        cluster.replaced = replaced
        cluster.tests += 1
        self.busy[cluster.id] = cluster
        return cluster

    def release(self, cluster: HarnessCluster, outcome: Outcome, why: str, *, reusable: bool = False) -> None:
        """Back to the pool after a passed test (or, ``reusable``, a failed scenario whose cluster nobody
        asked to keep: an invalid verdict is a finding about the system, not a broken cluster); else kept
        or removed (``--harness-keep``)."""
        self.busy.pop(cluster.id, None)
        key = self.key(cluster.topology)
        keep = _keep(self.state.keep, outcome) and not cluster.broken
        back = outcome == "passed" or (reusable and outcome == "failed" and not keep)
        if back and not cluster.broken and not cluster.fresh and key not in self.idle:
            self.idle[key] = cluster
            return
        self.state.dispose(cluster.id, self.runtime, keep=keep, why=why)

    def close(self) -> None:
        """Session end: idle clusters kept under ``always`` (unless interrupted), else removed; one still
        lent (the session was interrupted mid-test) removed. Idempotent."""
        keep = self.state.keep == "always" and not self.state.interrupted
        leftovers = [(c, keep and not c.broken) for c in self.idle.values()]
        leftovers += [(c, False) for c in self.busy.values()]
        self.idle.clear()
        self.busy.clear()
        if self in self.state.pools:
            self.state.pools.remove(self)
        errors: list[BaseException] = []
        for cluster, kept in leftovers:
            try:
                self.state.dispose(cluster.id, self.runtime, keep=kept,
                                   why=f"session end, lent to {cluster.tests} test(s)")  # fmt: skip
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


# ------------------------------------------------------------------------------------------ fixtures
def _state(request: pytest.FixtureRequest) -> HarnessState:
    return request.config.stash[STATE]


@pytest.fixture(scope="session")
def harness_runtime() -> Runtime:
    """The engine clusters run on: Docker. Override it (session scope) to use another ``Runtime``."""
    from harness.runtime.docker import DockerRuntime

    return DockerRuntime()


@pytest.fixture
def harness_topology(request: pytest.FixtureRequest) -> TopologyBase:
    """The test's topology: its ``topology`` marker, else the first ``--harness-topology``."""
    from harness.errors import InputError

    state = _state(request)
    marker = request.node.get_closest_marker("topology")
    if marker is None:
        if state.topologies:
            return state.topologies[0]
        pytest.fail("no topology for this test: mark it @pytest.mark.topology('galera-3') or pass "
                    "--harness-topology PATH", pytrace=False)  # fmt: skip
    if len(marker.args) != 1 or not isinstance(marker.args[0], str | Path):
        pytest.fail(f"@pytest.mark.topology takes one name or path, got {marker.args!r}", pytrace=False)
    try:
        return state.topology(marker.args[0])
    except InputError as exc:
        pytest.fail(f"@pytest.mark.topology: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def harness_clusters(request: pytest.FixtureRequest, harness_runtime: Runtime) -> Iterator[ClusterPool]:
    """The session's running clusters, reused across tests (see ``ClusterPool``)."""
    pool = ClusterPool(harness_runtime, _state(request))
    yield pool
    pool.close()


@pytest.fixture
def harness_cluster(request: pytest.FixtureRequest, harness_clusters: ClusterPool,
                    harness_topology: TopologyBase) -> Iterator[HarnessCluster]:  # fmt: skip
    """A running cluster of the test's topology, shared with the session's other tests that pass with it."""
    marker = request.node.get_closest_marker("topology")
    fresh = bool(marker is not None and marker.kwargs.get("fresh", False))
    cluster = harness_clusters.acquire(harness_topology, fresh=fresh)
    try:
        yield cluster
    finally:
        state = _state(request)
        outcome = state.outcome(request.node)
        harness_clusters.release(cluster, outcome, why=f"{request.node.nodeid} {outcome}")


@pytest.fixture
def nemesis(harness_cluster: HarnessCluster, tmp_path: Path) -> Iterator[Nemesis]:
    """A ``Nemesis`` on the test's cluster recording to a fresh ``events.jsonl`` (in ``tmp_path``); every
    fault healed, and the cluster healthy again, in teardown (a cluster that cannot heal is retired)."""
    from harness.faults.nemesis import Nemesis
    from harness.lifecycle import run_clock
    from harness.model.history import EventWriter

    clock = run_clock(harness_cluster.run)
    events = EventWriter(tmp_path / "events.jsonl", clock)
    nem = Nemesis(harness_cluster.system, events=events, clock=clock)
    try:
        yield nem
    finally:
        try:
            nem.heal(wait=True)
        except BaseException:
            harness_cluster.broken = True
            raise
        finally:
            events.close()


class ScenarioRunner:
    """The ``run_scenario`` fixture's value: runs a scenario on the session's cluster of a topology."""

    def __init__(self, request: pytest.FixtureRequest, runtime: Runtime) -> None:
        self.request = request
        self.runtime = runtime

    def __call__(self, scenario: Scenario | str | Path, *, topology: TopologyBase | str | Path | None = None,
                 seed: int | None = None, check: bool = True) -> RunOutcome:  # fmt: skip
        from harness.model.scenario import Scenario

        state = _state(self.request)
        path: Path | None = None
        if not isinstance(scenario, Scenario):
            scenario, path = state.scenario(scenario)
        if topology is None:
            topology = self.request.getfixturevalue("harness_topology")
        elif isinstance(topology, str | Path):
            topology = state.topology(topology)
        assert not isinstance(topology, str | Path)
        pool: ClusterPool = self.request.getfixturevalue("harness_clusters")
        outcome = state.run(self.request.node, topology, scenario, pool, seed=seed, path=path)
        if check and outcome.result.valid is not True:
            pytest.fail(failure_message(topology.name, scenario.name, outcome), pytrace=False)
        return outcome


@pytest.fixture
def run_scenario(request: pytest.FixtureRequest, harness_runtime: Runtime) -> ScenarioRunner:
    """``run_scenario(scenario, topology=None, seed=None, check=True) -> RunOutcome``."""
    return ScenarioRunner(request, harness_runtime)


# ------------------------------------------------------------------------------------------ collection
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    state = parent.config.stash.get(STATE, None)
    if state is None or not state.topologies or file_path.suffix not in (".yaml", ".yml"):
        return None
    if not _is_scenario_file(file_path):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)  # type: ignore[no-any-return]


def _is_scenario_file(path: Path) -> bool:
    from harness.model.loading import SpecError, read_yaml

    try:
        return "steps" in read_yaml(path)
    except SpecError:
        return False  # not YAML, or not a mapping: nothing of ours


class ScenarioFile(pytest.File):
    """A scenario file: one ``TopologyNode`` per given topology it is meant for."""

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        from harness.model.loading import SpecError
        from harness.plan import Source, check_scenario
        from harness.specs import load_scenario

        state = self.config.stash[STATE]
        try:
            scenario = load_scenario(self.path)
        except SpecError as exc:
            raise self.CollectError(str(exc)) from None
        problems = check_scenario(scenario, Source.of(scenario, self.path))
        if problems:
            raise self.CollectError("\n".join(problems))
        for topology in state.topologies:
            if topology.system in scenario.systems and topology.system in scenario.workload:
                yield TopologyNode.from_parent(self, name=topology.name, topology=topology, scenario=scenario)


class TopologyNode(pytest.Collector):
    """One topology's test of a scenario file."""

    def __init__(self, *, topology: TopologyBase, scenario: Scenario, **kw: Any) -> None:
        super().__init__(**kw)
        self.topology = topology
        self.scenario = scenario

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        from harness.plan import Source, check_pair

        item = ScenarioItem.from_parent(self, name=self.scenario.name, topology=self.topology,
                                        scenario=self.scenario)  # fmt: skip
        problems = check_pair(self.scenario, self.topology, Source.of(self.scenario, self.path))
        if problems:
            reason = f"{self.scenario.name} does not fit topology {self.topology.name}: " + "; ".join(
                problems
            )
            item.add_marker(pytest.mark.skip(reason=reason))
        return [item]


def _scenario_test(harness_runtime: Runtime, harness_clusters: ClusterPool) -> None:
    """What a ``ScenarioItem`` asks of the fixtures (its ``runtest`` does the work)."""


class ScenarioItem(pytest.Function):
    """A scenario on a topology. A ``Function`` (called with ``callobj``) for its fixtures — the runtime
    comes from ``harness_runtime``, which a conftest may override — with its own ``runtest``."""

    def __init__(self, *, topology: TopologyBase, scenario: Scenario, **kw: Any) -> None:
        super().__init__(callobj=_scenario_test, **kw)
        self.topology = topology
        self.scenario = scenario

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        pool: ClusterPool = self.funcargs["harness_clusters"]  # type: ignore[assignment]
        outcome = state.run(self, self.topology, self.scenario, pool, path=self.path)
        if outcome.result.valid is not True:
            raise ScenarioFailed(failure_message(self.topology.name, self.scenario.name, outcome))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        from harness.errors import HarnessError

        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        if isinstance(excinfo.value, HarnessError):  # the harness's own words are the message
            return f"{type(excinfo.value).__name__}: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.topology.name}::{self.scenario.name}"


class ScenarioFailed(AssertionError):
    """A scenario's verdict is not valid; ``str()`` says why (see ``failure_message``)."""


# ------------------------------------------------------------------------------------------ messages
def failure_message(topology: str, scenario: str, outcome: RunOutcome) -> str:
    """Why a run is not valid, for people: each breached (or unknowable) bound, each check that is not
    valid with its notes and its first lost/unexpected ids, and the run directory."""
    result = outcome.result
    verdict = "INVALID" if result.valid is False else "unknown"
    lines = [f"{scenario} on {topology}: {verdict} (run {outcome.run_id})"]
    guarantees = result.children.get("guarantees")
    # one note per breached or unknowable bound: "lost == 0 breached: set.lost = 2"
    lines.extend(f"  guarantee {note}" for note in (guarantees.notes if guarantees else ()))
    for name, child in result.children.items():
        if name == "guarantees" or child.valid is True:
            continue
        state = "INVALID" if child.valid is False else "unknown"
        lines.append(f"  check {name}: {state}" + (f": {child.error}" if child.error else ""))
        lines.extend(f"    {note}" for note in child.notes)
        lines.extend(f"    {line}" for line in _elements(child))
    lines.extend(f"  {note}" for note in result.notes)
    lines.append(
        f"  run directory: {outcome.report_dir} (result.json, history.jsonl, events.jsonl, harness.log)"
    )
    return "\n".join(lines)


def _elements(child: Result) -> list[str]:
    """The first few offending elements a checker lists: id ranges (set, queue), bad reads (bank, counter)."""
    out: list[str] = []
    figures = child.figures
    for key in ("lost", "unexpected", "fail_present", "duplicated_unflagged"):
        ranges = figures.get(f"{key}_ranges")
        if figures.get(key) and isinstance(ranges, str) and ranges:
            parts = ranges.split(",")
            more = f" (first {MAX_ELEMENTS} of {len(parts)} ranges)" if len(parts) > MAX_ELEMENTS else ""
            out.append(f"{key} ids: {','.join(parts[:MAX_ELEMENTS])}{more}")
    if isinstance(figures.get("first_violation"), Mapping):
        out.append(f"first violation: {_short(figures['first_violation'])}")
    bad = figures.get("first_bad_reads")
    if isinstance(bad, Sequence) and not isinstance(bad, str):
        out.extend(f"bad read: {_short(b)}" for b in list(bad)[:MAX_ELEMENTS])
    return out


def _short(value: object, width: int = 200) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def result_properties(outcome: RunOutcome) -> list[tuple[str, object]]:
    """(name, value) pairs for ``user_properties`` (JUnit ``<property>``): the run, the verdict, each
    check's verdict and scalar figures (``set.lost``, ``lag.overall.p99``), and each guarantee."""
    result = outcome.result
    props: list[tuple[str, object]] = [
        ("harness.run_id", outcome.run_id),
        ("harness.run_dir", str(outcome.report_dir)),
        ("harness.verdict", _verdict(result.valid)),
    ]
    for name, child in result.children.items():
        if name == "guarantees":
            for row in child.details.get("bounds", []):
                props.append((f"guarantee.{row['name']}", f"{_verdict(row['passed'], 'pass', 'FAIL')}: "
                              f"{row['check']}.{row['figure']} = {row['value']} ({row['op']} {row['bound']})"))  # fmt: skip
            continue
        props.append((f"{name}.valid", _verdict(child.valid)))
        for key, value in _scalars(child.figures):
            props.append((f"{name}.{key}", value))
    return props


def _verdict(valid: object, yes: str = "valid", no: str = "invalid") -> str:
    return yes if valid is True else no if valid is False else "unknown"


def _scalars(figures: Mapping[str, Any], prefix: str = "", depth: int = 0) -> Iterator[tuple[str, object]]:
    """Scalar figures, and those one level down in mappings (``overall.p99``); long strings cut short."""
    for key, value in figures.items():
        if isinstance(value, bool | int | float):
            yield f"{prefix}{key}", value
        elif isinstance(value, str):
            yield f"{prefix}{key}", _short(value)
        elif isinstance(value, Mapping) and depth == 0:
            yield from _scalars(value, f"{prefix}{key}.", depth + 1)
