"""RabbitMQ: a cluster of brokers over Erlang distribution (ports 4369, 25672), with quorum or classic
mirrored queues."""

from harness.systems.capabilities import Capability as C
from harness.systems.info import SystemInfo
from harness.systems.rabbitmq.settings import RabbitTopology

SYSTEM = SystemInfo(
    name="rabbitmq",
    data_dir="/var/lib/rabbitmq",
    topology=RabbitTopology,
    cluster="harness.systems.rabbitmq.cluster:RabbitCluster",
    capabilities=frozenset({C.AMQP, C.PRIMARY, C.PEER_MESH, C.PROCESSES, C.RESEED}),
    services={"amqp": 5672},
    probes=("harness.systems.rabbitmq.probe:RabbitProbe",),
)
