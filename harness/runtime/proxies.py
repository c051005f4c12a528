"""The run's Toxiproxy: the real server in a labelled container at ``.2`` of the run's network.

Every client → node link goes through its own proxy, one per node and service port; workloads get the
proxied endpoints. Proxy ``<node>-<service>`` listens on ``10000 + 1000*K + (port % 1000)`` for node nK
(n1's MySQL: 11306, n2's AMQP: 12672). A system may declare further client–server links of its own
(``ClusterSystem.links()``, e.g. a MySQL replica's connection to its source) and create them with
:func:`create_links` once the server runs; the nemesis can then fault them by name like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.errors import InfraError
from harness.runtime.base import ContainerSpec, Mount, Runtime
from harness.runtime.run import Node, Run
from harness.runtime.toxiproxy import Proxy, ToxiproxyClient, find_toxiproxy_server

API_PORT = 8474
TOXIPROXY_HOST = 2  # .2 of the run's subnet


@dataclass(frozen=True)
class Link:
    """A proxied client → node link."""

    name: str  # proxy name, e.g. n1-mysql
    node: str
    service: str
    listen_port: int
    upstream: str  # ip:port of the node's service


def listen_port(node_index: int, service_port: int) -> int:
    return 10000 + 1000 * node_index + service_port % 1000


def links_for(run: Run, services: Mapping[str, int]) -> list[Link]:
    out = []
    for node in run.nodes:
        for service, port in services.items():
            out.append(Link(f"{node.name}-{service}", node.name, service, listen_port(node.number, port),
                            f"{node.ip}:{port}"))  # fmt: skip
    return out


def toxiproxy_ip(run: Run) -> str:
    return run.ip(TOXIPROXY_HOST)


def toxiproxy_container(run: Run) -> str:
    return f"hh-{run.id}-toxiproxy"


def client(run: Run, timeout: float = 5.0) -> ToxiproxyClient:
    return ToxiproxyClient(f"http://{toxiproxy_ip(run)}:{API_PORT}", timeout=timeout)


def start_toxiproxy(run: Run, runtime: Runtime, links: Sequence[Link]) -> list[Link]:
    """Start the run's Toxiproxy container and create the proxies of ``links`` (the system's client
    links: one per node and service)."""
    binary = find_toxiproxy_server()
    if binary is None:
        raise InfraError("toxiproxy-server is not installed; run ./setup.sh (or `harness doctor --fix`)")
    spec = ContainerSpec(
        name=toxiproxy_container(run),
        image=run.image,
        command=["/usr/local/bin/toxiproxy-server", "-host", "0.0.0.0", "-port", str(API_PORT)],
        hostname="toxiproxy",
        network=run.network,
        ip=toxiproxy_ip(run),
        labels=run.labels("toxiproxy"),
        mounts=[Mount(str(binary.resolve()), "/usr/local/bin/toxiproxy-server")],
        extra_hosts={n.name: n.ip for n in run.nodes},
    )
    runtime.run(spec)
    with client(run) as api:
        api.wait_ready(15.0)
    create_links(run, links)
    return list(links)


def create_links(run: Run, links: Sequence[Link]) -> None:
    """Create (or replace) the proxies of ``links`` on the run's Toxiproxy server."""
    with client(run) as api:
        api.populate([Proxy(link.name, f"0.0.0.0:{link.listen_port}", link.upstream) for link in links])


def endpoint(run: Run, node: Node, service: str, services: Mapping[str, int]) -> tuple[str, int]:
    """The proxied (host, port) at which clients reach ``service`` on ``node``."""
    return toxiproxy_ip(run), listen_port(node.number, services[service])
