"""An OpenStack control plane: a database cluster (Galera, MMM or async replication) and a RabbitMQ
cluster in one run, on one network, faulted as one deployment (``harness.systems.openstack.cluster``)."""

from harness.systems.capabilities import Capability as C
from harness.systems.info import SystemInfo
from harness.systems.openstack.settings import OpenstackTopology

SYSTEM = SystemInfo(
    name="openstack",
    topology=OpenstackTopology,
    cluster="harness.systems.openstack.cluster:OpenstackCluster",
    # what a fault of any node needs; which of a part's links exist is the part's (``TopologyBase.parts``)
    capabilities=frozenset({C.DB_AND_BROKER, C.PRIMARY, C.PEER_MESH, C.PROCESSES}),
    services={"mysql": 3306, "amqp": 5672},
    probe_checkers=("lag",),  # the database's probes (the parts' probes run, ``harness.probes``)
    roles=("primary", "writer"),  # the database's writer
)
