"""The node image: built offline from Debian packages (mmdebstrap + docker import) or from a Dockerfile.

The tag is a hash of the recipe (package list + customize script + build method version), so an unchanged
recipe is never rebuilt and a changed one always is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from harness import progress
from harness.errors import InfraError
from harness.runtime.base import Runtime

log = logging.getLogger(__name__)

REPOSITORY = "ha-harness/node"
RECIPE_FILES = ("packages.txt", "customize.sh", "Dockerfile")
BUILD_VERSION = "1"  # bump when the build procedure itself changes
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"


def recipe_dir() -> Path:
    return Path(str(resources.files("harness.recipes") / "node"))


def recipe_hash() -> str:
    digest = hashlib.sha256(BUILD_VERSION.encode())
    for name in RECIPE_FILES:
        digest.update(name.encode() + b"\0" + (recipe_dir() / name).read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def node_image_ref() -> str:
    return f"{REPOSITORY}:{recipe_hash()}"


def packages() -> list[str]:
    lines = (recipe_dir() / "packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def ensure_node_image(runtime: Runtime, *, force: bool = False, via: str = "auto") -> str:
    """Return the node image reference, building it first when the recipe's tag is absent (or ``force``)."""
    ref = node_image_ref()
    if not force and runtime.image_exists(ref):
        log.info(f"node image {ref} is up to date")
        return ref
    method = via
    if method == "auto":
        method = "mmdebstrap" if shutil.which("mmdebstrap") and os.geteuid() == 0 else "dockerfile"
    if method not in ("mmdebstrap", "dockerfile"):
        raise InfraError(f"unknown image build method {via!r}, expected auto, mmdebstrap or dockerfile")
    log.info(f"building node image {ref} via {method} (Debian {SUITE}: {len(packages())} packages)")
    with progress.phase("image build") as shown:
        shown.update(f"{ref} via {method}")
        if method == "mmdebstrap":
            _build_offline(runtime, ref, shown)
        else:
            _build_dockerfile(runtime, ref)
    log.info(f"node image {ref} built")
    return ref


def _build_offline(runtime: Runtime, ref: str, shown: progress.Phase) -> None:
    mirror = os.environ.get("HARNESS_DEBIAN_MIRROR", DEFAULT_MIRROR)
    customize = recipe_dir() / "customize.sh"
    with tempfile.TemporaryDirectory(prefix="ha-harness-image-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        build_log = Path(tmp) / "mmdebstrap.log"
        cmd = [
            "mmdebstrap",
            "--variant=minbase",
            "--include=" + ",".join(packages()),
            f"--customize-hook=copy-in {customize} /tmp",
            '--customize-hook=chroot "$1" sh /tmp/customize.sh',
            '--customize-hook=rm -f "$1/tmp/customize.sh"',
            SUITE,
            str(tarball),
            mirror,
        ]
        log.info("  mmdebstrap: resolving and installing packages into a root file system")
        returncode = _logged_run(cmd, build_log, shown, prefix="mmdebstrap: ")
        if returncode != 0:
            tail = "\n".join(build_log.read_text(errors="replace").splitlines()[-15:])
            raise InfraError(f"mmdebstrap failed (exit {returncode}); last lines:\n{tail}")
        log.info(f"  docker import: {tarball.stat().st_size // 2**20} MiB")
        shown.update(f"docker import: {tarball.stat().st_size // 2**20} MiB")
        tag = ref.split(":")[1]
        runtime.import_image(str(tarball), ref, ['CMD ["/bin/bash"]', f"LABEL io.ha-harness.recipe={tag}"])
    if not runtime.image_exists(ref):
        raise InfraError(f"docker import did not produce {ref}")


def _logged_run(cmd: list[str], build_log: Path, shown: progress.Phase, *, prefix: str) -> int:
    """Run ``cmd`` with its output in ``build_log``, its latest line shown as the phase's step."""
    with build_log.open("w") as out:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace") as proc:  # fmt: skip
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                if line.strip():
                    shown.update(prefix + line.strip()[:100])
        return proc.wait()


def _build_dockerfile(runtime: Runtime, ref: str) -> None:
    log.info("  docker build: FROM debian:bookworm (needs a registry)")
    runtime.build_image(str(recipe_dir()), ref)
