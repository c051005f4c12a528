"""A toxiproxy-server as a local subprocess, for tests and benchmarks (the harness itself runs the server
in a container of each run: ``harness.runtime.proxies``)."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from harness.errors import InfraError
from harness.runtime.toxiproxy import DEFAULT_TIMEOUT, ToxiproxyClient, ToxiproxyError

__all__ = ["ToxiproxyProcess"]


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ToxiproxyProcess:
    """Run a toxiproxy-server as a local subprocess (tests, benchmarks)::

        with ToxiproxyProcess(find_toxiproxy_server()) as tp:
            tp.client.create_proxy("db", "127.0.0.1:0", "127.0.0.1:3306")

    `port=0` picks a free port (retrying if another process grabs it first). Entering waits until the API
    answers (never a fixed sleep); leaving terminates the server, killing it if it does not stop in time.
    The server's output goes to `log_path` if given, else to a temporary file whose tail is attached to
    the error if it fails to start.
    """

    def __init__(
        self,
        binary: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        startup_timeout: float = 10.0,
        log_path: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.binary = Path(binary)
        self.host = host
        self.requested_port = port
        self.port = port
        self.startup_timeout = startup_timeout
        self.log_path = Path(log_path) if log_path is not None else None
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._client: ToxiproxyClient | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def client(self) -> ToxiproxyClient:
        if self._client is None:
            raise InfraError("toxiproxy-server is not running (use ToxiproxyProcess as a context manager)")
        return self._client

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Self:
        if self._proc is not None:
            return self
        if not (self.binary.is_file() and os.access(self.binary, os.X_OK)):
            raise InfraError(f"toxiproxy-server not found or not executable: {self.binary}")
        attempts = 3 if self.requested_port == 0 else 1
        last: InfraError | None = None
        for _ in range(attempts):
            try:
                self._start_once()
                return self
            except InfraError as exc:
                last = exc
                self.stop()
        assert last is not None
        raise last

    def _start_once(self) -> None:
        self.port = self.requested_port or _free_port(self.host)
        if self.log_path is not None:
            self._log = self.log_path.open("ab")
        else:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [str(self.binary), "-host", self.host, "-port", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        client = ToxiproxyClient(self.base_url, timeout=self.timeout)
        end = time.monotonic() + self.startup_timeout
        pause = 0.005
        while True:
            if self._proc.poll() is not None:
                client.close()
                raise InfraError(
                    f"toxiproxy-server exited with {self._proc.returncode} on {self.base_url}"
                    f"{self._log_tail()}"
                )
            try:
                client._version(timeout=min(1.0, self.timeout))
                break
            except ToxiproxyError as exc:
                if time.monotonic() >= end:
                    client.close()
                    raise InfraError(
                        f"toxiproxy-server on {self.base_url} not ready after {self.startup_timeout:.1f}s: "
                        f"{exc.message}{self._log_tail()}"
                    ) from exc
            time.sleep(min(pause, max(end - time.monotonic(), 0.0)))
            pause = min(pause * 2, 0.05)
        self._client = client

    def _log_tail(self, lines: int = 10) -> str:
        if self._log is None:
            return ""
        try:
            self._log.flush()
            self._log.seek(0)
            tail = self._log.read().decode("utf-8", "replace").splitlines()[-lines:]
        except (OSError, ValueError):
            return ""
        return ("\n--- server output (last lines) ---\n" + "\n".join(tail)) if tail else ""

    def stop(self, grace: float = 5.0) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=grace)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
