"""`harness up/status/down` as a user runs them, Ctrl-C during up, and SIGKILL of the harness mid-way.

Each test works in its own HARNESS_NAMESPACE, so `down --all` here cannot touch the session's clusters.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from harness.runtime import labels as L
from harness.runtime.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def namespace(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    ns = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("HARNESS_NAMESPACE", ns)
    yield ns
    subprocess.run([sys.executable, "-m", "harness.cli", "down", "--all"], env=_env(ns), capture_output=True)


def _env(ns: str) -> dict[str, str]:
    return {**os.environ, "HARNESS_NAMESPACE": ns}


def harness(ns: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=_env(ns), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def resources(ns: str) -> list[str]:
    client = docker.from_env()
    label = {"label": f"{L.NAMESPACE}={ns}"}
    found = [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
    found += [f"network {n.name}" for n in client.networks.list(filters=label)]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=label)]
    return found


def test_up_status_down(namespace: str) -> None:
    up = harness(namespace, "up", "topologies/rabbitmq-3.yaml")
    assert up.returncode == 0, up.stderr + up.stdout
    run_id = re.search(r"run (rabbitmq-3-[0-9a-f]{6}) is up", up.stdout).group(1)  # type: ignore[union-attr]
    assert resources(namespace), "up left nothing running"
    status = harness(namespace, "status")
    assert status.returncode == 0, status.stderr
    assert f"run {run_id}" in status.stdout and "3/3 nodes healthy" in status.stdout
    for node in ("n1", "n2", "n3"):
        assert node in status.stdout
    down = harness(namespace, "down", run_id)
    assert down.returncode == 0, down.stderr
    assert resources(namespace) == []
    assert not (Path.home() / ".local/share/ha-harness/runs" / run_id).exists()
    again = harness(namespace, "down", run_id)
    assert again.returncode == 2 and "no run" in again.stderr


def _start_up(ns: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "up", "topologies/galera-3.yaml"],
                            env=_env(ns), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=_default_sigint)  # fmt: skip


def _default_sigint() -> None:
    """Ctrl-C reaches the child even when this suite runs as a background job (`.ci/run &`): a shell
    starts those with SIGINT ignored, and a Python started with it ignored keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _first_container(ns: str) -> bool:
    return any(r.startswith("container") for r in resources(ns))


def test_ctrl_c_during_up_cleans_up(namespace: str) -> None:
    proc = _start_up(namespace)
    wait_until(lambda: _first_container(namespace), timeout=60, what="harness up to start a container")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, f"stdout:\n{out}\nstderr:\n{err}"  # both: where did the Ctrl-C go?
    assert "interrupted" in err and "Traceback" not in err
    assert resources(namespace) == []


def test_sigkill_mid_up_then_down_all_sweeps(namespace: str) -> None:
    proc = _start_up(namespace)
    wait_until(lambda: _first_container(namespace), timeout=60, what="harness up to start a container")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert resources(namespace), "SIGKILL left nothing behind: the test proves nothing"
    down = harness(namespace, "down", "--all")
    assert down.returncode == 0, down.stderr
    assert resources(namespace) == []


def test_sigkill_orphans_swept_by_next_run(namespace: str) -> None:
    from harness.runtime.docker import DockerRuntime
    from harness.runtime.reaper import orphan_run_ids, sweep_orphans

    proc = _start_up(namespace)
    wait_until(lambda: _first_container(namespace), timeout=60, what="harness up to start a container")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    runtime = DockerRuntime()
    orphans = orphan_run_ids(runtime)
    assert len(orphans) == 1 and next(iter(orphans)).startswith("galera-3-")
    assert sweep_orphans(runtime) >= 2  # at least the network and one container
    assert resources(namespace) == []
