"""MySQL NDB Cluster: management node(s) with the arbitrator, data nodes in node groups of NoOfReplicas,
SQL nodes (mysqld with the NDB engine) as the clients' endpoints; a peer mesh of NDB transporters.

Rendered and unit-tested only: NDB's binaries are in no registry reachable here, and the topologies run
on the official image (``mysql/mysql-cluster:8.0``) where it can be pulled.
"""

from harness.systems.capabilities import Capability as C
from harness.systems.info import SystemInfo
from harness.systems.ndb.settings import IMAGE, NdbTopology

__all__ = ["IMAGE", "SYSTEM"]

SYSTEM = SystemInfo(
    name="ndb",
    data_dir="/var/lib/mysql-cluster",
    topology=NdbTopology,
    cluster="harness.systems.ndb.cluster:NdbCluster",
    capabilities=frozenset({C.SQL, C.PRIMARY, C.PEER_MESH, C.PROCESSES}),
    services={"mysql": 3306},
)
