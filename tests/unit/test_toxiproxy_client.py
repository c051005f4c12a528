"""Pure unit tests: link fault specs, toxic building, error mapping, binary lookup. No server, no network."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import HarnessError, InfraError, InputError
from harness.faults.link import (
    LINK_FAULT_KINDS,
    Bandwidth,
    Down,
    Latency,
    LimitData,
    LinkFaults,
    LinkFaultSpec,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
    link_fault_from_dict,
    stall,
    toxics_for,
)
from harness.runtime.toxiproxy import (
    Proxy,
    Toxic,
    ToxiproxyClient,
    ToxiproxyConflict,
    ToxiproxyError,
    ToxiproxyNotFound,
    ToxiproxyProcess,
    error_from_response,
    find_toxiproxy_server,
)

# ---------------------------------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Latency(-1), "latency.latency_ms: must be >= 0, got -1"),
        (lambda: Latency(10, jitter_ms=-2), "latency.jitter_ms: must be >= 0, got -2"),
        (lambda: Latency(10.5), "latency.latency_ms: must be an integer, got 10.5"),  # type: ignore[arg-type]
        (lambda: Latency(True), "latency.latency_ms: must be an integer, got True"),
        (lambda: Latency(10, toxicity=1.5), "latency.toxicity: must be a number from 0 to 1, got 1.5"),
        (lambda: Latency(10, toxicity=-0.1), "latency.toxicity: must be a number from 0 to 1, got -0.1"),
        (lambda: Latency(10, toxicity=float("nan")), "latency.toxicity: must be a number from 0 to 1"),
        (lambda: Latency(10, direction="sideways"), "latency.direction: must be one of"),  # type: ignore[arg-type]
        (lambda: Bandwidth(0), "bandwidth.rate_kbps: must be >= 1, got 0"),
        (lambda: Timeout(-1), "timeout.timeout_ms: must be >= 0"),
        (lambda: ResetPeer(-1), "reset_peer.timeout_ms: must be >= 0"),
        (lambda: SlowClose(-1), "slow_close.delay_ms: must be >= 0"),
        (lambda: Slicer(0), "slicer.average_size: must be >= 1"),
        (lambda: Slicer(10, size_variation=10), "slicer.size_variation: must be < average_size (10), got 10"),
        (lambda: Slicer(10, delay_us=-1), "slicer.delay_us: must be >= 0"),
        (lambda: LimitData(-1), "limit_data.bytes: must be >= 0"),
    ],
)
def test_invalid_specs_raise_a_one_line_input_error(build: Any, message: str) -> None:
    with pytest.raises(InputError) as exc:
        build()
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


def test_specs_are_frozen_values() -> None:
    spec = Latency(200, jitter_ms=20, direction="both", toxicity=0.5)
    assert spec == Latency(200, jitter_ms=20, direction="both", toxicity=0.5)
    assert hash(spec) == hash(Latency(200, jitter_ms=20, direction="both", toxicity=0.5))
    with pytest.raises(AttributeError):
        spec.latency_ms = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("spec", "toxic_type", "attributes"),
    [
        (Latency(200, jitter_ms=20), "latency", {"latency": 200, "jitter": 20}),
        (Bandwidth(64), "bandwidth", {"rate": 64}),
        (Timeout(), "timeout", {"timeout": 0}),
        (Timeout(1500), "timeout", {"timeout": 1500}),
        (ResetPeer(), "reset_peer", {"timeout": 0}),
        (SlowClose(300), "slow_close", {"delay": 300}),
        (
            Slicer(64, size_variation=8, delay_us=10),
            "slicer",
            {"average_size": 64, "size_variation": 8, "delay": 10},
        ),
        (LimitData(1024), "limit_data", {"bytes": 1024}),
    ],
)
def test_each_kind_builds_its_toxic(spec: LinkFaultSpec, toxic_type: str, attributes: dict[str, Any]) -> None:
    (toxic,) = toxics_for(spec, 7)
    assert toxic == Toxic(f"hh-{spec.kind}-7-downstream", toxic_type, "downstream", 1.0, attributes)


def test_direction_both_builds_one_toxic_per_stream() -> None:
    up, down = toxics_for(Latency(100, direction="both", toxicity=0.25), 3)
    assert (up.name, up.stream) == ("hh-latency-3-upstream", "upstream")
    assert (down.name, down.stream) == ("hh-latency-3-downstream", "downstream")
    assert up.toxicity == down.toxicity == 0.25
    assert up.attributes == down.attributes == {"latency": 100, "jitter": 0}
    assert up.attributes is not down.attributes


def test_upstream_and_down() -> None:
    (toxic,) = toxics_for(Bandwidth(10, direction="upstream"), 1)
    assert toxic.stream == "upstream"
    assert toxics_for(Down(), 1) == ()
    assert stall() == Timeout(0, direction="both")


@given(
    latency=st.integers(min_value=0, max_value=10**6),
    jitter=st.integers(min_value=0, max_value=10**6),
    direction=st.sampled_from(["upstream", "downstream", "both"]),
    toxicity=st.floats(min_value=0.0, max_value=1.0),
    n=st.integers(min_value=1, max_value=10**9),
)
def test_toxic_names_are_unique_and_carry_the_harness_prefix(
    latency: int, jitter: int, direction: Any, toxicity: float, n: int
) -> None:
    spec = Latency(latency, jitter_ms=jitter, direction=direction, toxicity=toxicity)
    toxics = toxics_for(spec, n)
    assert len(toxics) == (2 if direction == "both" else 1)
    assert len({t.name for t in toxics}) == len(toxics)
    assert all(t.name.startswith("hh-latency-") and t.name.endswith(t.stream) for t in toxics)


# ---------------------------------------------------------------------------------------------- from dict


def test_from_dict_builds_every_kind() -> None:
    assert link_fault_from_dict({"kind": "latency", "latency_ms": 5, "direction": "both"}) == Latency(
        5, direction="both"
    )
    assert link_fault_from_dict({"kind": "down"}) == Down()
    assert link_fault_from_dict({"kind": "stall", "direction": "upstream"}) == Timeout(
        0, direction="upstream"
    )
    assert set(LINK_FAULT_KINDS) == {
        "latency",
        "bandwidth",
        "timeout",
        "reset_peer",
        "slow_close",
        "slicer",
        "limit_data",
        "down",
    }


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"kind": "lag"}, "kind: must be one of latency, bandwidth"),
        ({}, "kind: must be one of"),
        ({"kind": "latency"}, "latency: missing field(s) latency_ms"),
        ({"kind": "latency", "latency_ms": 5, "delay": 3}, "latency: unknown field(s) delay"),
        ({"kind": "down", "direction": "both"}, "down: unknown field(s) direction; expected none"),
        ({"kind": "stall", "timeout_ms": 5}, "stall.timeout_ms: a stall has no timeout"),
        ({"kind": "bandwidth", "rate_kbps": -3}, "bandwidth.rate_kbps: must be >= 1"),
    ],
)
def test_from_dict_rejects_bad_input(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as exc:
        link_fault_from_dict(doc)
    assert str(exc.value).startswith(message)


# ---------------------------------------------------------------------------------------------- LinkFaults


def _client_that_cannot_connect() -> ToxiproxyClient:
    """A real client pointed at a port nobody listens on: any API call would raise ToxiproxyError."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return ToxiproxyClient(f"http://127.0.0.1:{port}", timeout=0.5)


def test_unknown_link_is_input_error_before_any_api_call() -> None:
    faults = LinkFaults(_client_that_cannot_connect(), {"app->db1": "db1"})
    with pytest.raises(InputError, match=r"unknown link 'app->db9'; known links: app->db1"):
        faults.apply("app->db9", Latency(10))
    with pytest.raises(InputError, match="expected a link fault spec"):
        faults.apply("app->db1", "latency")  # type: ignore[arg-type]


def test_api_failure_is_infra_error() -> None:
    faults = LinkFaults(_client_that_cannot_connect(), {"app->db1": "db1"})
    with pytest.raises(ToxiproxyError) as exc:
        faults.apply("app->db1", Latency(10))
    assert isinstance(exc.value, InfraError)
    assert exc.value.status is None


# ---------------------------------------------------------------------------------------------- client values


def test_error_mapping() -> None:
    err = error_from_response(
        404, b'{"error":"proxy not found","status":404}\n', method="GET", path="/proxies/x"
    )
    assert isinstance(err, ToxiproxyNotFound)
    assert isinstance(err, InfraError) and isinstance(err, HarnessError)
    assert (err.status, err.message) == (404, "proxy not found")
    assert str(err) == "toxiproxy GET /proxies/x: 404 proxy not found"

    assert isinstance(error_from_response(409, b'{"error":"toxic already exists"}'), ToxiproxyConflict)
    plain = error_from_response(404, b"404 page not found\n")
    assert plain.message == "404 page not found"
    empty = error_from_response(500, b"")
    assert type(empty) is ToxiproxyError
    assert empty.message == "Internal Server Error"


def test_proxy_and_toxic_json() -> None:
    doc = {
        "name": "a",
        "listen": "127.0.0.1:41401",
        "upstream": "10.0.0.2:3306",
        "enabled": False,
        "toxics": [],
    }
    proxy = Proxy.from_json(doc)
    assert proxy == Proxy("a", "127.0.0.1:41401", "10.0.0.2:3306", enabled=False)
    assert (proxy.listen_host, proxy.listen_port) == ("127.0.0.1", 41401)
    assert proxy.to_json() == {k: v for k, v in doc.items() if k != "toxics"}

    toxic = Toxic.from_json(
        {
            "attributes": {"latency": 5, "jitter": 0},
            "name": "t",
            "type": "latency",
            "stream": "upstream",
            "toxicity": 1,
        }
    )
    assert toxic == Toxic("t", "latency", "upstream", 1.0, {"latency": 5, "jitter": 0})
    assert hash(toxic)  # attributes are excluded from the hash
    with pytest.raises(ToxiproxyError, match="unexpected stream"):
        Toxic.from_json({"name": "t", "type": "latency", "stream": "sideways"})


@pytest.mark.parametrize("url", ["127.0.0.1:8474", "https://127.0.0.1:8474", "http://"])
def test_client_rejects_bad_base_url(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        ToxiproxyClient(url)


# ---------------------------------------------------------------------------------------------- binary lookup


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_find_toxiproxy_server_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    monkeypatch.delenv("HARNESS_TOXIPROXY_SERVER", raising=False)
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    assert find_toxiproxy_server() is None

    on_path = _executable(tmp_path / "path" / "toxiproxy-server")
    assert find_toxiproxy_server() == on_path
    default = _executable(tmp_path / "home" / ".local/share/ha-harness/bin/toxiproxy-server")
    assert find_toxiproxy_server() == default
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "hh"))
    assert find_toxiproxy_server() == default  # $HARNESS_HOME has no binary yet
    in_home = _executable(tmp_path / "hh" / "bin" / "toxiproxy-server")
    assert find_toxiproxy_server() == in_home
    explicit = _executable(tmp_path / "elsewhere" / "server")
    monkeypatch.setenv("HARNESS_TOXIPROXY_SERVER", os.fspath(explicit))
    assert find_toxiproxy_server() == explicit


def test_process_with_missing_binary_is_infra_error(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="not found or not executable"), ToxiproxyProcess(tmp_path / "nope"):
        pass


@pytest.mark.skipif(not Path("/bin/false").exists(), reason="needs /bin/false")
def test_process_that_exits_at_once_is_infra_error() -> None:
    with (
        pytest.raises(InfraError, match="exited with 1"),
        ToxiproxyProcess("/bin/false", startup_timeout=2.0),
    ):
        pass
