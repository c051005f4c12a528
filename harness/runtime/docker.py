"""The only module that talks to the Docker engine."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, cast

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import IPAMConfig, IPAMPool

from harness import progress
from harness.errors import InfraError
from harness.runtime import labels as L
from harness.runtime.base import ContainerSpec, ContainerState, ContainerStatus, ExecResult, Resource

__all__ = ["DockerRuntime"]


def _labels(run_id: str | None) -> list[str]:
    """Label filter: this namespace's resources, of one run or of all runs."""
    return [f"{L.NAMESPACE}={L.namespace()}", f"{L.RUN_ID}={run_id}" if run_id else L.RUN_ID]


class DockerRuntime:
    """Docker on this host: networks, containers, exec and the process faults on them (a ``Runtime``)."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        try:
            self.client = client or docker.from_env(timeout=120)
            self.client.ping()
        except Exception as exc:
            raise InfraError(
                f"no Docker engine answers ({type(exc).__name__}: {str(exc)[:160]}); "
                "run ./setup.sh (or `harness doctor --fix`) to install and start one"
            ) from None
        self.api = self.client.api

    # -- images -----------------------------------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        try:
            self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            return False
        return True

    def build_image(self, context: str, tag: str) -> list[str]:
        lines: list[str] = []
        try:
            for chunk in self.api.build(path=context, tag=tag, rm=True, decode=True):
                if "error" in chunk:
                    raise InfraError(f"docker build failed: {chunk['error'].strip()}")
                line = chunk.get("stream", "").strip()
                if line:
                    lines.append(chunk["stream"].rstrip())
                    if line.startswith("Step "):
                        progress.note(line[:100])  # the image build's current step, on a live display
        except InfraError:
            raise
        except Exception as exc:
            raise InfraError(f"docker build failed: {exc}") from None
        return lines

    def import_image(self, tarball: str, tag: str, changes: Sequence[str] = ()) -> None:
        # The CLI streams a large tarball straight from disk; the SDK would read it into memory first.
        argv = ["docker", "import", *[a for c in changes for a in ("--change", c)], tarball, tag]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise InfraError(f"docker import failed: {done.stderr.strip()[:300]}")

    def copy_from_image(self, image: str, path: str, dest: str) -> None:
        import io
        import tarfile

        try:
            created = self.api.create_container(image, command=["true"])
        except docker.errors.APIError as exc:
            raise InfraError(f"cannot read {path} of image {image}: {exc.explanation or exc}") from None
        try:
            stream, _ = self.api.get_archive(created["Id"], path.rstrip("/") + "/.")
            data = io.BytesIO(b"".join(stream))
        except docker.errors.APIError as exc:
            raise InfraError(f"cannot read {path} of image {image}: {exc.explanation or exc}") from None
        finally:
            with contextlib.suppress(docker.errors.APIError):
                self.api.remove_container(created["Id"], force=True)
        with tarfile.open(fileobj=data) as tar:
            # The archive's top entry is the directory itself ("./"): its members land in dest.
            trusted: dict[str, Any] = (
                {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
            )
            tar.extractall(dest, numeric_owner=True, **trusted)

    def derive_image(self, base: str, command: Sequence[str], tag: str, labels: Mapping[str, str], *,
                     timeout: float = 120.0) -> None:  # fmt: skip
        repository, _, version = tag.rpartition(":")
        config = self.api.inspect_image(base)["Config"]
        created: dict[str, Any] = {}
        try:
            created = self.api.create_container(
                base, command=list(command), labels=dict(labels), user="0",
                host_config=self.api.create_host_config(network_mode="none", init=True),
            )  # fmt: skip
            self.api.start(created["Id"])
            code = self.api.wait(created["Id"], timeout=timeout).get("StatusCode")
            if code != 0:
                out = self.api.logs(created["Id"], tail=20).decode(errors="replace").strip()
                raise InfraError(f"deriving image {tag} from {base}: exit {code}: {out[-400:]}")
            changes = [f"CMD {json.dumps(config.get('Cmd') or [])}"]
            self.api.commit(created["Id"], repository=repository, tag=version, changes=changes)
        except docker.errors.APIError as exc:
            raise InfraError(f"deriving image {tag} from {base}: {exc.explanation or exc}") from None
        finally:
            if created:
                with contextlib.suppress(docker.errors.APIError):
                    self.api.remove_container(created["Id"], force=True)

    def version(self) -> str:
        return str(self.client.version().get("Version", "?"))

    # -- networks ---------------------------------------------------------------------------------
    def create_network(self, name: str, subnet: str, gateway: str, labels: Mapping[str, str]) -> str:
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=subnet, gateway=gateway)])
        try:
            net = self.client.networks.create(
                name, driver="bridge", internal=True, ipam=ipam, labels=dict(labels), check_duplicate=True
            )
        except docker.errors.APIError as exc:
            raise InfraError(f"cannot create network {name} ({subnet}): {exc.explanation or exc}") from None
        return str(net.id)

    def used_subnets(self) -> set[str]:
        subnets = set()
        for net in self.client.networks.list():
            for pool in (net.attrs.get("IPAM") or {}).get("Config") or []:
                if pool.get("Subnet"):
                    subnets.add(pool["Subnet"])
        return subnets

    # -- containers -------------------------------------------------------------------------------
    def run(self, spec: ContainerSpec) -> str:
        """Create and start a container; returns its id. The engine assigns no host ports."""
        host_config = self.api.create_host_config(
            binds={m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in spec.mounts},
            extra_hosts=dict(spec.extra_hosts),
            tmpfs=dict(spec.tmpfs),
            cap_add=list(spec.cap_add) or None,
            init=True,
        )
        networking = self.api.create_networking_config(
            {spec.network: self.api.create_endpoint_config(ipv4_address=spec.ip, aliases=[spec.hostname])}
        )
        try:
            created = self.api.create_container(
                spec.image,
                command=list(spec.command),
                name=spec.name,
                hostname=spec.hostname,
                labels=dict(spec.labels),
                environment=dict(spec.env),
                host_config=host_config,
                networking_config=networking,
                user=spec.user or "",
            )
            self.api.start(created["Id"])
        except docker.errors.APIError as exc:
            raise InfraError(f"cannot start container {spec.name}: {exc.explanation or exc}") from None
        return str(created["Id"])

    def state(self, name: str) -> ContainerState:
        try:
            raw = self.api.inspect_container(name)["State"]
        except docker.errors.NotFound:
            return ContainerState("missing")
        status = cast(ContainerStatus, "paused" if raw.get("Paused") else raw.get("Status", "dead"))
        started = None
        if raw.get("Running") and raw.get("StartedAt"):
            started = datetime.fromisoformat(raw["StartedAt"][:26].rstrip("Z") + "+00:00").timestamp()
        return ContainerState(status, int(raw.get("Pid") or 0), started)

    def exec(
        self, name: str, cmd: Sequence[str], *, user: str = "", timeout: float | None = None
    ) -> ExecResult:
        """Run ``cmd`` in a running container; ``timeout`` wraps it in coreutils' timeout."""
        argv = list(cmd)
        if timeout is not None:
            argv = ["timeout", "-s", "KILL", f"{timeout:g}", *argv]
        try:
            exec_id = self.api.exec_create(name, argv, user=user, stdout=True, stderr=True)
            output = self.api.exec_start(exec_id)
            code = self.api.exec_inspect(exec_id)["ExitCode"]
        except docker.errors.APIError as exc:
            return ExecResult(exit_code=255, output=str(exc.explanation or exc))
        return ExecResult(
            exit_code=int(code if code is not None else 255), output=output.decode(errors="replace")
        )

    def logs(self, name: str, tail: int = 30) -> str:
        try:
            return self.api.logs(name, tail=tail, stdout=True, stderr=True).decode(errors="replace")
        except docker.errors.APIError as exc:
            return f"(no logs: {exc.explanation or exc})"

    def kill(self, name: str, signal: str = "KILL") -> None:
        self.api.kill(name, signal=signal)

    def pause(self, name: str) -> None:
        self.api.pause(name)

    def unpause(self, name: str) -> None:
        self.api.unpause(name)

    def stop(self, name: str, timeout: int = 30) -> None:
        self.api.stop(name, timeout=timeout)

    def start(self, name: str) -> None:
        self.api.start(name)

    def remove(self, name: str) -> None:
        try:
            container = self.client.containers.get(name)
        except docker.errors.NotFound:
            return
        _, error = self._remove_container(container)
        if error:
            raise InfraError(f"cannot remove container {error}")

    # -- labelled resources -----------------------------------------------------------------------
    def containers(self, run_id: str | None = None) -> list[Resource]:
        return [Resource("container", c.name, dict(c.labels), c.status) for c in self._containers(run_id)]

    def networks(self, run_id: str | None = None) -> list[Resource]:
        return [
            Resource("network", n.name, dict(n.attrs.get("Labels") or {})) for n in self._networks(run_id)
        ]

    def volumes(self, run_id: str | None = None) -> list[Resource]:
        return [Resource("volume", v.name, dict(v.attrs.get("Labels") or {})) for v in self._volumes(run_id)]

    def _containers(self, run_id: str | None) -> list[Container]:
        return list(
            self.client.containers.list(all=True, filters={"label": _labels(run_id)}, ignore_removed=True)
        )

    def _networks(self, run_id: str | None) -> list[Any]:
        return list(self.client.networks.list(filters={"label": _labels(run_id)}))

    def _volumes(self, run_id: str | None) -> list[Any]:
        return list(self.client.volumes.list(filters={"label": _labels(run_id)}))

    def create_volume(self, name: str, labels: Mapping[str, str]) -> None:
        self.client.volumes.create(name=name, labels=dict(labels))

    def remove_run(self, run_id: str | None = None, *, timeout: float = 60.0) -> int:
        """Remove every container, network and volume of a run (all runs: ``None``); returns the count.

        Removal goes round again until nothing with the labels is left: a container whose start was in
        flight when Ctrl-C came may refuse removal for a moment or appear after the first listing, and
        a network cannot go while a container is still attached to it.
        """
        deadline = time.monotonic() + timeout
        count = 0
        while True:
            found = self._containers(run_id), self._networks(run_id), self._volumes(run_id)
            if not any(found):
                return count
            removed, errors = self._remove(*found)
            count += removed
            if time.monotonic() >= deadline:
                left = [c.name for c in found[0]] + [n.name for n in found[1]] + [v.name for v in found[2]]
                raise InfraError(f"could not remove {', '.join(left)}: {'; '.join(errors) or 'still there'}")
            if errors:
                time.sleep(0.2)  # back off before the next round; the loop itself checks what is left

    def _remove(
        self, containers: Iterable[Container], networks: Iterable[Any], volumes: Iterable[Any]
    ) -> tuple[int, list[str]]:
        """One removal pass; returns (how many were removed, errors met) and never stops half-way."""
        count, errors = 0, []
        containers = list(containers)
        if containers:
            with ThreadPoolExecutor(max_workers=8) as pool:
                for removed, error in pool.map(self._remove_container, containers):
                    count += removed
                    errors += [error] if error else []
        removals = [(n.name, n.remove) for n in networks]
        removals += [(v.name, lambda v=v: v.remove(force=True)) for v in volumes]
        for name, remove in removals:
            try:
                remove()
                count += 1
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                errors.append(f"{name}: {exc.explanation or exc}")
        return count, errors

    def _remove_container(self, container: Container) -> tuple[int, str | None]:
        try:
            if container.status == "paused":
                with contextlib.suppress(docker.errors.APIError):
                    container.unpause()
            container.remove(force=True, v=True)
            return 1, None
        except docker.errors.NotFound:
            return 0, None
        except docker.errors.APIError as exc:
            return 0, f"{container.name}: {exc.explanation or exc}"
