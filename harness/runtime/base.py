"""The runtime seam: everything the harness asks of a container engine, as one ``Runtime`` protocol.

``DockerRuntime`` (``runtime/docker.py``) is the real one; ``FakeRuntime`` (``runtime/fake.py``) is an
in-memory one for testing the harness's own control flow (runner, nemesis, CLI) without an engine, never
for claims about a database or broker. Nothing outside ``runtime/`` sees an engine SDK's objects: labelled
resources are plain :class:`Resource` values and a container's state is a :class:`ContainerState`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

ContainerStatus = Literal["created", "running", "paused", "restarting", "exited", "dead", "missing"]


@dataclass(frozen=True)
class Mount:
    source: str  # host path
    target: str  # path in the container
    read_only: bool = True


@dataclass(frozen=True)
class ContainerSpec:
    name: str  # container name (unique on the engine)
    image: str
    command: Sequence[str]
    hostname: str
    network: str
    ip: str
    labels: Mapping[str, str]
    mounts: Sequence[Mount] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    extra_hosts: Mapping[str, str] = field(default_factory=dict)
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    cap_add: Sequence[str] = ()
    user: str | None = None


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


@dataclass(frozen=True)
class ContainerState:
    """What the engine says of one container: its status, host pid (0 unless running) and start time."""

    status: ContainerStatus
    pid: int = 0
    started_at: float | None = None  # epoch seconds of the last start

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused")


@dataclass(frozen=True)
class Resource:
    """A labelled container, network or volume, as listed by the engine."""

    kind: Literal["container", "network", "volume"]
    name: str
    labels: Mapping[str, str]
    status: str = ""  # containers: the engine's status word


class Runtime(Protocol):
    """A container engine on one host: images, labelled internal networks, containers and their faults.

    Listing methods see only this namespace's labelled resources (of one run, or of every run when
    ``run_id`` is None). ``remove_run`` goes round until nothing labelled is left or raises ``InfraError``.
    """

    def image_exists(self, ref: str) -> bool: ...

    def build_image(self, context: str, tag: str) -> list[str]:
        """Build ``context`` (a directory with a Dockerfile) as ``tag``; returns the build's log lines."""
        ...

    def import_image(self, tarball: str, tag: str, changes: Sequence[str] = ()) -> None:
        """Import a root file system tarball as image ``tag`` (``changes``: Dockerfile instructions)."""
        ...

    def copy_from_image(self, image: str, path: str, dest: str) -> None:
        """Copy the contents of directory ``path`` in ``image`` into host directory ``dest``, owners and
        modes kept (a node's data directory, seeded onto its storage mount)."""
        ...

    def derive_image(self, base: str, command: Sequence[str], tag: str, labels: Mapping[str, str], *,
                     timeout: float = 120.0) -> None:  # fmt: skip
        """Run ``command`` in a throw-away container of ``base`` (no network, ``labels`` on it), and commit
        what it leaves as image ``tag`` (``base``'s configuration kept); InfraError if it fails."""
        ...

    def create_network(self, name: str, subnet: str, gateway: str, labels: Mapping[str, str]) -> str: ...

    def used_subnets(self) -> set[str]: ...

    def run(self, spec: ContainerSpec) -> str:
        """Create and start a container; returns its id."""
        ...

    def state(self, name: str) -> ContainerState:
        """Never raises for a container that does not exist: its status is ``missing``."""
        ...

    def exec(
        self, name: str, cmd: Sequence[str], *, user: str = "", timeout: float | None = None
    ) -> ExecResult: ...

    def logs(self, name: str, tail: int = 30) -> str: ...

    def kill(self, name: str, signal: str = "KILL") -> None: ...

    def pause(self, name: str) -> None: ...

    def unpause(self, name: str) -> None: ...

    def stop(self, name: str, timeout: int = 30) -> None: ...

    def start(self, name: str) -> None: ...

    def remove(self, name: str) -> None:
        """Remove one container (killed first if it runs) with its anonymous volumes; no error if absent."""
        ...

    def containers(self, run_id: str | None = None) -> list[Resource]: ...

    def networks(self, run_id: str | None = None) -> list[Resource]: ...

    def volumes(self, run_id: str | None = None) -> list[Resource]: ...

    def create_volume(self, name: str, labels: Mapping[str, str]) -> None: ...

    def remove_run(self, run_id: str | None = None, *, timeout: float = 60.0) -> int: ...

    def version(self) -> str:
        """The engine's version, for ``harness doctor`` and reports."""
        ...
