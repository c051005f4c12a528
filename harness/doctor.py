"""``harness doctor``: say what is missing and how to get it; ``--fix`` runs the set-up script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from rich.table import Table

from harness.paths import TOXIPROXY_VERSION, toxiproxy_server_path
from harness.report.console import console


def _setup_script() -> Path | None:
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (base / "setup.sh").is_file():
            return base / "setup.sh"
    return None


def checks() -> list[tuple[str, bool, str, str]]:
    """(what, ok, found, how to get it) for everything the harness needs on this host."""
    rows: list[tuple[str, bool, str, str]] = []
    ok = sys.version_info >= (3, 11)
    rows.append(("Python >= 3.11", ok, sys.version.split()[0], "install Python 3.11+"))
    engine, found = False, "no engine answers"
    try:
        from harness.runtime.docker import DockerRuntime

        runtime = DockerRuntime()
        engine, found = True, f"Docker {runtime.version()}"
    except Exception as exc:
        found = str(exc).split(";")[0][:80]
    rows.append(
        ("Docker engine", engine, found, "./setup.sh installs docker.io and starts dockerd (root, Debian)")
    )
    for tool, package, why in [
        ("iptables", "iptables", "partitions"),
        ("nsenter", "util-linux", "partitions"),
        ("mmdebstrap", "mmdebstrap", "offline image build"),
    ]:
        path = shutil.which(tool)
        rows.append((f"{tool} ({why})", bool(path), path or "absent", f"apt-get install {package}"))
    tp = toxiproxy_server_path()
    stamp = tp.parent / ".toxiproxy-version"
    version = stamp.read_text().strip() if stamp.exists() else "?"
    rows.append((f"Toxiproxy server {TOXIPROXY_VERSION}", tp.exists() and version == TOXIPROXY_VERSION,
                 f"{tp} ({version})" if tp.exists() else "absent",
                 f"go install github.com/Shopify/toxiproxy/v2/cmd/server@{TOXIPROXY_VERSION}"))  # fmt: skip
    if engine:
        from harness.runtime.images import node_image_ref

        ref = node_image_ref()
        present = runtime.image_exists(ref)
        rows.append(("node image", present, ref if present else f"{ref} absent", "harness images build"))
    return rows


def optional_checks() -> list[tuple[str, bool, str, str]]:
    """(what, ok, found, what its absence means) for what only some topologies need: shown, never a
    reason for a non-zero exit."""
    from harness.systems.ndb import IMAGE

    try:
        from harness.runtime.docker import DockerRuntime

        present = DockerRuntime().image_exists(IMAGE)
        found = IMAGE if present else f"{IMAGE} absent"
    except Exception:
        present, found = False, "no engine answers"
    return [(f"{IMAGE} image (NDB topologies)", present, found,
             "NDB topologies (ndb-*.yaml) cannot run here; pull the image where a registry is reachable")]  # fmt: skip


def doctor(*, fix: bool = False) -> int:
    if fix:
        script = _setup_script()
        if script is None:
            console.print("[red]setup.sh not found (run from a checkout of ha-harness)[/red]")
            return 4
        return subprocess.call(["bash", str(script)])
    table = Table(title="ha-harness doctor", title_justify="left")
    for column in ("needed", "", "found", "how to get it"):
        table.add_column(column)
    rows = checks()
    for what, ok, found, how in rows:
        table.add_row(what, "[green]ok[/green]" if ok else "[red]missing[/red]", found, "" if ok else how)
    for what, ok, found, how in optional_checks():
        table.add_row(
            what, "[green]ok[/green]" if ok else "[yellow]optional[/yellow]", found, "" if ok else how
        )
    console.print(table)
    missing = [r for r in rows if not r[1]]
    if missing:
        console.print("run [bold]harness doctor --fix[/bold] (or ./setup.sh) to install what is missing")
        return 4
    return 0
