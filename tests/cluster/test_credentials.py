"""Per-run credentials on real clusters: a run's clients get in, a client holding another run's password
(or the node image's default) is refused — so a client left over from an earlier run on a reused subnet
cannot write into this run's history."""

from __future__ import annotations

import dataclasses

import pika
import pymysql
import pytest

from harness.lifecycle import Run
from harness.runtime.run import new_secret
from harness.systems.base import ClusterSystem
from harness.systems.mysql import IMAGE_PASSWORD


def other_runs_password(run: Run) -> str:
    """The client password a run with the same id but another secret would have."""
    return dataclasses.replace(run, secret=new_secret()).credential("client")


def test_galera_refuses_another_runs_client(galera: tuple[Run, ClusterSystem]) -> None:
    run, system = galera
    user, password = system.client_credentials()
    assert password not in (IMAGE_PASSWORD, other_runs_password(run))
    for node in run.nodes:
        pymysql.connect(host=node.ip, port=3306, user=user, password=password, connect_timeout=5).close()
        for wrong in (IMAGE_PASSWORD, other_runs_password(run)):
            with pytest.raises(pymysql.err.OperationalError) as exc:
                pymysql.connect(host=node.ip, port=3306, user=user, password=wrong, connect_timeout=5)
            assert exc.value.args[0] == 1045  # access denied


def test_rabbitmq_refuses_another_runs_client(rabbit: tuple[Run, ClusterSystem]) -> None:
    run, system = rabbit
    user, password = system.client_credentials()
    node = run.nodes[0]
    ok = pika.BlockingConnection(
        pika.ConnectionParameters(host=node.ip, credentials=pika.PlainCredentials(user, password))
    )
    ok.close()
    for wrong in ("harness", other_runs_password(run)):
        params = pika.ConnectionParameters(host=node.ip, credentials=pika.PlainCredentials(user, wrong),
                                           connection_attempts=1, socket_timeout=5)  # fmt: skip
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(params)


def test_the_secret_never_reaches_a_report(galera: tuple[Run, ClusterSystem]) -> None:
    run, system = galera
    assert run.secret and run.secret not in run.topology.model_dump_json()
    assert system.client_credentials()[1] not in run.topology.model_dump_json()
