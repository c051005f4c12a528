"""Which node an operator bootstraps after every Galera node crashed (pure logic)."""

from __future__ import annotations

import pytest

from harness.errors import InfraError
from harness.systems.galera.cluster import Position, most_advanced, parse_recovered_position

OLD, NEW = "af86324a-eeef-11f1-a39c-ce1f9fa75469", "c3485a5d-eeef-11f1-ba54-462c83b28b54"
ORDER = ["n1", "n2", "n3"]


def test_the_last_recovered_position_line_is_the_one() -> None:
    log = f"x\n[Note] WSREP: Recovered position: {OLD}:12\n...\n[Note] WSREP: Recovered position: {NEW}:-1\n"
    assert parse_recovered_position(log) == Position(NEW, -1)
    assert parse_recovered_position("InnoDB: ready\n") is None


def test_the_highest_seqno_wins_and_topology_order_breaks_a_tie() -> None:
    same = {"n1": Position(OLD, 5), "n2": Position(OLD, 9), "n3": Position(OLD, 9)}
    assert most_advanced(same, ORDER, OLD) == "n2"
    assert most_advanced(same, ORDER, None) == "n2"


def test_seqnos_of_an_older_history_never_beat_the_last_one() -> None:
    # Recorded on a real galera-3-lazyfs run: n1 was bootstrapped into a new history (NEW); n2 and n3 lost
    # the state transfer they had never fsynced and came back at a high seqno of the old one.
    positions = {"n1": Position(NEW, 166), "n2": Position(OLD, 1298), "n3": Position(OLD, 1298)}
    assert most_advanced(positions, ORDER, NEW) == "n1"
    with pytest.raises(InfraError, match=r"different histories .* not bootstrapping blind"):
        most_advanced(positions, ORDER, None)


def test_an_unknown_position_is_refused() -> None:
    with pytest.raises(InfraError, match="no recovered position for n3"):
        most_advanced({"n1": Position(OLD, 1), "n2": Position(OLD, 2), "n3": None}, ORDER, OLD)
