"""Pure unit tests: link fault specs, toxic building, error mapping, binary lookup. No server, no network."""

from __future__ import annotations

import dataclasses
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from harness.errors import HarnessError, InfraError, InputError
from harness.faults.link import LinkFaults, link_fault_from_dict, toxics_for
from harness.model.faults import (
    LINK_FAULTS,
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
    error_from_response,
    find_toxiproxy_server,
)
from tests.support.toxiproxy_process import ToxiproxyProcess

T = "n1"  # every spec below targets the link of n1

# ---------------------------------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"kind": "latency", "latency_ms": -1},
            "link.latency_ms: input should be greater than or equal to 0",
        ),
        ({"kind": "latency", "latency_ms": 10, "jitter_ms": -2}, "link.jitter_ms: input should be greater"),
        ({"kind": "latency", "latency_ms": 10.5}, "link.latency_ms: input should be a valid integer"),
        (
            {"kind": "latency", "latency_ms": 10, "toxicity": 1.5},
            "link.toxicity: input should be less than or",
        ),
        ({"kind": "latency", "latency_ms": 10, "toxicity": -0.1}, "link.toxicity: input should be greater"),
        ({"kind": "latency", "latency_ms": 10, "toxicity": float("nan")}, "link.toxicity: "),
        ({"kind": "latency", "latency_ms": 10, "direction": "sideways"}, "link.direction: input should be"),
        ({"kind": "bandwidth", "rate_kbps": 0}, "link.rate_kbps: input should be greater than or equal to 1"),
        ({"kind": "timeout", "timeout_ms": -1}, "link.timeout_ms: input should be greater"),
        ({"kind": "reset_peer", "timeout_ms": -1}, "link.timeout_ms: input should be greater"),
        ({"kind": "slow_close", "delay_ms": -1}, "link.delay_ms: input should be greater"),
        ({"kind": "slicer", "average_size": 0}, "link.average_size: input should be greater"),
        (
            {"kind": "slicer", "average_size": 10, "size_variation": 10},
            "link: size_variation must be < average_size (10), got 10",
        ),
        ({"kind": "slicer", "average_size": 10, "delay_us": -1}, "link.delay_us: input should be greater"),
        ({"kind": "limit_data", "bytes": -1}, "link.bytes: input should be greater than or equal to 0"),
        ({"kind": "lag"}, "link: kind: expected one of: latency, bandwidth, timeout, stall"),
        ({}, "link: kind: expected one of"),
        ({"kind": "latency"}, "link.latency_ms: field required"),
        ({"kind": "latency", "latency_ms": 5, "delay": 3}, "link.delay: unknown field"),
        ({"kind": "down", "direction": "both"}, "link.direction: unknown field"),
        ({"kind": "stall", "timeout_ms": 5}, "link.timeout_ms: unknown field"),
    ],
)
def test_invalid_specs_are_one_line_input_errors(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as exc:
        link_fault_from_dict({"target": T, **doc})
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InputError) as exc:
        link_fault_from_dict({"target": T, "kind": "latency", "latency_ms": -1, "jitter_ms": -1, "x": 1})
    assert len(str(exc.value).splitlines()) == 3


def test_specs_are_frozen_values() -> None:
    spec = Latency(target=T, latency_ms=200, jitter_ms=20, direction="both", toxicity=0.5)
    same = Latency(target=T, latency_ms=200, jitter_ms=20, direction="both", toxicity=0.5)
    assert spec == same
    assert spec != Latency(target=T, latency_ms=201, jitter_ms=20, direction="both", toxicity=0.5)
    assert {spec: 1}[same] == 1  # equal values are the same key
    with pytest.raises(ValidationError):
        spec.latency_ms = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("spec", "toxic_type", "attributes"),
    [
        (Latency(target=T, latency_ms=200, jitter_ms=20), "latency", {"latency": 200, "jitter": 20}),
        (Bandwidth(target=T, rate_kbps=64), "bandwidth", {"rate": 64}),
        (Timeout(target=T), "timeout", {"timeout": 0}),
        (Timeout(target=T, timeout_ms=1500), "timeout", {"timeout": 1500}),
        (ResetPeer(target=T), "reset_peer", {"timeout": 0}),
        (SlowClose(target=T, delay_ms=300), "slow_close", {"delay": 300}),
        (
            Slicer(target=T, average_size=64, size_variation=8, delay_us=10),
            "slicer",
            {"average_size": 64, "size_variation": 8, "delay": 10},
        ),
        (LimitData(target=T, bytes=1024), "limit_data", {"bytes": 1024}),
    ],
)
def test_each_kind_builds_its_toxic(spec: LinkFaultBase, toxic_type: str, attributes: dict[str, Any]) -> None:
    (toxic,) = toxics_for(spec, 7)
    assert toxic == Toxic(f"hh-{spec.kind}-7-downstream", toxic_type, "downstream", 1.0, attributes)


def test_direction_both_builds_one_toxic_per_stream() -> None:
    up, down = toxics_for(Latency(target=T, latency_ms=100, direction="both", toxicity=0.25), 3)
    assert (up.name, up.stream) == ("hh-latency-3-upstream", "upstream")
    assert (down.name, down.stream) == ("hh-latency-3-downstream", "downstream")
    assert up.toxicity == down.toxicity == 0.25
    assert up.attributes == down.attributes == {"latency": 100, "jitter": 0}
    assert up.attributes is not down.attributes


def test_upstream_down_and_stall() -> None:
    (toxic,) = toxics_for(Bandwidth(target=T, rate_kbps=10, direction="upstream"), 1)
    assert toxic.stream == "upstream"
    assert toxics_for(Down(target=T), 1) == ()
    stalled = toxics_for(Stall(target=T), 2)
    assert [(t.type, t.stream, t.attributes) for t in stalled] == [
        ("timeout", "upstream", {"timeout": 0}),
        ("timeout", "downstream", {"timeout": 0}),
    ]


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
    spec = Latency(target=T, latency_ms=latency, jitter_ms=jitter, direction=direction, toxicity=toxicity)
    toxics = toxics_for(spec, n)
    assert len(toxics) == (2 if direction == "both" else 1)
    assert len({t.name for t in toxics}) == len(toxics)
    assert all(t.name.startswith("hh-latency-") and t.name.endswith(t.stream) for t in toxics)


# ---------------------------------------------------------------------------------------------- from dict


def test_from_dict_builds_every_kind() -> None:
    assert link_fault_from_dict(
        {"target": T, "kind": "latency", "latency_ms": 5, "direction": "both"}
    ) == Latency(target=T, latency_ms=5, direction="both")
    assert link_fault_from_dict({"target": T, "kind": "down"}) == Down(target=T)
    assert link_fault_from_dict({"target": T, "kind": "stall", "direction": "upstream"}) == Stall(
        target=T, direction="upstream"
    )
    assert set(LINK_FAULTS) == {
        "latency",
        "bandwidth",
        "timeout",
        "stall",
        "reset_peer",
        "slow_close",
        "slicer",
        "limit_data",
        "down",
    }


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
        faults.apply(Latency(target="app->db9", latency_ms=10))
    with pytest.raises(InputError, match="expected a link fault spec"):
        faults.apply("latency")  # type: ignore[arg-type]


def test_api_failure_is_infra_error() -> None:
    faults = LinkFaults(_client_that_cannot_connect(), {"app->db1": "db1"})
    with pytest.raises(ToxiproxyError) as exc:
        faults.apply(Latency(target="app->db1", latency_ms=10))
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
    with pytest.raises(dataclasses.FrozenInstanceError):
        toxic.toxicity = 0.5  # type: ignore[misc]
    same = Toxic("t", "latency", "upstream", 1.0, {"latency": 5, "jitter": 0})
    assert hash(same) == hash(toxic) and {toxic, same} == {toxic}
    # attributes (a dict, unhashable) are left out of the hash: they change equality, not the hash
    slower = Toxic("t", "latency", "upstream", 1.0, {"latency": 500, "jitter": 0})
    assert slower != toxic and hash(slower) == hash(toxic)
    assert len({toxic, slower}) == 2
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
