"""Which side an operator restarts after a RabbitMQ partition under ``ignore``, and how the partition
reports of both sides merge: pure functions over what each node's ``cluster_status`` said."""

from __future__ import annotations

import pytest

from harness.systems.rabbitmq.partitions import Membership, losing_side, merge_partitions

ORDER = ["n1", "n2", "n3"]
FIVE = ["n1", "n2", "n3", "n4", "n5"]


def _views(*sides: str, silent: str = "", order: list[str] = ORDER) -> dict[str, Membership | None]:
    """Views from side strings like "n1n2" (each node sees its side); ``silent`` nodes answer nothing."""
    views: dict[str, Membership | None] = {}
    for side in sides:
        members = frozenset(side[i : i + 2] for i in range(0, len(side), 2))
        views.update({n: Membership(n, members, {}) for n in members})
    silent_nodes = {silent[i : i + 2] for i in range(0, len(silent), 2)}
    return {n: None if n in silent_nodes else views[n] for n in order}


@pytest.mark.parametrize(
    ("sides", "silent", "losers"),
    [
        (("n1n2", "n3"), "", ["n3"]),
        (("n1", "n2n3"), "", ["n1"]),  # the larger side stays, even without the seed
        (("n1", "n2", "n3"), "", ["n2", "n3"]),  # a three-way tie: n1's side stays
        (("n2", "n1", "n3"), "", ["n2", "n3"]),  # the order the sides are listed in does not matter
        (("n1n2n3",), "", []),
        (("n1n2", "n3"), "n3", []),  # n3 does not answer: left alone
        (("n1", "n2n3"), "n2", ["n1"]),  # n3 alone still speaks for its side of two
        (("n1", "n2n3"), "n2n3", []),  # only n1 answers: its side is the only one seen, it stays
        (("n1n2", "n3"), "n1n2", []),  # only n3 answers: nobody restarts it
        (("n1", "n2", "n3"), "n1", ["n3"]),  # n1 down: n2's side wins the tie of the rest
        (("n1n2n3",), "n1n2n3", []),  # nobody answers
    ],
)
def test_losing_side_rule(sides: tuple[str, ...], silent: str, losers: list[str]) -> None:
    assert losing_side(_views(*sides, silent=silent), ORDER) == losers


@pytest.mark.parametrize(
    ("sides", "silent", "losers"),
    [
        (("n1n2", "n3n4n5"), "", ["n1", "n2"]),  # majority without the seed
        (("n1n2", "n3n4", "n5"), "", ["n3", "n4", "n5"]),  # a tie of two pairs: n1's pair stays
        (("n1", "n2n3", "n4n5"), "", ["n1", "n4", "n5"]),  # a tie without n1: n2's pair stays
        (("n1n2", "n3n4", "n5"), "n1n2", ["n5"]),  # n1's pair down: the other pair stays
        (("n1", "n2n3", "n4n5"), "n2", ["n1", "n4", "n5"]),  # n3 still speaks for the pair n2 is in
        (("n5", "n1n2n3n4"), "", ["n5"]),
    ],
)
def test_losing_side_of_five_nodes(sides: tuple[str, ...], silent: str, losers: list[str]) -> None:
    assert losing_side(_views(*sides, silent=silent, order=FIVE), FIVE) == losers


def test_tie_goes_to_the_side_with_the_first_node_in_topology_order() -> None:
    """On a tie "n1's side" means the side with the earliest node in ``order``, not the node named n1."""
    views = _views("n1", "n2", "n3")
    assert losing_side(views, ["n3", "n1", "n2"]) == ["n1", "n2"]
    assert losing_side(views, ["n2", "n3", "n1"]) == ["n3", "n1"], "losers come in topology order"


def test_a_view_that_does_not_include_its_own_node_is_no_side() -> None:
    """A node whose rabbit app is down still answers ``cluster_status`` (running without itself): it
    names no side, but it is on a losing one and is restarted."""
    views: dict[str, Membership | None] = {
        "n1": Membership("n1", frozenset({"n1"}), {}),
        "n2": Membership("n2", frozenset({"n1", "n3"}), {}),  # counted, this would be the largest side
        "n3": Membership("n3", frozenset({"n3"}), {}),
    }
    assert losing_side(views, ORDER) == ["n2", "n3"], "a tie of single nodes: n1 stays"
    down = {"n1": Membership("n1", frozenset({"n2"}), {}), "n2": None, "n3": None}
    assert losing_side(down, ORDER) == [], "no answering node runs: no side to keep"


def test_partition_reports_merge_across_sides() -> None:
    a = Membership("n1", frozenset({"n1", "n2"}), {"n1": frozenset({"n3"}), "n2": frozenset({"n3"})})
    b = Membership("n3", frozenset({"n3"}), {"n3": frozenset({"n1"})})
    c = Membership("n3", frozenset({"n3"}), {"n3": frozenset({"n2"})})
    merged = merge_partitions({"n1": a, "n2": None, "n3": b, "x": c})
    assert merged == {"n1": {"n3"}, "n2": {"n3"}, "n3": {"n1", "n2"}}


def test_merge_of_nothing() -> None:
    assert merge_partitions({}) == {}
    assert merge_partitions({"n1": None, "n2": None}) == {}
    assert merge_partitions(_views("n1n2n3")) == {}


def test_merge_of_a_three_way_split() -> None:
    """Every node alone: each reports the other two, whichever view carried the report."""
    views: dict[str, Membership | None] = {
        "n1": Membership("n1", frozenset({"n1"}), {"n1": frozenset({"n2"})}),
        "n2": Membership("n2", frozenset({"n2"}), {"n2": frozenset({"n1", "n3"})}),
        "n3": Membership("n3", frozenset({"n3"}), {"n3": frozenset({"n1", "n2"}), "n1": frozenset({"n3"})}),
    }
    merged = merge_partitions(views)
    assert merged == {"n1": {"n2", "n3"}, "n2": {"n1", "n3"}, "n3": {"n1", "n2"}}
    assert all(isinstance(peers, frozenset) for peers in merged.values())
    assert losing_side(views, ORDER) == ["n2", "n3"]


def test_merge_does_not_modify_the_views() -> None:
    report = {"n1": frozenset({"n3"})}
    views: dict[str, Membership | None] = {
        "n1": Membership("n1", frozenset({"n1", "n2"}), report),
        "n2": Membership("n2", frozenset({"n1", "n2"}), {"n1": frozenset({"n2"})}),
    }
    assert merge_partitions(views) == {"n1": {"n2", "n3"}}
    assert report == {"n1": frozenset({"n3"})}


def test_stale_partition_record_restarts_the_reporter() -> None:
    """Everyone runs with everyone, but n1 still lists n3 as partitioned: n1's own record is stale."""
    full = frozenset({"n1", "n2", "n3"})
    views: dict[str, Membership | None] = {
        "n1": Membership("n1", full, {"n1": frozenset({"n3"})}),
        "n2": Membership("n2", full, {"n1": frozenset({"n3"})}),  # n2 carries its side's reports too
        "n3": Membership("n3", full, {}),
    }
    assert losing_side(views, ["n1", "n2", "n3"]) == ["n1"]


def test_stale_records_of_a_silent_or_empty_reporter() -> None:
    full = frozenset(ORDER)
    views: dict[str, Membership | None] = {
        "n1": None,  # the reporter does not answer: left alone
        "n2": Membership("n2", full, {"n1": frozenset({"n3"}), "n3": frozenset()}),  # n3: empty record
        "n3": Membership("n3", full, {}),
    }
    assert losing_side(views, ORDER) == []
    views["n1"] = Membership("n1", full, {})
    assert losing_side(views, ORDER) == ["n1"], "carried by n2's view, n1 answers now"


# -- after a heal: which modes get the operator's recovery ------------------------------------------
class _Recorded:
    """A RabbitCluster's after_heal with its observations stubbed: ``whole`` as given, recoveries counted."""

    def __init__(self, mode: str, whole: bool) -> None:
        from types import SimpleNamespace

        from harness.systems.rabbitmq.cluster import RabbitCluster

        self.cluster = object.__new__(RabbitCluster)
        settings = SimpleNamespace(partition_handling=mode, autoheal_grace=0.3)
        self.cluster.topology = SimpleNamespace(settings=settings)  # type: ignore[assignment]
        self.reasons: list[str] = []
        self.cluster.memberships = lambda **_: {}  # type: ignore[method-assign]
        self.cluster.whole = lambda views: whole  # type: ignore[method-assign]

        def recover(**kw: str) -> list[str]:
            self.reasons.append(kw.get("reason", "ignore"))
            return []

        self.cluster.recover_partitions = recover  # type: ignore[method-assign]


@pytest.mark.parametrize("mode", ["pause_minority", "autoheal", "pause_if_all_down"])
def test_a_mode_that_did_not_merge_within_the_grace_gets_the_operators_recovery(mode: str) -> None:
    # a node paused past the net tick comes back to peers that saw it down: a partition that no mode's
    # rule resolves (seen in the nightly's pause-node on rabbitmq-3, pause_minority)
    stub = _Recorded(mode, whole=False)
    stub.cluster.after_heal()
    assert stub.reasons == [f"{mode} had not merged the cluster in 0.3s"]


@pytest.mark.parametrize("mode", ["pause_minority", "autoheal"])
def test_a_cluster_whole_again_by_itself_is_left_alone(mode: str) -> None:
    stub = _Recorded(mode, whole=True)
    stub.cluster.after_heal()
    assert stub.reasons == []


def test_ignore_always_runs_the_recovery() -> None:
    stub = _Recorded("ignore", whole=True)
    stub.cluster.after_heal()
    assert stub.reasons == ["ignore"]
