"""What a system can do, named once: workloads and fault kinds state the capabilities they need.

After Jepsen's ``db.clj``: a database implements only the optional protocols it supports (``Kill``,
``Pause``, ``Primary``…) and a nemesis asks ``satisfies?`` rather than which database it is. Here a system
package declares its capabilities in its ``SystemInfo``; validation refuses a scenario that needs one the
topology's system lacks, by name, before anything starts.
"""

from __future__ import annotations

from enum import StrEnum


class Capability(StrEnum):
    SQL = "sql"  # a MySQL-protocol endpoint per node (or a writer front) with the run's credentials
    SYNC_WAIT = "sync-wait"  # causal reads: a read first waits for every earlier commit (wsrep_sync_wait)
    AMQP = "amqp"  # an AMQP 0-9-1 broker with queues
    PRIMARY = "primary"  # a node the roles primary / leader / writer name
    PEER_MESH = "peer-mesh"  # nodes talk to each other directly: iptables partitions can cut them
    REPLICATION_LINKS = "replication-links"  # replica → source connections through their own proxies
    PROCESSES = "processes"  # nodes are processes that can be killed, paused, stopped and started
    RESEED = "reseed"  # a node back with an empty data directory is seeded again (state transfer, a dump)
    DB_AND_BROKER = "db-and-broker"  # a database cluster and a broker in one run (an OpenStack control plane)


DESCRIPTIONS: dict[Capability, str] = {
    Capability.SQL: "an SQL endpoint",
    Capability.SYNC_WAIT: "causal reads (wsrep_sync_wait)",
    Capability.AMQP: "an AMQP broker",
    Capability.PRIMARY: "a primary/writer role",
    Capability.PEER_MESH: "a peer mesh to partition",
    Capability.REPLICATION_LINKS: "proxied replication links",
    Capability.PROCESSES: "node processes",
    Capability.RESEED: "a way to re-seed a node that lost its data",
    Capability.DB_AND_BROKER: "a database and a message broker in one run (system: openstack)",
}
