"""Pure logic of RabbitMQ partitions: merging every node's report, and which side an operator restarts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Membership:
    """What one node's ``cluster_status`` says, with short node names (``n1``)."""

    node: str
    running: frozenset[str]
    # reporting node → the peers it has seen partitioned away; only the reporter's own side reports
    partitions: Mapping[str, frozenset[str]]


def merge_partitions(views: Mapping[str, Membership | None]) -> dict[str, frozenset[str]]:
    """Every node's partition report, whichever side's ``cluster_status`` carried it."""
    merged: dict[str, frozenset[str]] = {}
    for view in views.values():
        for reporter, peers in (view.partitions if view else {}).items():
            merged[reporter] = merged.get(reporter, frozenset()) | peers
    return merged


def losing_side(views: Mapping[str, Membership | None], order: list[str]) -> list[str]:
    """The nodes to restart after a partition under ``ignore``, as RabbitMQ's docs advise operators.

    The side that stays is the largest set of running nodes any node reports (on a tie: the one with the
    node first in topology order, i.e. n1's side). Every other node that answers is on a losing side and
    gets its rabbit app restarted, which makes it resync from the winners. A node that does not answer
    (still starting, say) is left alone: it joins whoever runs once it is up.
    """
    sides = {v.running for v in views.values() if v is not None and v.node in v.running}
    if not sides:
        return []
    if sides == {frozenset(order)}:
        # Every node runs with every node, yet some still report a partition: a stale record (seen after
        # an autoheal whose loser came back while the winner still waited for it to stop). Restarting
        # the reporter's app clears its own record.
        reporters = {node for node, peers in merge_partitions(views).items() if peers}
        return [n for n in order if n in reporters and views.get(n) is not None]
    winner = min(sides, key=lambda side: (-len(side), min(order.index(n) for n in side)))
    return [n for n in order if n not in winner and views.get(n) is not None]
