"""Galera (MariaDB + galera-4, the replication of Percona XtraDB Cluster): a multi-primary peer mesh
(gcomm, port 4567)."""

from harness.systems.capabilities import Capability as C
from harness.systems.galera.settings import GaleraTopology
from harness.systems.info import SystemInfo

SYSTEM = SystemInfo(
    name="galera",
    data_dir="/var/lib/mysql",
    topology=GaleraTopology,
    cluster="harness.systems.galera.cluster:GaleraCluster",
    capabilities=frozenset({C.SQL, C.SYNC_WAIT, C.PRIMARY, C.PEER_MESH, C.PROCESSES, C.RESEED}),
    services={"mysql": 3306},
    probes=("harness.systems.galera.probe:GaleraProbe",),
    probe_checkers=("lag",),
)
