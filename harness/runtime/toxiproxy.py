"""A small typed client for the Toxiproxy v2 HTTP API, plus a local server process for tests and benchmarks.

Standard library only. One keep-alive HTTP/1.1 connection per client (guarded by a lock), so applying or
healing a fault costs one local round trip, well under a millisecond on loopback.

Endpoints used (Toxiproxy v2.12):

    GET    /version                          {"version": "..."}
    GET    /proxies                          {name: proxy, ...}
    POST   /proxies                          create; 409 if the name exists
    GET    /proxies/{p}                      proxy, including its toxics
    PATCH  /proxies/{p}                      {"enabled": bool}  (POST is deprecated since 2.x)
    DELETE /proxies/{p}
    GET    /proxies/{p}/toxics               [toxic, ...]
    POST   /proxies/{p}/toxics               add; 409 if the name exists
    GET    /proxies/{p}/toxics/{t}
    PATCH  /proxies/{p}/toxics/{t}           partial update (attributes are merged)
    DELETE /proxies/{p}/toxics/{t}
    POST   /reset                            re-enable every proxy, remove every toxic
    POST   /populate                         [proxy, ...]: create or replace several at once

The server validates little (it accepts a negative latency or a toxicity of 2), so callers should validate
their input first; `harness.faults.link` does.

Errors::

    InfraError
     └── ToxiproxyError              any failed call (status is None when no HTTP response came back)
          ├── ToxiproxyNotFound      404: no such proxy or toxic
          └── ToxiproxyConflict      409: a proxy or toxic of that name already exists
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast

from harness.errors import InfraError

__all__ = [
    "DEFAULT_TIMEOUT",
    "Proxy",
    "Stream",
    "Toxic",
    "ToxiproxyClient",
    "ToxiproxyConflict",
    "ToxiproxyError",
    "ToxiproxyNotFound",
    "find_toxiproxy_server",
]

Stream = Literal["upstream", "downstream"]
AttrValue = int | float | str | bool

DEFAULT_TIMEOUT = 5.0
"""Seconds to wait for any single API call."""

_STREAMS: frozenset[str] = frozenset({"upstream", "downstream"})
# Errors that mean a reused keep-alive connection had been closed by the server before we sent anything.
_STALE_CONNECTION_ERRORS = (
    http.client.RemoteDisconnected,
    http.client.CannotSendRequest,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)


# ---------------------------------------------------------------------------------------------- errors


class ToxiproxyError(InfraError):
    """A Toxiproxy API call failed.

    `status` is the HTTP status, or None when no HTTP response came back (refused, timed out, garbled).
    `message` is the server's error text (or the transport error).
    """

    def __init__(self, message: str, status: int | None = None, *, method: str = "", path: str = "") -> None:
        self.message = message
        self.status = status
        self.method = method
        self.path = path
        where = f" {method} {path}" if method else ""
        code = f"{status} " if status is not None else ""
        super().__init__(f"toxiproxy{where}: {code}{message}")


class ToxiproxyNotFound(ToxiproxyError):
    """404: the proxy or toxic does not exist."""


class ToxiproxyConflict(ToxiproxyError):
    """409: a proxy or toxic with that name already exists."""


def error_from_response(status: int, body: bytes, *, method: str = "", path: str = "") -> ToxiproxyError:
    """Build the typed error for a non-2xx response (body is usually `{"error": ..., "status": ...}`)."""
    text = body.decode("utf-8", "replace").strip()
    message = text.splitlines()[0] if text else http.client.responses.get(status, "error")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        message = doc["error"]
    cls: type[ToxiproxyError] = ToxiproxyError
    if status == 404:
        cls = ToxiproxyNotFound
    elif status == 409:
        cls = ToxiproxyConflict
    return cls(message, status, method=method, path=path)


# ---------------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Proxy:
    """A proxy: `listen` (host:port, port 0 = the server picks one) forwards to `upstream`."""

    name: str
    listen: str
    upstream: str
    enabled: bool = True

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Proxy:
        return cls(
            name=str(doc["name"]),
            listen=str(doc["listen"]),
            upstream=str(doc["upstream"]),
            enabled=bool(doc.get("enabled", True)),
        )

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream, "enabled": self.enabled}

    @property
    def listen_port(self) -> int:
        """The port of `listen` (after creation it is the real one, even if 0 was asked for)."""
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def listen_host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")


@dataclass(frozen=True)
class Toxic:
    """A toxic on one stream of a proxy.

    `stream` "upstream" is client → server, "downstream" is server → client. `toxicity` is the probability
    (0..1) that the toxic applies to a given connection. `attributes` depend on `type` (e.g. latency:
    {"latency": ms, "jitter": ms}).
    """

    name: str
    type: str
    stream: Stream = "downstream"
    toxicity: float = 1.0
    attributes: dict[str, AttrValue] = field(default_factory=dict, hash=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Toxic:
        stream = str(doc.get("stream", "downstream"))
        if stream not in _STREAMS:
            raise ToxiproxyError(f"unexpected stream {stream!r} in toxic {doc.get('name')!r}")
        return cls(
            name=str(doc["name"]),
            type=str(doc["type"]),
            stream=cast(Stream, stream),
            toxicity=float(doc.get("toxicity", 1.0)),
            attributes=dict(doc.get("attributes") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }


# ---------------------------------------------------------------------------------------------- client


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


class ToxiproxyClient:
    """Client for one Toxiproxy server, e.g. `ToxiproxyClient("http://127.0.0.1:8474")`.

    Thread-safe (calls are serialised on one keep-alive connection). Every call either returns a value
    or raises a `ToxiproxyError`; `timeout` bounds each call, in seconds.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8474", timeout: float = DEFAULT_TIMEOUT) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"toxiproxy base_url must look like http://host:port, got {base_url!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ToxiproxyClient({self.base_url!r}, timeout={self.timeout})"

    # -- lifecycle

    def close(self) -> None:
        """Close the keep-alive connection (the next call opens a new one)."""
        with self._lock:
            self._drop_connection()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- server

    def version(self) -> str:
        """The server's version string ("git" for a `go install` build without version stamping)."""
        return self._version(self.timeout)

    def wait_ready(self, deadline: float) -> str:
        """Poll /version until the server answers; `deadline` is how many seconds to keep trying.

        Returns the version. Raises `ToxiproxyError` (carrying the last failure) if it never answered.
        """
        end = time.monotonic() + deadline
        pause = 0.005
        while True:
            remaining = end - time.monotonic()
            try:
                return self._version(max(0.05, min(self.timeout, remaining)))
            except ToxiproxyError as exc:
                if exc.status is not None and exc.status < 500:
                    raise
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise ToxiproxyError(
                        f"not ready after {deadline:.1f}s (last error: {exc.message})", exc.status
                    ) from exc
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, 0.1)

    def reset(self) -> None:
        """Re-enable every proxy and remove every toxic (including ones the harness did not add)."""
        self._request("POST", "/reset")

    # -- proxies

    def proxies(self) -> dict[str, Proxy]:
        doc = self._request("GET", "/proxies")
        return {name: Proxy.from_json(p) for name, p in cast(dict[str, Any], doc).items()}

    def create_proxy(self, name: str, listen: str, upstream: str, enabled: bool = True) -> Proxy:
        """Create a proxy; `listen` may use port 0, the returned Proxy has the real port."""
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return Proxy.from_json(self._request("POST", "/proxies", body))

    def get_proxy(self, name: str) -> Proxy:
        return Proxy.from_json(self._request("GET", f"/proxies/{_quote(name)}"))

    def delete_proxy(self, name: str) -> None:
        self._request("DELETE", f"/proxies/{_quote(name)}")

    def set_enabled(self, name: str, enabled: bool) -> Proxy:
        """Enable or disable a proxy. Disabling closes its listener and every open connection through it."""
        return Proxy.from_json(self._request("PATCH", f"/proxies/{_quote(name)}", {"enabled": enabled}))

    def populate(self, proxies: Iterable[Proxy]) -> list[Proxy]:
        """Create several proxies in one call. A proxy whose name exists is replaced when its listen or
        upstream differs (a listen with port 0 always differs, so such a proxy gets a new port), and is left
        alone otherwise."""
        body = [p.to_json() for p in proxies]
        doc = self._request("POST", "/populate", body)
        return [Proxy.from_json(p) for p in cast(dict[str, Any], doc).get("proxies") or []]

    # -- toxics

    def toxics(self, proxy: str) -> list[Toxic]:
        doc = self._request("GET", f"/proxies/{_quote(proxy)}/toxics")
        return [Toxic.from_json(t) for t in cast(list[Any], doc)]

    def get_toxic(self, proxy: str, name: str) -> Toxic:
        return Toxic.from_json(self._request("GET", f"/proxies/{_quote(proxy)}/toxics/{_quote(name)}"))

    def add_toxic(self, proxy: str, toxic: Toxic) -> Toxic:
        """Add a toxic; it applies to open connections as well as new ones. Returns what the server stored
        (with defaulted attributes filled in)."""
        return Toxic.from_json(self._request("POST", f"/proxies/{_quote(proxy)}/toxics", toxic.to_json()))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        *,
        attributes: Mapping[str, AttrValue] | None = None,
        toxicity: float | None = None,
    ) -> Toxic:
        """Change a toxic in place; attributes not given keep their values."""
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = dict(attributes)
        if toxicity is not None:
            body["toxicity"] = toxicity
        path = f"/proxies/{_quote(proxy)}/toxics/{_quote(name)}"
        return Toxic.from_json(self._request("PATCH", path, body))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._request("DELETE", f"/proxies/{_quote(proxy)}/toxics/{_quote(name)}")

    # -- transport

    def _version(self, timeout: float) -> str:
        doc = self._request("GET", "/version", timeout=timeout)
        if isinstance(doc, dict) and "version" in doc:
            return str(doc["version"])
        return str(doc)

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(self, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        full_path = self._prefix + path
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        call_timeout = self.timeout if timeout is None else timeout
        with self._lock:
            for attempt in (1, 2):
                reused = self._conn is not None
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(self._host, self._port, timeout=call_timeout)
                conn = self._conn
                conn.timeout = call_timeout
                if conn.sock is not None:
                    conn.sock.settimeout(call_timeout)
                try:
                    conn.request(method, full_path, body=payload, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except _STALE_CONNECTION_ERRORS as exc:
                    self._drop_connection()
                    if reused and attempt == 1:
                        continue  # the server closed an idle keep-alive connection: retry once, fresh
                    raise ToxiproxyError(_describe(exc), method=method, path=path) from exc
                except (OSError, http.client.HTTPException) as exc:
                    self._drop_connection()
                    raise ToxiproxyError(_describe(exc), method=method, path=path) from exc
                if resp.will_close:
                    self._drop_connection()
                break
        if not 200 <= resp.status < 300:
            raise error_from_response(resp.status, data, method=method, path=path)
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ToxiproxyError(
                f"response is not JSON: {data[:80]!r}", resp.status, method=method, path=path
            ) from exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, OSError) else f"{type(exc).__name__}: {text}"


# ---------------------------------------------------------------------------------------------- binary


def find_toxiproxy_server() -> Path | None:
    """Locate the toxiproxy-server binary, or None.

    Order: $HARNESS_TOXIPROXY_SERVER, $HARNESS_HOME/bin/toxiproxy-server,
    ~/.local/share/ha-harness/bin/toxiproxy-server, then `toxiproxy-server` on PATH.
    """
    candidates: list[Path] = []
    explicit = os.environ.get("HARNESS_TOXIPROXY_SERVER")
    if explicit:
        candidates.append(Path(explicit).expanduser())
    home = os.environ.get("HARNESS_HOME")
    if home:
        candidates.append(Path(home).expanduser() / "bin" / "toxiproxy-server")
    candidates.append(Path.home() / ".local" / "share" / "ha-harness" / "bin" / "toxiproxy-server")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    on_path = shutil.which("toxiproxy-server")
    return Path(on_path) if on_path else None
