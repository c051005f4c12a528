"""Partitions of the peer mesh: a shape (``faults.partition``) as iptables rules in each node's namespace."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.faults import partition as shapes
from harness.faults.base import FaultKind, parallel
from harness.model.faults import PartitionStep, StepBase
from harness.model.history import Event
from harness.runtime import netfilter
from harness.runtime.run import Node
from harness.systems.capabilities import Capability


class PartitionFaults(FaultKind):
    steps: ClassVar[tuple[type[StepBase], ...]] = (PartitionStep,)
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.PEER_MESH})

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.current: Event | None = None
        self.isolated: list[Node] = []  # helpers cut off (a balancer), healed with the nodes

    def plan(self, step: PartitionStep) -> shapes.Partition:
        """The partition ``step`` means on this cluster (a role resolved); InputError before any change."""
        shape, params = step.shape_and_params()
        if shape == "isolate":
            (node,) = self.ctx.resolve(params["node"])
            params = {"node": node.name}
        topology = self.ctx.run.topology
        clusters = [part.node_names for part in topology.parts()]
        return shapes.plan(shape, topology.node_names, rng=self.ctx.rng, clusters=clusters, **params)

    def requirements(self, step: StepBase) -> frozenset[Capability]:
        """A helper (a balancer) is cut off by its own rules: no peer mesh needed for that."""
        if isinstance(step, PartitionStep) and step.isolated in self.ctx.run.topology.helper_target_names:
            return frozenset()
        return self.requires

    def helper_isolated(self, step: PartitionStep) -> Node | None:
        """The helper (a balancer) an ``isolate`` step names, if it names one rather than a node."""
        if step.isolated not in self.ctx.run.topology.helper_target_names:
            return None
        (node,) = self.ctx.resolve(step.isolated)
        return node if node.name in self.ctx.system.helper_targets() else None

    def isolate_helper(self, helper: Node) -> list[Event]:
        """A helper cut off from the whole run network, both ways (its peer, the nodes, Toxiproxy and the
        clients on the host): nothing reaches it and nothing it sends gets out."""
        run = self.ctx.run
        how = netfilter.mode()
        netfilter.apply(self.ctx.runtime, helper.container, [], how, isolate=run.subnet)
        self.isolated.append(helper)
        detail = {"shape": "isolate", "components": [[helper.name], ["everything else"]], "how": how,
                  "subnet": run.subnet, "helper": True}  # fmt: skip
        self.current = self.ctx.events.open(
            "partition", f"iptables({how})", f"[{helper.name}] | [rest]", detail
        )
        return [self.current]

    def apply(self, step: StepBase) -> list[Event]:
        assert isinstance(step, PartitionStep)
        helper = self.helper_isolated(step)
        if helper is not None:
            return self.isolate_helper(helper)
        plan = self.plan(step)
        run = self.ctx.run
        ip = {n.name: n.ip for n in run.nodes}
        how = netfilter.mode()

        def one(node: Node) -> None:
            netfilter.apply(self.ctx.runtime, node.container, [ip[p] for p in plan.drops_at(node.name)], how)

        parallel(one, run.nodes)
        detail = {"shape": plan.shape, "components": [sorted(c) for c in plan.components],
                  "cuts": sorted(list(c) for c in plan.cuts), "how": how,
                  "backend": netfilter.backend() if how == "nsenter" else "image"}  # fmt: skip
        self.current = self.ctx.events.open("partition", f"iptables({how})", plan.describe(), detail)
        return [self.current]

    def heal(self) -> list[Event]:
        how = netfilter.mode()
        helpers, self.isolated = self.isolated, []
        parallel(
            lambda n: netfilter.apply(self.ctx.runtime, n.container, [], how), [*self.ctx.run.nodes, *helpers]
        )
        ended, self.current = self.current, None
        return [self.ctx.events.close(ended)] if ended else []
