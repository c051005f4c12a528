"""Async source–replica replication (MariaDB GTID) with a failover manager and HAProxy's writer front."""

from harness.systems.capabilities import Capability as C
from harness.systems.info import SystemInfo
from harness.systems.replication.settings import AsyncTopology

SYSTEM = SystemInfo(
    name="mysql-async",
    data_dir="/var/lib/mysql",
    topology=AsyncTopology,
    cluster="harness.systems.replication.cluster:AsyncCluster",
    capabilities=frozenset({C.SQL, C.PRIMARY, C.REPLICATION_LINKS, C.PROCESSES, C.RESEED}),
    services={"mysql": 3306},
    probes=("harness.systems.replication.probe:AsyncProbe",),
    probe_checkers=("lag",),
    extra_links=("repl",),
)
