"""What an NDB node is given, rendered from the topology and the run's node addresses (pure).

Every port is fixed (management server 1186, each data node's transporter ServerPort 11860, mysqld
3306) so that a partition can name what it cuts; the peer mesh (data node ↔ data node, data node ↔
management and SQL nodes) is partitioned with iptables like Galera's, never through a proxy.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.systems.mysql import USER
from harness.systems.ndb.settings import ROLE_NAMES, NdbTopology

MGM_PORT = 1186  # ndb_mgmd PortNumber: configuration and management
DATA_PORT = 11860  # each data node's ServerPort: the transporters to it
SQL_PORT = 3306  # mysqld: the clients'
DATA_DIR = "/var/lib/mysql-cluster"  # management nodes' and data nodes' DataDir
SQL_DATA_DIR = "/var/lib/mysql"
CONFIG_DIR = "/etc/harness"  # the node's rendered files, mounted read-only


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def connectstring(topology: NdbTopology, ips: Mapping[str, str]) -> str:
    """Where every node finds the management server(s): ``ip:1186[,ip:1186]``."""
    return ",".join(f"{ips[n]}:{MGM_PORT}" for n in topology.nodes_with("mgm"))


def config_ini(topology: NdbTopology, ips: Mapping[str, str], run_id: str = "") -> str:
    """The cluster's ``config.ini``, read by the management server (``ndb_mgmd -f``)."""
    s = topology.settings
    ids, ranks, groups = s.ids(), s.ranks(), s.node_group_of()
    heartbeat = _ms(s.heartbeat_interval)
    lines = [
        f"# Rendered by ha-harness{f' for run {run_id}' if run_id else ''}: topology {topology.name}, "
        f"{s.management_nodes} management, {s.data_nodes} data nodes in {s.node_groups} node group(s) of "
        f"NoOfReplicas={s.no_of_replicas}, {s.sql_nodes} SQL nodes",
        "[ndbd default]",
        f"NoOfReplicas={s.no_of_replicas}",
        f"DataMemory={s.data_memory}",
        f"DataDir={DATA_DIR}",
        f"ServerPort={DATA_PORT}",
        f"HeartbeatIntervalDbDb={heartbeat}",
        f"HeartbeatIntervalDbApi={heartbeat}",
        f"ArbitrationTimeout={_ms(s.arbitration_timeout)}",
        "# the angel process restarts a data node that stopped on an error (a lost arbitration, say)",
        "StopOnError=0",
        "",
        "[ndb_mgmd default]",
        f"DataDir={DATA_DIR}",
        f"PortNumber={MGM_PORT}",
    ]
    for name in topology.nodes_with("mgm"):
        arbitrator = " (the arbitrator)" if ranks[name] == 1 else ""
        lines += ["", "[ndb_mgmd]", f"# {name}: management node{arbitrator}", f"NodeId={ids[name]}",
                  f"HostName={ips[name]}", f"ArbitrationRank={ranks[name]}"]  # fmt: skip
    for name in topology.nodes_with("data"):
        lines += ["", "[ndbd]", f"# {name}: data node, node group {groups[name]}", f"NodeId={ids[name]}",
                  f"HostName={ips[name]}", f"NodeGroup={groups[name]}"]  # fmt: skip
    for name in topology.nodes_with("sql"):
        lines += ["", "[mysqld]", f"# {name}: SQL node", f"NodeId={ids[name]}", f"HostName={ips[name]}",
                  f"ArbitrationRank={ranks[name]}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def my_cnf(topology: NdbTopology, ips: Mapping[str, str], node: str, run_id: str = "") -> str:
    """An SQL node's ``my.cnf``: the NDB engine on, where the management server is, its own node id."""
    node_id = topology.settings.ids()[node]
    connect = connectstring(topology, ips)
    return f"""# Rendered by ha-harness{f" for run {run_id}" if run_id else ""}, node {node} (NDB SQL node, id {node_id})
[mysqld]
ndbcluster
ndb-connectstring={connect}
ndb-nodeid={node_id}
server-id={node_id}
default_storage_engine=ndbcluster
datadir={SQL_DATA_DIR}
bind-address=0.0.0.0
port={SQL_PORT}
skip-name-resolve
skip-log-bin
max_connections=500
ndb-wait-connected=60
ndb-wait-setup=60

[mysql_cluster]
ndb-connectstring={connect}
"""


def account_sql(password: str) -> str:
    """Run at every mysqld start (``--init-file``), on this SQL node alone: the clients' account with the
    run's password (mysql_native_password: the harness's driver needs no TLS or RSA key for it) and its
    grants. Accounts are each SQL node's own; the clients' database is not created here but once, by the
    bring-up plan's last step (NDB's schema distribution gives it to every SQL node, and two SQL nodes
    creating it at once at start-up could fail the init file, which stops mysqld)."""
    return f"""CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED WITH mysql_native_password BY '{password}';
ALTER USER '{USER}'@'%' IDENTIFIED WITH mysql_native_password BY '{password}';
GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION;
"""


def daemon_command(topology: NdbTopology, ips: Mapping[str, str], node: str, *, initial: bool) -> list[str]:
    """The process a node runs, in the foreground (``initial``: its first start, from an empty file system
    or configuration cache)."""
    role = topology.settings.roles()[node]
    node_id = str(topology.settings.ids()[node])
    first = ["--initial"] if initial else []
    if role == "mgm":
        return ["ndb_mgmd", "--nodaemon", *first, f"--config-file={CONFIG_DIR}/config.ini",
                f"--configdir={DATA_DIR}", f"--ndb-nodeid={node_id}"]  # fmt: skip
    if role == "data":
        return [topology.settings.data_node_binary, "--nodaemon", *first,
                f"--ndb-connectstring={connectstring(topology, ips)}", f"--ndb-nodeid={node_id}"]  # fmt: skip
    return [
        "mysqld",
        f"--defaults-file={CONFIG_DIR}/my.cnf",
        "--user=mysql",
        f"--init-file={CONFIG_DIR}/init.sql",
    ]


def first_start_marker(topology: NdbTopology, node: str) -> str | None:
    """A file the node's process leaves behind once it has started: absent, the next start is an initial
    one (``--initial``: the first start, or a node back with an empty data directory)."""
    role = topology.settings.roles()[node]
    node_id = topology.settings.ids()[node]
    if role == "mgm":
        return f"{DATA_DIR}/ndb_{node_id}_config.bin.1"  # the management server's configuration cache
    if role == "data":
        return f"{DATA_DIR}/ndb_{node_id}_fs"  # the data node's file system
    return None


def start_sh(topology: NdbTopology, ips: Mapping[str, str], node: str) -> str:
    """The container's command: the node's daemon, ``--initial`` only while it has never started."""
    role = topology.settings.roles()[node]
    header = f"""#!/bin/sh
# Rendered by ha-harness: NDB {ROLE_NAMES[role]} {node} (node id {topology.settings.ids()[node]}) on the image's binaries.
set -e
"""
    if role == "sql":
        init = f"mysqld --no-defaults --initialize-insecure --user=mysql --datadir={SQL_DATA_DIR}"
        return header + (
            f"install -d -o mysql -g mysql /var/run/mysqld {SQL_DATA_DIR}\n"
            f"[ -d {SQL_DATA_DIR}/mysql ] || {init}   # the image ships no data directory\n"
            f"exec {' '.join(daemon_command(topology, ips, node, initial=False))}\n"
        )
    marker = first_start_marker(topology, node)
    command = daemon_command(topology, ips, node, initial=False)
    return header + (
        f"mkdir -p {DATA_DIR}\n"
        f"initial=\n[ -e {marker} ] || initial=--initial   # first start, or back with an empty disk\n"
        f"exec {command[0]} {command[1]} $initial {' '.join(command[2:])}\n"
    )
