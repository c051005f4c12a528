"""OpenStack control-plane topologies: ``system: openstack``, a database cluster and a RabbitMQ cluster in
one run, as every OpenStack service sees them.

The file says so itself: ``database:`` is a Galera, MMM or async-replication topology and ``broker:`` a
RabbitMQ one, each with its own settings, written as they would be alone (``name`` may be left out). The
run numbers the nodes through: the database's are ``n1``…``nD``, the broker's follow (``nD+1``…), so a
fault names any node of the deployment by its name, and a partition of the broker's nodes only is a
broker partition. ``nodes`` is the sum; the image is the run's (set at the top level).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from harness.model.topology import MAX_NODES, ImageSpec, TopologyBase
from harness.systems.galera.settings import GaleraTopology
from harness.systems.mmm.settings import MmmTopology
from harness.systems.rabbitmq.settings import RabbitTopology
from harness.systems.replication.settings import AsyncTopology

DatabaseTopology = Annotated[GaleraTopology | MmmTopology | AsyncTopology, Field(discriminator="system")]
PART_SUFFIX = {"database": "db", "broker": "mq"}


class OpenstackTopology(TopologyBase):
    system: Literal["openstack"]
    database: DatabaseTopology = Field(
        description="the database cluster: a galera, mmm or mysql-async topology"
    )
    broker: RabbitTopology = Field(description="the message broker: a rabbitmq topology")

    @model_validator(mode="before")
    @classmethod
    def _fill_parts(cls, data: Any) -> Any:
        """Each part's name (``<name>-db``, ``<name>-mq``) when left out, and ``nodes`` (their sum)."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        name = str(out["name"]) if isinstance(out.get("name"), str) else "openstack"
        counts: list[Any] = []
        for part, suffix in PART_SUFFIX.items():
            doc = out.get(part)
            if isinstance(doc, dict):
                if "name" not in doc:
                    out[part] = doc = {**doc, "name": f"{name[:27]}-{suffix}"}
                counts.append(doc.get("nodes"))
        numbers = [c for c in counts if isinstance(c, int)]
        if "nodes" not in out and len(numbers) == 2:
            out["nodes"] = min(sum(numbers), MAX_NODES + 1)  # over the limit: refused by `nodes` itself
        return out

    @model_validator(mode="after")
    def _number_the_nodes(self) -> OpenstackTopology:
        if self.nodes != self.database.nodes + self.broker.nodes:
            raise ValueError(f"nodes is the database's plus the broker's ({self.database.nodes} + "
                             f"{self.broker.nodes}); leave it out")  # fmt: skip
        for part in self.parts():
            if part.image != ImageSpec():
                raise ValueError(f"{part.name}: set image at the top level (a run has one node image)")
            if part.expect:
                raise ValueError(f"{part.name}: set expect at the top level")
        if self.storage != "plain" or self.clock != "real":
            raise ValueError(
                "storage and clock are set per part (database: or broker:), not at the top level"
            )
        self.database._first_node = 1
        self.broker._first_node = self.database.nodes + 1
        return self

    def parts(self) -> list[TopologyBase]:
        return [self.database, self.broker]
