"""An in-memory ``Runtime``: containers are records with a status, nothing runs.

For testing the harness's own control flow (the runner's step order, the nemesis's events and heals,
the CLI's exit codes, cleanup on failure and interrupt) without an engine — never for claims about a
database or broker. Every call is recorded in ``calls`` as ``(verb, name, *args)``; ``fail_on`` makes
a verb raise, to test what happens when the engine fails half-way.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import InfraError
from harness.runtime import labels as L
from harness.runtime.base import ContainerSpec, ContainerState, ContainerStatus, ExecResult, Resource

__all__ = ["FakeContainer", "FakeRuntime"]


@dataclass
class FakeContainer:
    spec: ContainerSpec
    status: ContainerStatus = "running"
    pid: int = 0
    started_at: float | None = None
    logs: list[str] = field(default_factory=list)


class FakeRuntime:
    """A ``Runtime`` whose engine is a few dictionaries."""

    def __init__(self, *, images: Sequence[str] | None = None) -> None:
        self.images: set[str] | None = set(images) if images is not None else None  # None: every image
        self.containers_by_name: dict[str, FakeContainer] = {}
        self.networks_by_name: dict[str, tuple[str, Mapping[str, str]]] = {}  # name → (subnet, labels)
        self.volumes_by_name: dict[str, Mapping[str, str]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.fail_on: dict[str, Callable[..., None]] = {}  # verb → called with the call's args; may raise
        self.exec_handler: Callable[[str, Sequence[str]], ExecResult] = lambda name, cmd: ExecResult(0, "")
        self._pids = itertools.count(1000)
        self._lock = threading.Lock()

    # -- bookkeeping ------------------------------------------------------------------------------
    def _call(self, verb: str, *args: Any) -> None:
        with self._lock:
            self.calls.append((verb, *args))
        hook = self.fail_on.get(verb)
        if hook is not None:
            hook(*args)

    def verbs(self, verb: str) -> list[tuple[Any, ...]]:
        """Every recorded call of ``verb`` (its arguments)."""
        return [c[1:] for c in self.calls if c[0] == verb]

    def _container(self, name: str) -> FakeContainer:
        try:
            return self.containers_by_name[name]
        except KeyError:
            raise InfraError(f"container {name} does not exist") from None

    def _mine(self, labels: Mapping[str, str], run_id: str | None) -> bool:
        if labels.get(L.NAMESPACE) != L.namespace() or L.RUN_ID not in labels:
            return False
        return run_id is None or labels.get(L.RUN_ID) == run_id

    # -- Runtime ----------------------------------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        return self.images is None or ref in self.images

    def build_image(self, context: str, tag: str) -> list[str]:
        self._call("build_image", context, tag)
        if self.images is not None:
            self.images.add(tag)
        return []

    def import_image(self, tarball: str, tag: str, changes: Sequence[str] = ()) -> None:
        self._call("import_image", tarball, tag)
        if self.images is not None:
            self.images.add(tag)

    def copy_from_image(self, image: str, path: str, dest: str) -> None:
        self._call("copy_from_image", image, path, dest)

    def derive_image(self, base: str, command: Sequence[str], tag: str, labels: Mapping[str, str], *,
                     timeout: float = 120.0) -> None:  # fmt: skip
        self._call("derive_image", base, tag)
        if self.images is not None:
            self.images.add(tag)

    def create_network(self, name: str, subnet: str, gateway: str, labels: Mapping[str, str]) -> str:
        self._call("create_network", name, subnet)
        if any(s == subnet for s, _ in self.networks_by_name.values()):
            raise InfraError(f"cannot create network {name} ({subnet}): Pool overlaps with other one")
        self.networks_by_name[name] = (subnet, dict(labels))
        return name

    def used_subnets(self) -> set[str]:
        return {subnet for subnet, _ in self.networks_by_name.values()}

    def run(self, spec: ContainerSpec) -> str:
        self._call("run", spec.name)
        if spec.name in self.containers_by_name:
            raise InfraError(f"cannot start container {spec.name}: name already in use")
        self.containers_by_name[spec.name] = FakeContainer(spec, "running", next(self._pids), time.time())
        return spec.name

    def state(self, name: str) -> ContainerState:
        c = self.containers_by_name.get(name)
        if c is None:
            return ContainerState("missing")
        return ContainerState(c.status, c.pid if c.status in ("running", "paused") else 0, c.started_at)

    def exec(
        self, name: str, cmd: Sequence[str], *, user: str = "", timeout: float | None = None
    ) -> ExecResult:
        self._call("exec", name, tuple(cmd))
        if self.state(name).status != "running":
            return ExecResult(255, f"container {name} is not running")
        return self.exec_handler(name, cmd)

    def logs(self, name: str, tail: int = 30) -> str:
        c = self.containers_by_name.get(name)
        return "\n".join(c.logs[-tail:]) if c else f"(no logs: no container {name})"

    def kill(self, name: str, signal: str = "KILL") -> None:
        self._call("kill", name, signal)
        self._container(name).status = "exited"

    def pause(self, name: str) -> None:
        self._call("pause", name)
        c = self._container(name)
        if c.status != "running":
            raise InfraError(f"container {name} is not running")
        c.status = "paused"

    def unpause(self, name: str) -> None:
        self._call("unpause", name)
        self._container(name).status = "running"

    def stop(self, name: str, timeout: int = 30) -> None:
        self._call("stop", name)
        self._container(name).status = "exited"

    def start(self, name: str) -> None:
        self._call("start", name)
        c = self._container(name)
        if c.status != "running":
            c.status, c.pid, c.started_at = "running", next(self._pids), time.time()

    def remove(self, name: str) -> None:
        self._call("remove", name)
        self.containers_by_name.pop(name, None)

    def containers(self, run_id: str | None = None) -> list[Resource]:
        return [Resource("container", n, dict(c.spec.labels), c.status)
                for n, c in list(self.containers_by_name.items()) if self._mine(c.spec.labels, run_id)]  # fmt: skip

    def networks(self, run_id: str | None = None) -> list[Resource]:
        return [Resource("network", n, dict(labels))
                for n, (_, labels) in list(self.networks_by_name.items()) if self._mine(labels, run_id)]  # fmt: skip

    def volumes(self, run_id: str | None = None) -> list[Resource]:
        return [Resource("volume", n, dict(labels))
                for n, labels in list(self.volumes_by_name.items()) if self._mine(labels, run_id)]  # fmt: skip

    def create_volume(self, name: str, labels: Mapping[str, str]) -> None:
        self._call("create_volume", name)
        self.volumes_by_name[name] = dict(labels)

    def remove_run(self, run_id: str | None = None, *, timeout: float = 60.0) -> int:
        self._call("remove_run", run_id)
        found = self.containers(run_id), self.networks(run_id), self.volumes(run_id)
        for r in found[0]:
            self.containers_by_name.pop(r.name, None)
        for r in found[1]:
            self.networks_by_name.pop(r.name, None)
        for r in found[2]:
            self.volumes_by_name.pop(r.name, None)
        return sum(len(f) for f in found)

    def version(self) -> str:
        return "fake"
