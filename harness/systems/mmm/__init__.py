"""MySQL master-master managed MMM-style: two masters, HAProxy writer/reader fronts, a monitor."""

from harness.systems.capabilities import Capability as C
from harness.systems.info import SystemInfo
from harness.systems.mmm.settings import MmmTopology

SYSTEM = SystemInfo(
    name="mmm",
    data_dir="/var/lib/mysql",
    topology=MmmTopology,
    cluster="harness.systems.mmm.cluster:MmmCluster",
    capabilities=frozenset({C.SQL, C.PRIMARY, C.REPLICATION_LINKS, C.PROCESSES, C.RESEED}),
    services={"mysql": 3306},
    probes=("harness.systems.mmm.probe:MmmProbe",),
    probe_checkers=("lag",),
    extra_links=("repl",),
)
