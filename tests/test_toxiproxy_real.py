"""Link faults and the Toxiproxy client against the real toxiproxy-server, on 127.0.0.1 (no Docker).

The server is located by `find_toxiproxy_server()` (HARNESS_TOXIPROXY_SERVER, $HARNESS_HOME/bin,
~/.local/share/ha-harness/bin, PATH); the tests skip only when it is absent. Upstream is a small threaded
TCP echo server. No fixed sleeps: every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import contextlib
import re
import socket
import socketserver
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from harness.errors import InputError
from harness.faults.link import LinkFaults, link_fault_from_dict, toxics_for
from harness.model.faults import (
    Bandwidth,
    Down,
    Latency,
    LimitData,
    LinkFaultBase,
    ResetPeer,
    Slicer,
    SlowClose,
    Stall,
    Timeout,
)
from harness.runtime.toxiproxy import (
    Proxy,
    Toxic,
    ToxiproxyClient,
    ToxiproxyConflict,
    ToxiproxyError,
    ToxiproxyNotFound,
    find_toxiproxy_server,
)
from tests.support.toxiproxy_process import ToxiproxyProcess

SERVER = find_toxiproxy_server()
pytestmark = pytest.mark.skipif(
    SERVER is None,
    reason="toxiproxy-server not found: set HARNESS_TOXIPROXY_SERVER, or run the setup script "
    "(installs $HARNESS_HOME/bin/toxiproxy-server), or put toxiproxy-server on PATH",
)

LINK = "app->db"
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------- helpers


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        try:
            while data := sock.recv(65536):
                sock.sendall(data)
        except OSError:
            pass


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _EchoHandler)
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="echo", daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host!s}:{port}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


def eventually(probe: Callable[[], T | None], deadline: float = 3.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something other than None (or False), failing after `deadline` s."""
    end = time.monotonic() + deadline
    pause = 0.002
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= end:
            pytest.fail(f"{what} not reached within {deadline}s")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def connect(proxy: Proxy, timeout: float = 2.0) -> socket.socket:
    sock = socket.create_connection((proxy.listen_host, proxy.listen_port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def round_trip(sock: socket.socket, payload: bytes = b"ping-0123456789") -> float:
    """Seconds for one request/response through the echo server."""
    start = time.perf_counter()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.perf_counter() - start


def median_rtt(sock: socket.socket, n: int) -> float:
    return statistics.median(round_trip(sock) for _ in range(n))


def echo_works(proxy: Proxy) -> bool:
    try:
        with connect(proxy, timeout=1.0) as sock:
            round_trip(sock)
            return True
    except OSError:
        return False


def refused(proxy: Proxy) -> bool:
    try:
        with connect(proxy, timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True


def names(client: ToxiproxyClient, proxy: Proxy) -> set[str]:
    return {t.name for t in client.toxics(proxy.name)}


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def toxiproxy() -> Iterator[ToxiproxyProcess]:
    assert SERVER is not None
    with ToxiproxyProcess(SERVER) as tp:
        yield tp


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def client(toxiproxy: ToxiproxyProcess) -> ToxiproxyClient:
    return toxiproxy.client


@pytest.fixture
def proxy(client: ToxiproxyClient, echo: EchoServer, request: pytest.FixtureRequest) -> Iterator[Proxy]:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:60]
    created = client.create_proxy(name, "127.0.0.1:0", echo.address)
    assert created.listen_port != 0
    yield created
    with contextlib.suppress(ToxiproxyNotFound):
        client.delete_proxy(name)


@pytest.fixture
def faults(client: ToxiproxyClient, proxy: Proxy) -> LinkFaults:
    return LinkFaults(client, {LINK: proxy.name})


# ---------------------------------------------------------------------------------------------- client


def test_client_round_trip_of_the_v2_api(client: ToxiproxyClient, echo: EchoServer, proxy: Proxy) -> None:
    assert client.version()
    assert client.get_proxy(proxy.name) == proxy
    assert proxy.name in client.proxies()

    with pytest.raises(ToxiproxyConflict) as conflict:
        client.create_proxy(proxy.name, "127.0.0.1:0", echo.address)
    assert conflict.value.status == 409
    with pytest.raises(ToxiproxyNotFound) as missing:
        client.get_proxy("no-such-proxy")
    assert missing.value.status == 404
    assert "proxy not found" in str(missing.value)

    added = client.add_toxic(proxy.name, Toxic("lat", "latency", attributes={"latency": 7}))
    assert added.attributes == {"latency": 7, "jitter": 0}  # the server fills in defaults
    updated = client.update_toxic(proxy.name, "lat", attributes={"jitter": 2}, toxicity=0.5)
    assert updated.attributes == {"latency": 7, "jitter": 2}
    assert updated.toxicity == 0.5
    assert client.get_toxic(proxy.name, "lat") == updated
    assert client.toxics(proxy.name) == [updated]
    with pytest.raises(ToxiproxyConflict):
        client.add_toxic(proxy.name, Toxic("lat", "latency"))
    with pytest.raises(ToxiproxyError) as bad:
        client.add_toxic(proxy.name, Toxic("bad", "no-such-type"))
    assert bad.value.status == 400

    assert client.set_enabled(proxy.name, False).enabled is False
    assert client.get_proxy(proxy.name).enabled is False
    client.reset()
    assert client.get_proxy(proxy.name).enabled is True
    assert client.toxics(proxy.name) == []

    extra = Proxy(f"{proxy.name}-pop", "127.0.0.1:0", echo.address)
    try:
        populated = client.populate([extra])
        assert [p.name for p in populated] == [extra.name]
        assert echo_works(populated[0])
    finally:
        client.delete_proxy(extra.name)
    with pytest.raises(ToxiproxyNotFound):
        client.delete_proxy(extra.name)


def test_process_stops_and_a_dead_server_is_a_typed_error() -> None:
    assert SERVER is not None
    with ToxiproxyProcess(SERVER) as tp:
        url = tp.base_url
        assert tp.client.wait_ready(5.0)
    dead = ToxiproxyClient(url, timeout=1.0)
    with pytest.raises(ToxiproxyError) as exc:
        dead.version()
    assert exc.value.status is None
    with pytest.raises(ToxiproxyError, match="not ready after"):
        dead.wait_ready(0.2)


# ---------------------------------------------------------------------------------------------- link faults


def test_latency_raises_round_trip_by_the_configured_delay(
    client: ToxiproxyClient, proxy: Proxy, faults: LinkFaults
) -> None:
    delay = 0.200
    with connect(proxy) as sock:
        baseline = median_rtt(sock, 9)  # this host, its load now, the same connection
        applied = faults.apply(Latency(target=LINK, latency_ms=int(delay * 1000), direction="downstream"))
        assert applied.called_ns <= applied.acked_ns
        # the toxic also applies to connections that were already open: every echo is held back by the
        # delay, so a round trip rises by at least most of it, and by nowhere near several delays
        added = median_rtt(sock, 5) - baseline
        assert 0.8 * delay <= added <= 2.5 * delay, f"latency added {added * 1000:.1f} ms for a 200 ms toxic"

        faults.heal(applied)
        assert median_rtt(sock, 5) < baseline + 0.5 * delay


def test_toxicity_zero_has_no_effect(proxy: Proxy, faults: LinkFaults) -> None:
    delay = 0.200
    with connect(proxy) as sock:
        baseline = median_rtt(sock, 5)
    faults.apply(Latency(target=LINK, latency_ms=int(delay * 1000), direction="both", toxicity=0.0))
    with connect(proxy) as sock:  # toxicity is decided per connection
        # with toxicity 1 this would add about two delays (one per direction); here less than half of one
        assert median_rtt(sock, 3) < baseline + 0.5 * delay


def test_down_refuses_connections_and_heal_restores_them(
    client: ToxiproxyClient, proxy: Proxy, faults: LinkFaults
) -> None:
    assert echo_works(proxy)
    with connect(proxy) as open_sock:
        round_trip(open_sock)
        applied = faults.apply(Down(target=LINK))
        assert applied.disabled and applied.toxics == ()
        assert client.get_proxy(proxy.name).enabled is False
        eventually(lambda: refused(proxy), what="new connections refused")

        # an open connection is closed as well
        open_sock.settimeout(2.0)
        try:
            closed = open_sock.recv(1) == b""
        except ConnectionResetError:
            closed = True
        assert closed

    healed = faults.heal(applied)
    assert healed.reenabled == (proxy.name,)
    eventually(lambda: echo_works(proxy), what="echo through the re-enabled proxy")


def test_down_does_not_re_enable_a_proxy_it_did_not_disable(
    client: ToxiproxyClient, proxy: Proxy, faults: LinkFaults
) -> None:
    client.set_enabled(proxy.name, False)
    applied = faults.apply(Down(target=LINK))
    assert applied.disabled is False
    assert faults.heal(applied).reenabled == ()
    assert client.get_proxy(proxy.name).enabled is False


def test_stall_stops_data_but_keeps_the_connection_open_until_healed(
    proxy: Proxy, faults: LinkFaults
) -> None:
    with connect(proxy) as sock:
        round_trip(sock)
        applied = faults.apply(Timeout(target=LINK, timeout_ms=0, direction="both"))
        sock.settimeout(0.5)
        sock.sendall(b"held")
        with pytest.raises(TimeoutError):  # data stops, but the connection is neither closed nor reset
            sock.recv(16)

        faults.heal(applied)
        # Toxiproxy v2 closes the connections a timeout toxic held when it is removed (held data is lost),
        # so a stalled request ends as an indeterminate outcome for the client ...
        sock.settimeout(3.0)
        try:
            after = sock.recv(16)
        except ConnectionResetError:
            after = b""
        assert after == b""
    # ... and data flows again on new connections
    eventually(lambda: echo_works(proxy), what="echo after heal")


def test_reset_peer_resets_connections(proxy: Proxy, faults: LinkFaults) -> None:
    applied = faults.apply(ResetPeer(target=LINK, timeout_ms=0))

    def reset_seen() -> bool:
        with connect(proxy) as sock:
            try:
                sock.sendall(b"x")
                data = sock.recv(16)
            except ConnectionResetError:
                return True
            assert data != b"x", "data passed through a reset_peer toxic"
            return False

    eventually(reset_seen, what="connection reset by peer")
    faults.heal(applied)
    eventually(lambda: echo_works(proxy), what="echo after heal")


def test_limit_data_closes_after_the_byte_budget(proxy: Proxy, faults: LinkFaults) -> None:
    faults.apply(LimitData(target=LINK, bytes=8))
    with connect(proxy) as sock:
        sock.sendall(b"0123456789abcdef")
        received = b""
        while chunk := sock.recv(64):
            received += chunk
        assert received == b"01234567"


def test_heal_removes_exactly_the_toxics_the_fault_added(
    client: ToxiproxyClient, proxy: Proxy, faults: LinkFaults
) -> None:
    client.add_toxic(proxy.name, Toxic("foreign", "latency", attributes={"latency": 1}))
    applied = faults.apply(Latency(target=LINK, latency_ms=5, jitter_ms=1, direction="both"))
    assert len(applied.toxics) == 2
    assert all(re.fullmatch(r"hh-latency-\d+-(upstream|downstream)", n) for n in applied.toxics)
    assert names(client, proxy) == {"foreign", *applied.toxics}

    healed = faults.heal(applied)
    assert set(healed.removed) == {(proxy.name, n) for n in applied.toxics}
    assert names(client, proxy) == {"foreign"}


def test_heal_is_idempotent(client: ToxiproxyClient, proxy: Proxy, faults: LinkFaults) -> None:
    lat = faults.apply(Latency(target=LINK, latency_ms=5, direction="both"))
    down = faults.apply(Down(target=LINK))
    client.remove_toxic(proxy.name, lat.toxics[0])  # one toxic already gone by hand: not an error

    first = faults.heal(lat)
    assert first.removed == ((proxy.name, lat.toxics[1]),)
    assert faults.heal(lat).removed == ()
    faults.heal(down)
    faults.heal(down)
    assert client.get_proxy(proxy.name).enabled is True
    assert names(client, proxy) == set()


def test_heal_all_restores_the_baseline_but_keeps_foreign_toxics(
    client: ToxiproxyClient, proxy: Proxy, faults: LinkFaults
) -> None:
    client.add_toxic(proxy.name, Toxic("foreign", "bandwidth", attributes={"rate": 1000}))
    client.add_toxic(proxy.name, Toxic("hh-latency-99-downstream", "latency"))  # left by a crashed run
    faults.apply(Stall(target=LINK))
    faults.apply(Down(target=LINK))

    healed = faults.heal_all()
    assert healed.reenabled == (proxy.name,)
    assert len(healed.removed) == 3
    assert names(client, proxy) == {"foreign"}
    assert client.get_proxy(proxy.name).enabled is True
    assert faults.heal_all().removed == ()


def test_apply_is_all_or_nothing(client: ToxiproxyClient, proxy: Proxy, faults: LinkFaults) -> None:
    # the downstream name of the next fault is taken, so its second toxic fails: the first must be undone
    taken = toxics_for(Latency(target=LINK, latency_ms=1, direction="both"), 1)[1].name
    client.add_toxic(proxy.name, Toxic(taken, "latency"))
    with pytest.raises(ToxiproxyConflict):
        faults.apply(Latency(target=LINK, latency_ms=1, direction="both"))
    assert names(client, proxy) == {taken}


def test_invalid_input_changes_nothing(client: ToxiproxyClient, proxy: Proxy, faults: LinkFaults) -> None:
    with pytest.raises(InputError, match="unknown link"):
        faults.apply(Latency(target="no-such-link", latency_ms=5))
    with pytest.raises(InputError, match="latency_ms"):
        faults.apply(link_fault_from_dict({"target": LINK, "kind": "latency", "latency_ms": -5}))
    with pytest.raises(InputError, match="toxicity"):
        faults.apply(
            link_fault_from_dict({"target": LINK, "kind": "latency", "latency_ms": 5, "toxicity": 1.5})
        )
    assert names(client, proxy) == set()
    assert client.get_proxy(proxy.name).enabled is True


@pytest.mark.parametrize(
    "spec",
    [
        Latency(target=LINK, latency_ms=11, jitter_ms=3),
        Bandwidth(target=LINK, rate_kbps=123, direction="upstream"),
        Timeout(target=LINK, timeout_ms=1234),
        ResetPeer(target=LINK, timeout_ms=4321),
        SlowClose(target=LINK, delay_ms=77),
        Slicer(target=LINK, average_size=100, size_variation=10, delay_us=55),
        LimitData(target=LINK, bytes=999),
    ],
    ids=lambda s: s.kind,
)
def test_every_kind_uses_the_server_s_attribute_names(
    client: ToxiproxyClient, proxy: Proxy, faults: LinkFaults, spec: LinkFaultBase
) -> None:
    """The server ignores unknown attribute names, so check it stored exactly the values we sent."""
    applied = faults.apply(spec)
    stored = {t.stream: t for t in client.toxics(proxy.name)}
    assert sorted(t.name for t in stored.values()) == sorted(applied.toxics)
    for expected in toxics_for(spec, 0):
        got = stored[expected.stream]
        assert got.type == expected.type
        assert got.stream == expected.stream
        assert got.toxicity == expected.toxicity
        assert {k: got.attributes.get(k) for k in expected.attributes} == expected.attributes
    faults.heal(applied)
    assert names(client, proxy) == set()
