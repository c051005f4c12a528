"""A floating-address load-balancer pair: two HAProxy containers, ``lb1`` and ``lb2``, each with keepalived,
holding one virtual address between them by VRRP — the article's Pacemaker-managed HAProxy pair, built with
Debian's keepalived. Clients reach the writer and reader frontends only through the virtual address.

Addresses in the run's /24: ``lb1`` ``.3`` (where the single HAProxy is otherwise), ``lb2`` ``.5``, the
virtual address ``.9``. VRRP is unicast between the two (``unicast_peer``: no multicast needed on the run's
bridge), version 3 so the advertisement interval may be under a second. Both start as BACKUP; ``lb1`` has
the higher priority and takes the address first. With ``preempt: false`` (the default, like Pacemaker's
resource stickiness) a balancer that comes back does not take the address back from the one holding it.

The monitor or manager sets every server state on both HAProxies (``daemon_io.HAProxyGroup``); one that
was away (killed, paused, cut off) is brought in step again before it is used, so whichever balancer holds
the address routes as the other would.

A container runs HAProxy (in the background) and keepalived (in the foreground, PID 1's successor): a kill
of the container takes both down, as a lost machine would.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, field_validator

from harness.model.durations import Duration
from harness.model.topology import StrictModel

BALANCER_HOSTS = {"lb1": 3, "lb2": 5}  # host part of each balancer's address
VIP_HOST = 9
PRIORITIES = {"lb1": 150, "lb2": 100}
ROLE = "balancer"  # fault target: the balancer holding the virtual address now


class BalancerSettings(StrictModel):
    """The writer/reader frontends: one HAProxy, or a pair sharing a virtual address (``pair: true``)."""

    pair: bool = Field(default=False, description="two HAProxies (lb1, lb2) holding one address by VRRP")
    advert_interval: Duration = Field(
        default=1.0, description="VRRP advertisement interval; the backup takes over after about 3 of them"
    )
    preempt: bool = Field(
        default=False, description="a returning balancer of higher priority takes the address back"
    )

    @field_validator("advert_interval")
    @classmethod
    def _vrrp3_interval(cls, value: float) -> float:
        if not 0.01 <= value <= 40.95:
            raise ValueError(f"VRRP v3 advertises every 0.01 to 40.95 s, got {value:g}s")
        return value


@dataclass(frozen=True)
class Balancer:
    """One balancer of the pair, as rendered: its name, address, peer's address, priority."""

    name: str
    ip: str
    peer_ip: str
    priority: int


def balancers(ip_of: dict[str, str]) -> list[Balancer]:
    """Both balancers, from each one's address (``{"lb1": ..., "lb2": ...}``)."""
    names = list(BALANCER_HOSTS)
    return [Balancer(n, ip_of[n], ip_of[names[1 - i]], PRIORITIES[n]) for i, n in enumerate(names)]


def keepalived_conf(b: Balancer, vip: str, settings: BalancerSettings, run_id: str, router_id: int) -> str:
    """keepalived's configuration for one balancer: one VRRP instance holding ``vip`` on eth0."""
    preempt = "" if settings.preempt else "    nopreempt\n"
    return f"""# Rendered by ha-harness for run {run_id}: balancer {b.name} of the pair
global_defs {{
    router_id {b.name}
    vrrp_version 3
    script_user root
}}

vrrp_instance front {{
    state BACKUP
    interface eth0
    virtual_router_id {router_id}
    priority {b.priority}
    advert_int {settings.advert_interval:g}
{preempt}    unicast_src_ip {b.ip}
    unicast_peer {{
        {b.peer_ip}
    }}
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
}}
"""


START_SH = """#!/bin/sh
# Rendered by ha-harness: one balancer of the pair — HAProxy in the background, keepalived in front.
set -e
rm -f /run/keepalived.pid /run/keepalived-vrrp.pid  # a container started again keeps its /run
haproxy -db -f /etc/harness/haproxy.cfg &
exec keepalived --dont-fork --log-console --log-detail --use-file /etc/harness/keepalived.conf \\
  --pid /run/keepalived.pid --vrrp_pid /run/keepalived-vrrp.pid
"""

# what a balancer runs to say whether it holds the address: prints the addresses of eth0
ADDRESSES = ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]


def holds(addresses_output: str, vip: str) -> bool:
    """Whether ``ip -4 -o addr show dev eth0``'s output lists ``vip``."""
    return any(f" {vip}/" in line for line in addresses_output.splitlines())
