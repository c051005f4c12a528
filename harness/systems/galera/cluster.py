"""Galera: MariaDB 10.11 + galera-4 (offline image), or Percona XtraDB Cluster (upstream image).

Bootstrap: n1 founds the cluster (``--wsrep-new-cluster``, chosen by a flag file in its mounted config
directory, removed once the cluster stands, so a restarted n1 rejoins instead of founding a second
cluster); the other nodes then join in turn, each receiving a state transfer (rsync SST) from a donor.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import InfraError
from harness.model.topology import TopologyBase
from harness.paths import run_dir
from harness.runtime import labels as L
from harness.runtime.base import ContainerSpec, Mount, Runtime
from harness.runtime.run import Node
from harness.runtime.wait import wait_until
from harness.systems.base import NodeStatus
from harness.systems.galera import SYSTEM
from harness.systems.galera.settings import GaleraTopology
from harness.systems.mysql import USER, account_sql, storage_cnf
from harness.systems.mysql_frontends import HAProxyFrontends, haproxy_config

log = logging.getLogger(__name__)


START_SH = r"""#!/bin/sh
# Rendered by ha-harness: start one Galera node (MariaDB offline image or Percona XtraDB Cluster image).
set -e
install -d -o mysql -g mysql /run/mysqld
for p in /usr/lib/galera/libgalera_smm.so /usr/lib/galera4/libgalera_smm.so /usr/lib64/galera4/libgalera_smm.so; do
  [ -e "$p" ] && provider="$p" && break
done
server=$(command -v mariadbd || command -v mysqld)
if [ ! -d /var/lib/mysql/mysql ]; then   # upstream images ship an empty data directory
  if command -v mariadb-install-db >/dev/null; then mariadb-install-db --user=mysql >/dev/null
  else "$server" --initialize-insecure --user=mysql; fi
fi
init="--init-file=/etc/harness/init.sql"   # every start: the run's own client account
if [ -e /etc/harness/recover ]; then     # after every node crashed: report the last committed position
  exec "$server" --defaults-extra-file=/etc/harness/galera.cnf --user=mysql --wsrep-provider="$provider" --wsrep-recover --log-error=/dev/stderr
fi
extra=""
if [ -e /etc/harness/bootstrap ]; then
  extra="--wsrep-new-cluster"
  [ -f /var/lib/mysql/grastate.dat ] && sed -i 's/^safe_to_bootstrap: 0/safe_to_bootstrap: 1/' /var/lib/mysql/grastate.dat
fi
if [ -f /etc/harness/clustercheck.json ] && command -v python3 >/dev/null; then   # HAProxy's health check
  python3 /etc/harness/clustercheck.py /etc/harness/clustercheck.json &
fi
exec "$server" --defaults-extra-file=/etc/harness/galera.cnf --user=mysql --wsrep-provider="$provider" ${init:-} $extra
"""

# The prepared node image (``GaleraCluster.node_image``): the node image's data directory after one clean
# run of a founder of history PREPARED_UUID, so InnoDB and grastate.dat both hold that history's position
# (safe to bootstrap). Every node of a run starts from it: the founder bootstraps that history, and joiners
# already have its state, so they join with an IST of what the founder committed since (no SST, no restart
# of the joiner), all at once. A node wiped later returns with the same prepared state: the truth, since
# every node started there, so it takes an IST if the donor's gcache still reaches back, else an SST.
PREPARED_UUID = "5d3a8e2c-9b1f-4e7a-8c2d-6f0e1a2b3c4d"
PREPARED_TAG_SUFFIX = "-galera-prepared"
PREPARE_SH = f"""set -e
install -d -o mysql -g mysql /run/mysqld
printf '# GALERA saved state\\nversion: 2.1\\nuuid:    {PREPARED_UUID}\\nseqno:   0\\nsafe_to_bootstrap: 1\\n' \\
  > /var/lib/mysql/grastate.dat
chown mysql:mysql /var/lib/mysql/grastate.dat
mariadbd --user=mysql --wsrep-on=ON --wsrep-provider=/usr/lib/galera/libgalera_smm.so \\
  --wsrep-cluster-address=gcomm:// --wsrep-new-cluster --wsrep-cluster-name=prepare --binlog-format=ROW \\
  --innodb-autoinc-lock-mode=2 --log-error=/dev/stderr &
for i in $(seq 300); do mariadb -N -e "SHOW STATUS LIKE 'wsrep_ready'" 2>/dev/null | grep -q ON && break; sleep 0.1; done
mariadb-admin shutdown
wait
grep -q 'safe_to_bootstrap: 1' /var/lib/mysql/grastate.dat
grep -q '{PREPARED_UUID}' /var/lib/mysql/grastate.dat
"""
CLUSTERCHECK = Path(__file__).with_name("clustercheck.py")
CLUSTERCHECK_PORT = 9200


GARBD_SH = r"""#!/bin/sh
# Rendered by ha-harness: the arbitrator (garbd, galera-arbitrator-4), a voting member with no data.
set -e
. /etc/harness/garbd.env
exec garbd --group="$GROUP" --address="$ADDRESS" --name="$NAME" --options="$OPTIONS"
"""


@dataclass(frozen=True)
class Position:
    """A node's last committed transaction: the history (cluster state UUID) and its seqno in it."""

    uuid: str
    seqno: int

    def __str__(self) -> str:
        return f"{self.uuid}:{self.seqno}"


GCOMM_NAME_MAX = 32


def parse_recovered_position(log_text: str) -> Position | None:
    """The last ``Recovered position: <uuid>:<seqno>`` line (seqno -1: nothing committed); None when the
    log has none (recovery failed or printed something else)."""
    found = re.findall(r"Recovered position: ([0-9a-f-]+):(-?\d+)", log_text)
    return Position(found[-1][0], int(found[-1][1])) if found else None


def most_advanced(positions: Mapping[str, Position | None], order: Sequence[str], history: str | None) -> str:
    """The node to bootstrap after every node crashed: the highest recovered seqno, the first in topology
    order on a tie, among the nodes in ``history`` (the cluster state UUID the cluster last ran with).

    Seqnos of different histories do not compare: a node that lost what made it part of the last history
    (a state transfer it never fsynced, say) reports a high seqno of an older one, and bootstrapping it
    would throw away everything the last history committed. So, as an operator does, the nodes of the last
    history come first. Refuses (InfraError) when a node's position is unknown, or when none is in the last
    history and they disagree: bootstrapping the wrong node could throw away transactions only another
    node has, which an operator must never do blind."""
    unknown = [n for n in order if positions.get(n) is None]
    if unknown:
        raise InfraError(f"galera recovery: no recovered position for {', '.join(unknown)} "
                         "(--wsrep-recover printed none); not bootstrapping blind")  # fmt: skip
    known = {n: p for n, p in positions.items() if p is not None and n in order}
    candidates = [n for n in order if known[n].uuid == history] if history else []
    if not candidates:
        if len({p.uuid for p in known.values()}) > 1:
            found = ", ".join(f"{n}={known[n]}" for n in order)
            raise InfraError(f"galera recovery: positions in different histories ({found}) and none in the "
                             f"last one ({history or 'unknown'}); not bootstrapping blind")  # fmt: skip
        candidates = list(order)
    return max(candidates, key=lambda n: (known[n].seqno, -order.index(n)))


def _pt(seconds: float) -> str:
    return f"PT{seconds:g}S"


class GaleraCluster(HAProxyFrontends):
    """Galera; with ``settings.balancer``, behind HAProxy (one, or the keepalived pair) as OpenStack runs it:
    every server of the writer frontend is a ``backup`` with ``stick on dst``, so all clients go to the first
    node clustercheck calls synced and stay there until it is not (no failback), each node's client proxy
    as the server and its clustercheck (port 9200) as the health check. Without a balancer each client
    connects to its own node."""

    name = "galera"
    client_port = 3306
    services: ClassVar[Mapping[str, int]] = SYSTEM.services
    data_dir: ClassVar[str] = SYSTEM.data_dir
    topology: GaleraTopology
    pair_routes_alike: ClassVar[bool] = False  # each HAProxy picks by its own checks; any node takes writes

    @classmethod
    def node_image(cls, runtime: Runtime, base: str, topology: TopologyBase) -> str:
        """``<node image>-galera-prepared``, derived once from the node image (``PREPARE_SH``: ~2 s)."""
        tag = f"{base}{PREPARED_TAG_SUFFIX}"
        if not runtime.image_exists(tag):
            log.info(f"preparing {tag}: the node image's data directory as a founder of history "
                     f"{PREPARED_UUID[:8]} left it")  # fmt: skip
            # labelled like a run of this process, so the reaper removes it if the harness dies meanwhile
            labels = {L.NAMESPACE: L.namespace(), L.KIND: "image", L.OWNER: L.owner_token(),
                      L.RUN_ID: f"prepare-galera-{secrets.token_hex(3)}"}  # fmt: skip
            runtime.derive_image(base, ["sh", "-c", PREPARE_SH], tag, labels)
        return tag

    @property
    def prepared(self) -> bool:
        """The nodes run the prepared image: joiners have the founder's state already (IST, together)."""
        return self.run.image.endswith(PREPARED_TAG_SUFFIX)

    @property
    def cluster_name(self) -> str:
        """``hh-<run id>``, cut to gcomm's limit (a group name is at most 32 bytes; a longer one makes every
        joiner fail its handshake), keeping the run's random tail."""
        name = f"hh-{self.run.id}"
        return name if len(name) <= GCOMM_NAME_MAX else f"hh-{self.run.id[-(GCOMM_NAME_MAX - 3) :]}"

    @property
    def arbitrator(self) -> Node | None:
        """The node running garbd (``settings.arbitrator``: the last one), if any."""
        name = self.topology.arbitrator
        return None if name is None else self.run.node(name)

    def provider_options(self, node: Node) -> str:
        """gcomm's options for ``node``: the failure-detection timers, and its vote's weight if set."""
        s = self.topology.settings
        options = [
            f"evs.keepalive_period={_pt(s.keepalive_period)}",
            f"evs.inactive_check_period={_pt(min(s.inactive_check_period, s.suspect_timeout))}",
            f"evs.suspect_timeout={_pt(s.suspect_timeout)}",
            f"evs.inactive_timeout={_pt(s.inactive_timeout)}",
            f"evs.install_timeout={_pt(s.install_timeout)}",
        ]
        if node.name in s.weights:
            options.append(f"pc.weight={s.weights[node.name]}")
        return ";".join(options)

    def garbd_env(self, node: Node) -> str:
        peers = ",".join(n.ip for n in self.run.nodes)
        options = f"{self.provider_options(node)};gmcast.listen_addr=tcp://0.0.0.0:4567"
        return f"GROUP='{self.cluster_name}'\nADDRESS='gcomm://{peers}'\nNAME='{node.name}'\nOPTIONS='{options}'\n"

    def galera_cnf(self, node: Node) -> str:
        s = self.topology.settings
        peers = ",".join(n.ip for n in self.run.nodes)
        options = f"{self.provider_options(node)};gcache.size=64M"
        return f"""# Rendered by ha-harness for run {self.run.id}, node {node.name}
[mysqld]
bind-address=0.0.0.0
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size={s.buffer_pool_size}
innodb_flush_log_at_trx_commit={s.flush_log_at_trx_commit}
innodb_flush_log_at_timeout={s.flush_log_at_timeout}
max_connections=500
wsrep_on=ON
wsrep_cluster_name={self.cluster_name}
wsrep_cluster_address=gcomm://{peers}
wsrep_node_address={node.ip}
wsrep_node_name={node.name}
wsrep_sst_method={s.sst_method}
wsrep_sst_auth={USER}:{self.run.credential("client")}
wsrep_provider_options="{options}"
wsrep_sync_wait={s.sync_wait}
# loose-: options of the other flavour (Percona XtraDB Cluster) must not stop MariaDB, and back
loose-pxc-encrypt-cluster-traffic=OFF
loose-pxc_strict_mode=PERMISSIVE
loose-wsrep_slave_threads=2
{storage_cnf(self.lazy_storage)}"""

    def render(self, directory: Path) -> None:
        for node in self.run.nodes:
            target = directory / node.name
            target.mkdir(parents=True, exist_ok=True)
            if node == self.arbitrator:
                (target / "garbd.env").write_text(self.garbd_env(node))
                (target / "garbd.sh").write_text(GARBD_SH)
                continue
            (target / "galera.cnf").write_text(self.galera_cnf(node))
            (target / "start.sh").write_text(START_SH)
            (target / "init.sql").write_text(account_sql(self.run.credential("client")))
            if self.frontends:
                user, password = self.client_credentials()
                check = {"port": CLUSTERCHECK_PORT, "user": user, "password": password}
                (target / "clustercheck.json").write_text(json.dumps(check))
                shutil.copyfile(CLUSTERCHECK, target / "clustercheck.py")
        if self.frontends:
            self.render_frontends(directory, self.haproxy_cfg())

    def haproxy_cfg(self) -> str:
        """OpenStack's HAProxy for Galera (TripleO's ``mysql`` listener): every server a ``backup`` checked
        by clustercheck, ``stick on dst`` so every client lands on one node and stays; sessions of a node
        marked down are shut. The reader frontend balances over every synced node."""
        check = f"check addr {{ip}} port {CLUSTERCHECK_PORT} inter 500ms rise 2 fall 2 on-marked-down shutdown-sessions"

        def servers(extra: str = "") -> str:
            out = []
            for n in self.data_nodes:
                host, port = self.endpoint(n, "mysql")
                out.append(f"    server {n.name} {host}:{port} {check.format(ip=n.ip)}{extra}")
            return "\n".join(out)

        header = f"# Rendered by ha-harness for run {self.run.id}: HAProxy in front of Galera, as OpenStack deploys it."
        writer = (
            f"    option httpchk\n    stick-table type ip size 1000\n    stick on dst\n{servers(' backup')}"
        )
        return haproxy_config(
            header, writer, f"    balance roundrobin\n    option httpchk\n{servers()}", api=False
        )

    def container_spec(self, node: Node, *, bootstrap: bool = False) -> ContainerSpec:
        if node == self.arbitrator:
            return self.base_spec(node, ["sh", "/etc/harness/garbd.sh"], [Mount(str(self.node_dir(node)),
                                  "/etc/harness")], user="0")  # fmt: skip
        flag = self.node_dir(node) / "bootstrap"
        if bootstrap:
            flag.touch()
        return self.base_spec(
            node,
            ["sh", "/etc/harness/start.sh"],
            [Mount(str(self.node_dir(node)), "/etc/harness")],
            user="0",
        )

    def bootstrap(self) -> None:
        nodes = self.data_nodes
        first, rest = nodes[0], nodes[1:]
        timeout = self.topology.timeouts.startup
        started = time.monotonic()
        self.start_nodes([first], bootstrap=first)
        self.wait_ready([first], size=1, timeout=timeout)
        (self.node_dir(first) / "bootstrap").unlink(missing_ok=True)
        how = "in turn, by IST from the prepared state" if self.prepared else "in turn, by SST"
        log.info(f"  {first.name} founded the cluster ({time.monotonic() - started:.1f}s); {len(rest)} "
                 f"joining {how}")  # fmt: skip
        if self.prepared:
            # One gcomm join at a time (two joining at once stall each other's membership for seconds), but
            # each joiner's IST and start overlap the next one's join.
            for size, node in enumerate(rest, start=2):
                self.start_nodes([node])
                self.wait_members(first, size, timeout=timeout - (time.monotonic() - started))
        else:
            # Joiners one after another: with one donor (n1), concurrent rsync SSTs measured slower here
            # (bench/cluster_ready.py: ~10.5-11 s together vs ~9.8 s in turn for galera-3).
            for size, node in enumerate(rest, start=2):
                self.start_nodes([node])
                self.wait_ready([node], size=size, timeout=timeout - (time.monotonic() - started))
        if self.arbitrator is not None:  # garbd joins last: a member with no data needs no state transfer
            self.start_nodes([self.arbitrator])
        size = len(self.run.nodes)
        self.wait_ready(nodes, size=size, timeout=timeout - (time.monotonic() - started))
        arbitrator = " (one of them garbd)" if self.arbitrator else ""
        log.info(
            f"  galera: {size} members{arbitrator} Primary, Synced, ready ({time.monotonic() - started:.1f}s)"
        )
        if self.frontends:
            self.start_frontends()
            self.wait_frontends(timeout=timeout - (time.monotonic() - started))
            front = "the balancer pair's address" if self.pair else "HAProxy"
            log.info(f"  galera: clients through {front} reach {self.writer_serves()} "
                     f"({time.monotonic() - started:.1f}s)")  # fmt: skip

    def wait_frontends(self, *, timeout: float) -> None:
        """Until the writer frontend (through the pair's address, once one balancer holds it) reaches a node."""
        deadline = time.monotonic() + timeout
        if self.pair:
            self.wait_address_held(timeout=timeout)
        wait_until(self.writer_serves, timeout=max(1.0, deadline - time.monotonic()), interval=0.1,
                   max_interval=0.5, what="the writer frontend reaching a synced node",
                   details=self.logs_of_all)  # fmt: skip

    # -- recovery ---------------------------------------------------------------------------------
    def restart_nodes(self, nodes: list[Node]) -> None:
        # the cluster stands if a data node does (garbd alone holds nothing to rejoin)
        running = [n for n in self.data_nodes if self.container_state(n) in ("running", "paused")]
        if running:
            super().restart_nodes(nodes)  # the cluster stands: they rejoin with IST/SST
            return
        self.recover_all()

    def recover_all(self) -> None:
        """Every node crashed: bootstrap from the node with the highest recovered seqno, as operators do."""
        positions: dict[str, Position | None] = {}
        for node in self.data_nodes:
            positions[node.name] = self.recovered_position(node)
        history = self.history()
        best = most_advanced(positions, self.topology.data_node_names, history)
        shown = {n: None if p is None else str(p) for n, p in positions.items()}
        log.info(
            f"  galera full-cluster recovery: positions {shown} (last history {history}); bootstrapping {best}"
        )
        detail = {"seqnos": {n: None if p is None else p.seqno for n, p in positions.items()},
                  "positions": shown, "history": history, "bootstrapped": best}  # fmt: skip
        with self.events.action("full-cluster-recovery", "wsrep-recover + bootstrap", best, detail):
            node = self.run.node(best)
            flag = self.node_dir(node) / "bootstrap"
            flag.touch()
            try:
                self.runtime.start(node.container)
                self.wait_ready([node], size=1, timeout=self.topology.timeouts.startup)
            finally:
                flag.unlink(missing_ok=True)
            super().restart_nodes([n for n in self.run.nodes if n != node])

    def history(self) -> str | None:
        """The cluster state UUID the cluster last ran with (recorded whenever it was seen ready)."""
        try:
            return (run_dir(self.run.id) / "galera-history").read_text().strip() or None
        except OSError:
            return None

    def _record_history(self, node: Node) -> None:
        uuid = self.wsrep(node, timeout=2.0).get("wsrep_cluster_state_uuid", "")
        if uuid and uuid != self.history():
            (run_dir(self.run.id) / "galera-history").write_text(uuid + "\n")

    def recovered_position(self, node: Node) -> Position | None:
        """Run ``--wsrep-recover`` in the node's (stopped) container and parse the recovered position."""
        flag = self.node_dir(node) / "recover"
        flag.touch()
        try:
            self.runtime.start(node.container)
            wait_until(lambda: self.container_state(node) == "exited", timeout=120, interval=0.2,
                       what=f"wsrep recovery on {node.name}")  # fmt: skip
        finally:
            flag.unlink(missing_ok=True)
        return parse_recovered_position(self.runtime.logs(node.container, 400))

    def primary(self) -> Node:
        """Behind HAProxy: the node the writer frontend reaches (where every client writes). Otherwise the
        first node (by name) that is Synced in the Primary component; n1 when none answers."""
        if self.frontends:
            try:
                return self.run.node(self.writer_serves())
            except Exception:
                pass
        for node in self.data_nodes:
            try:
                status = self.wsrep(node, timeout=1.0)
            except Exception:
                continue
            if (
                status.get("wsrep_cluster_status") == "Primary"
                and status.get("wsrep_local_state_comment") == "Synced"
            ):
                return node
        return self.run.nodes[0]

    # -- observation ------------------------------------------------------------------------------
    def connect(self, node: Node, *, timeout: float = 2.0, database: str | None = None) -> Any:
        import pymysql

        host, port = node.ip, self.client_port
        user, password = self.client_credentials()
        return pymysql.connect(
            host=host, port=port, user=user, password=password, database=database,
            connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout, autocommit=True,
        )  # fmt: skip

    def wsrep(self, node: Node, *, timeout: float = 2.0) -> dict[str, str]:
        conn = self.connect(node, timeout=timeout)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SHOW GLOBAL STATUS WHERE Variable_name LIKE 'wsrep%%' OR Variable_name = 'Uptime'"
                )
                return {str(k): str(v) for k, v in cur.fetchall()}
        finally:
            conn.close()

    def wait_members(self, node: Node, size: int, *, timeout: float) -> None:
        """Until ``node`` counts ``size`` members in its Primary component (joined, maybe not yet synced)."""

        def check() -> bool:
            status = self.wsrep(node, timeout=1.0)
            if (
                status.get("wsrep_cluster_status") != "Primary"
                or int(status.get("wsrep_cluster_size", 0)) < size
            ):
                raise RuntimeError(f"{node.name}: {status.get('wsrep_cluster_status')} size "
                                   f"{status.get('wsrep_cluster_size')}")  # fmt: skip
            return True

        wait_until(check, timeout=max(timeout, 1.0), interval=0.05, max_interval=0.2,
                   what=f"{node.name} counting {size} members", details=self.logs_of_all)  # fmt: skip

    @staticmethod
    def is_ready(status: dict[str, str], size: int) -> bool:
        return (
            status.get("wsrep_ready") == "ON"
            and status.get("wsrep_cluster_status") == "Primary"
            and status.get("wsrep_local_state_comment") == "Synced"
            and status.get("wsrep_cluster_size") == str(size)
        )

    def wait_ready(self, nodes: list[Node], *, size: int, timeout: float) -> None:
        def check() -> bool:
            for node in nodes:
                if self.container_state(node) not in ("running",):
                    raise RuntimeError(f"{node.name} is {self.container_state(node)}")
                status = self.wsrep(node, timeout=1.0)
                if not self.is_ready(status, size):
                    raise RuntimeError(
                        f"{node.name}: {status.get('wsrep_cluster_status')}/"
                        f"{status.get('wsrep_local_state_comment')} size {status.get('wsrep_cluster_size')}"
                    )
            return True

        names = ",".join(n.name for n in nodes)
        wait_until(check, timeout=max(timeout, 1.0), interval=0.1, max_interval=0.3,
                   what=f"galera nodes {names} Primary/Synced with cluster size {size}",
                   details=self.logs_of_all)  # fmt: skip
        self._record_history(nodes[0])

    def node_status(self, node: Node) -> NodeStatus:
        state = self.container_state(node)
        if state != "running":
            return NodeStatus(node.name, "-", node.ip, state, False, None)
        if node == self.arbitrator:
            return self.arbitrator_status(node)
        try:
            status = self.wsrep(node, timeout=1.0)
        except Exception as exc:
            return NodeStatus(node.name, "-", node.ip, "no answer", False, self.uptime(node), str(exc)[:80])
        role = "primary-member" if status.get("wsrep_cluster_status") == "Primary" else "isolated"
        text = (
            f"{status.get('wsrep_cluster_status')}/{status.get('wsrep_local_state_comment')} "
            f"size={status.get('wsrep_cluster_size')} ready={status.get('wsrep_ready')}"
        )
        healthy = self.is_ready(status, len(self.run.nodes))
        return NodeStatus(node.name, role, node.ip, text, healthy, self.uptime(node))

    def arbitrator_status(self, node: Node) -> NodeStatus:
        """garbd answers no queries: it is healthy when running and a data node counts every member."""
        sizes = []
        for other in self.data_nodes:
            try:
                sizes.append(self.wsrep(other, timeout=1.0).get("wsrep_cluster_size"))
            except Exception:
                continue
        whole = str(len(self.run.nodes)) in sizes
        text = "garbd running" + (", counted by the cluster" if whole else ", not counted by any data node")
        return NodeStatus(node.name, "arbitrator", node.ip, text, whole, self.uptime(node))
