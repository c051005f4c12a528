"""HAProxy's writer and reader frontends in front of a MySQL system's nodes: one HAProxy (``.3``), or the
floating-address pair (``balancer_pair``: ``lb1``, ``lb2``, the virtual address). What clients reach,
what faults may target beside the nodes (the pair's balancers), and the pair's part of health.

Clients reach the cluster as applications do: ``endpoint(node)`` is the writer frontend whatever the node
(``reader``: the reader frontend); per-node reads (final reads, checksums) run inside ``node_endpoints()``,
which gives each node's own client proxy. Helper containers (HAProxy, the balancers, a system's daemon)
sit at ``.3``-``.9`` of the run's subnet and carry the run's labels.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import InfraError
from harness.runtime.base import ContainerSpec, Mount
from harness.runtime.run import Node
from harness.runtime.wait import wait_until
from harness.systems import balancer_pair as bp
from harness.systems.base import ClusterSystem
from harness.systems.mysql import DATABASE

HAPROXY_HOST = 3  # .3 of the run's subnet
WRITER_PORT = 3306
READER_PORT = 3307
HAPROXY_API_PORT = 9999


def haproxy_config(header: str, writer: str, reader: str, *, api: bool, extra: str = "") -> str:
    """HAProxy's config for a MySQL system: ``header`` (comment lines), the runtime API on HAPROXY_API_PORT
    if ``api`` (a daemon sets the servers' states), TCP defaults, the writer frontend on WRITER_PORT and the
    reader one on READER_PORT with their backends' bodies (``writer``, ``reader``), then ``extra``."""
    stats = f"    stats socket ipv4@0.0.0.0:{HAPROXY_API_PORT} level admin\n" if api else ""
    return f"""{header}
global
    maxconn 4096
{stats}
defaults
    mode tcp
    timeout connect 2s
    timeout client 1h
    timeout server 1h

frontend writer
    bind 0.0.0.0:{WRITER_PORT}
    default_backend writer

backend writer
{writer}

frontend reader
    bind 0.0.0.0:{READER_PORT}
    default_backend reader

backend reader
{reader}
{extra}"""


class HAProxyFrontends(ClusterSystem):
    """A MySQL system whose clients enter through HAProxy's writer/reader frontends (one or a pair)."""

    helpers: ClassVar[tuple[str, ...]] = ("haproxy",)  # helper containers whose logs go with the nodes'

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._local = threading.local()

    @property
    def haproxy_ip(self) -> str:
        return self.run.ip(HAPROXY_HOST)

    # -- the frontends: one HAProxy, or a pair holding a virtual address ---------------------------
    # A pair whose HAProxies route by a daemon's commands must agree on the writer (MMM, async); Galera's
    # route by their own health checks, and either node they pick takes writes.
    pair_routes_alike: ClassVar[bool] = True

    @property
    def balancer(self) -> bp.BalancerSettings | None:
        """The frontends' settings; None when clients reach the nodes directly (Galera without one)."""
        return getattr(self.topology.settings, "balancer", None)

    @property
    def frontends(self) -> bool:
        return self.balancer is not None

    @property
    def pair(self) -> bool:
        return self.balancer is not None and self.balancer.pair

    @property
    def front_ip(self) -> str:
        """Where clients (and async replicas) reach the frontends: the pair's virtual address, or HAProxy's."""
        return self.run.ip(bp.VIP_HOST) if self.pair else self.haproxy_ip

    @property
    def balancer_nodes(self) -> list[Node]:
        """The pair's two balancers (``lb1``, ``lb2``) as fault targets; none with a single HAProxy."""
        if not self.pair:
            return []
        return [
            Node(name, self.run.ip(host), f"hh-{self.run.id}-{name}")
            for name, host in bp.BALANCER_HOSTS.items()
        ]

    def helper_targets(self) -> dict[str, Node]:
        return {b.name: b for b in self.balancer_nodes}

    def role_target(self, role: str) -> Node | None:
        """``balancer``: the balancer holding the virtual address now (lb1 if neither answers)."""
        if role != bp.ROLE or not self.pair:
            return None
        holder = self.address_holders()
        return holder[0] if holder else self.balancer_nodes[0]

    def address_holders(self) -> list[Node]:
        """The balancers whose eth0 carries the virtual address (two during a split, none between)."""
        vip = self.run.ip(bp.VIP_HOST)
        out = []
        for b in self.balancer_nodes:
            if self.container_state(b) != "running":
                continue
            done = self.runtime.exec(b.container, bp.ADDRESSES, timeout=5)
            if done.exit_code == 0 and bp.holds(done.output, vip):
                out.append(b)
        return out

    def helper_names(self) -> tuple[str, ...]:
        """The helper containers whose logs go with the nodes': a pair's balancers in HAProxy's place."""
        if not self.frontends:
            return tuple(h for h in self.helpers if h != "haproxy")
        if not self.pair:
            return self.helpers
        return tuple(n for h in self.helpers for n in (bp.BALANCER_HOSTS if h == "haproxy" else (h,)))

    def haproxy_api_config(self) -> dict[str, Any] | list[dict[str, Any]]:
        """The daemon's HAProxy API(s): each balancer's, or the one HAProxy's."""
        if self.pair:
            return [{"host": b.ip, "port": HAPROXY_API_PORT} for b in self.balancer_nodes]
        return {"host": self.haproxy_ip, "port": HAPROXY_API_PORT}

    def start_frontends(self) -> None:
        """HAProxy, or both balancers of the pair (the address is held once keepalived has elected one)."""
        if not self.pair:
            self.runtime.run(self.haproxy_spec())
            return
        for b in self.balancer_nodes:
            mount = Mount(str(self.helper_dir(b.name)), "/etc/harness")
            host = bp.BALANCER_HOSTS[b.name]
            self.runtime.run(
                self.helper_spec(b.name, host, ["sh", "/etc/harness/start.sh"], mount, cap_add=["NET_ADMIN"])
            )

    def render_frontends(self, directory: Path, haproxy_cfg: str) -> None:
        """HAProxy's directory, or each balancer's: HAProxy's config, keepalived's, and the start script."""
        if not self.pair:
            haproxy = directory / "haproxy"
            haproxy.mkdir(parents=True, exist_ok=True)
            (haproxy / "haproxy.cfg").write_text(haproxy_cfg)
            return
        pair = bp.balancers({b.name: b.ip for b in self.balancer_nodes})
        vip = self.run.ip(bp.VIP_HOST)
        for b in pair:
            target = directory / b.name
            target.mkdir(parents=True, exist_ok=True)
            (target / "haproxy.cfg").write_text(haproxy_cfg)
            (target / "keepalived.conf").write_text(
                bp.keepalived_conf(
                    b, vip, self.balancer or bp.BalancerSettings(), self.run.id, router_id=self.run.slot
                )
            )
            (target / "start.sh").write_text(bp.START_SH)

    def wait_address_held(self, *, timeout: float) -> Node:
        """Until exactly one balancer holds the virtual address; that one."""

        def one() -> Node:
            holders = self.address_holders()
            if len(holders) != 1:
                raise RuntimeError(
                    f"virtual address held by {','.join(h.name for h in holders) or 'no balancer'}"
                )
            return holders[0]

        return wait_until(one, timeout=timeout, interval=0.1, max_interval=0.5,
                          what="one balancer holding the virtual address", details=self.logs_of_all)  # fmt: skip

    def balancers_route_alike(self) -> None:
        """Each balancer's writer frontend (its own address) reaches the same node: raises otherwise."""
        served = {}
        for b in self.balancer_nodes:
            served[b.name] = self.served_by((b.ip, WRITER_PORT))
        if len(set(served.values())) != 1:
            raise RuntimeError(f"balancers route the writer differently: {served}")

    def wait_healthy(self, timeout: float) -> None:
        """The nodes as the system has them, then (a pair) both balancers up, one holding the address, and
        both routing the writer to the same node."""
        started = time.monotonic()
        super().wait_healthy(timeout)
        if not self.pair:
            return

        def pair_ok() -> bool:
            down = [b.name for b in self.balancer_nodes if self.container_state(b) != "running"]
            if down:
                raise RuntimeError(f"balancer {','.join(down)} not running")
            self.wait_address_held(timeout=1.0)
            if self.pair_routes_alike:
                self.balancers_route_alike()
            return True

        wait_until(pair_ok, timeout=max(1.0, timeout - (time.monotonic() - started)), interval=0.2,
                   max_interval=1.0, what="the balancer pair healthy again", details=self.logs_of_all)  # fmt: skip

    def endpoint(self, node: Node, service: str | None = None) -> tuple[str, int]:
        """The writer frontend (what applications use), the ``reader`` frontend, or with ``mysql`` (and
        inside ``node_endpoints()``) the node's own client proxy."""
        if not self.frontends:
            return super().endpoint(node, service)
        if service == "mysql" or getattr(self._local, "direct", False):
            return super().endpoint(node, "mysql")
        if service == "reader":
            return self.front_ip, READER_PORT
        if service not in (None, "writer"):
            raise InfraError(f"{self.name} has no service {service!r} (writer, reader, mysql)")
        return self.front_ip, WRITER_PORT

    @contextlib.contextmanager
    def node_endpoints(self) -> Iterator[None]:
        previous = getattr(self._local, "direct", False)
        self._local.direct = True
        try:
            yield
        finally:
            self._local.direct = previous

    def helper_dir(self, name: str) -> Path:
        return self.node_dir(self.run.nodes[0]).parent / name

    def helper_spec(self, name: str, host: int, command: list[str], mount: Mount, **kw: Any) -> ContainerSpec:
        return ContainerSpec(
            name=f"hh-{self.run.id}-{name}",
            image=self.run.image,
            command=command,
            hostname=name,
            network=self.run.network,
            ip=self.run.ip(host),
            labels=self.run.labels(name),
            mounts=[mount],
            extra_hosts={n.name: n.ip for n in self.run.nodes},
            **kw,
        )

    def haproxy_spec(self) -> ContainerSpec:
        mount = Mount(str(self.helper_dir("haproxy")), "/etc/harness")
        return self.helper_spec(
            "haproxy", HAPROXY_HOST, ["haproxy", "-db", "-f", "/etc/harness/haproxy.cfg"], mount
        )

    def connect_endpoint(self, endpoint: tuple[str, int], *, timeout: float = 2.0) -> Any:
        """A client connection as the workloads' user to an endpoint (writer/reader frontend, a proxy)."""
        import pymysql

        host, port = endpoint
        user, password = self.client_credentials()
        return pymysql.connect(host=host, port=port, user=user, password=password, database=DATABASE,
                               connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
                               autocommit=True)  # fmt: skip

    def writer_serves(self) -> str:
        """The hostname of the node the writer frontend reaches now."""
        return self.served_by(self.endpoint(self.run.nodes[0]))

    def served_by(self, endpoint: tuple[str, int]) -> str:
        """The hostname of the node a connection to ``endpoint`` reaches."""
        conn = self.connect_endpoint(endpoint, timeout=1.0)
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute("SELECT @@hostname")
            (served_by,) = cur.fetchone()
        return str(served_by)

    def logs_of_all(self, tail: int = 15) -> str:
        parts = [super().logs_of_all(tail)]
        for helper in self.helper_names():
            text = self.runtime.logs(f"hh-{self.run.id}-{helper}", tail=tail).rstrip()
            indented = "\n".join(f"    {line}" for line in text.splitlines()[-tail:])
            parts.append(f"  {helper} last log lines:\n{indented}")
        return "\n".join(parts)
