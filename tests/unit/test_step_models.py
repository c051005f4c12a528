"""Timeline steps are typed models parsed once: every generated step round-trips through YAML, every
shipped scenario builds, and the claims that composition checks are what each fault holds."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from harness.errors import InputError
from harness.model.faults import (
    LINK_FAULTS,
    STEP_ADAPTER,
    STEPS,
    KillStep,
    LinkStep,
    PartitionStep,
    StepBase,
    parse_step,
    step_to_yaml,
)
from harness.specs import load_scenario

ROOT = Path(__file__).resolve().parents[2]
names = st.sampled_from(["n1", "n2", "n3", "n4", "primary", "all", "random", "minority", "n2-repl"])
durations = st.one_of(st.integers(0, 86400), st.sampled_from(["10s", "500ms", "2m", "1.5s", "24h"]))
small = st.integers(0, 10_000)


def link_docs() -> st.SearchStrategy[dict[str, Any]]:
    common = {"target": names, "direction": st.sampled_from(["upstream", "downstream", "both"]),
              "toxicity": st.floats(0, 1)}  # fmt: skip
    kinds = {
        "latency": {"latency_ms": small, "jitter_ms": small},
        "bandwidth": {"rate_kbps": st.integers(1, 10**6)},
        "timeout": {"timeout_ms": small},
        "stall": {},
        "reset_peer": {"timeout_ms": small},
        "slow_close": {"delay_ms": small},
        "slicer": {
            "average_size": st.integers(10, 100),
            "size_variation": st.integers(0, 9),
            "delay_us": small,
        },
        "limit_data": {"bytes": small},
    }
    toxic = st.one_of(
        *[st.fixed_dictionaries({"kind": st.just(k), **common, **fields}) for k, fields in kinds.items()]
    )
    return st.one_of(toxic, st.fixed_dictionaries({"kind": st.just("down"), "target": names}))


partitions = st.one_of(
    st.fixed_dictionaries({"isolate": names}),
    st.fixed_dictionaries(
        {"shape": st.sampled_from(["halves", "random_halves", "majorities_ring", "bridge"])}
    ),
    st.fixed_dictionaries(
        {"groups": st.lists(st.lists(names, min_size=1, max_size=3), min_size=2, max_size=3)}
    ),
    st.fixed_dictionaries(
        {
            "one_way": st.fixed_dictionaries(
                {"from": names, "to": st.one_of(names, st.lists(names, min_size=1, max_size=2))}
            )
        }
    ),
)
step_docs = st.one_of(
    st.fixed_dictionaries({"wait": durations}),
    st.fixed_dictionaries({"heal": st.sampled_from(["all", "partition", "links", "disk"])}),
    st.fixed_dictionaries(
        {"power_loss": st.one_of(names, st.fixed_dictionaries({"target": names, "window": durations}))}
    ),
    st.fixed_dictionaries(
        {
            "disk": st.one_of(
                st.fixed_dictionaries(
                    {
                        "target": names,
                        "kind": st.sampled_from(["eio", "enospc"]),
                        "ops": st.lists(
                            st.sampled_from(["write", "fsync", "read", "create"]), min_size=1, max_size=4
                        ),
                    }
                ),
                st.fixed_dictionaries(
                    {"target": names, "kind": st.just("slow"), "latency_ms": st.integers(1, 10_000)}
                ),
            )
        }
    ),
    st.fixed_dictionaries({"partition": partitions}),
    st.fixed_dictionaries({"link": link_docs()}),
    st.fixed_dictionaries({"crash_all": st.fixed_dictionaries({"window": durations})}),
    st.fixed_dictionaries(
        {"wipe": st.one_of(names, st.fixed_dictionaries({"target": names, "return": st.booleans()}))}
    ),
    *[st.fixed_dictionaries({k: names}) for k in ("kill", "pause", "resume", "stop", "start", "restart")],
)


@settings(max_examples=400)
@given(step_docs)
def test_every_step_round_trips_through_yaml(doc: dict[str, Any]) -> None:
    step = parse_step(doc)
    buffer = io.StringIO()
    YAML(typ="safe").dump([step_to_yaml(step)], buffer)
    (again,) = YAML(typ="safe").load(buffer.getvalue())
    assert STEP_ADAPTER.validate_python(again) == step
    assert type(step) is STEPS[next(iter(doc))]


def test_every_link_kind_is_a_model() -> None:
    assert set(LINK_FAULTS) == {"latency", "bandwidth", "timeout", "stall", "reset_peer", "slow_close", "slicer",
                                "limit_data", "down"}  # fmt: skip


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_builds_typed_steps(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.steps and all(isinstance(s, StepBase) for s in scenario.steps)


def test_claims() -> None:
    assert parse_step({"kill": "n1"}).claims() == {("process", "n1")}
    assert parse_step({"pause": "n1"}).claims() == {("freezer", "n1")}
    assert parse_step({"start": "all"}).claims() == set()
    assert parse_step({"partition": {"isolate": "n1"}}).claims() == {("iptables", "peer-mesh")}
    step = parse_step({"link": {"target": "n2-repl", "kind": "down"}})
    assert isinstance(step, LinkStep) and step.claims() == {("toxiproxy:down", "n2-repl")}
    assert parse_step({"power_loss": "n2"}).claims() == {("process", "n2")}  # down until started, as a kill
    assert parse_step({"disk": {"target": "n3", "kind": "eio"}}).claims() == {("disk", "n3")}
    assert parse_step({"wipe": "n1"}).claims() == {("process", "n1")}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"kill": "n1", "wait": 1}, "step: a step has exactly one of: wait, partition"),
        (
            {"partition": {}},
            "step.partition: a partition has exactly one of: isolate, shape, groups, one_way",
        ),
        ({"partition": {"groups": [["n1"]]}}, "step.partition.groups: list should have at least 2 items"),
        ({"wait": "25h"}, "step.wait: must be at most 24h (86400s), got 90000s"),
        ({"kill": "two words"}, "step.kill: string should match pattern"),
        ({"disk": {"target": "n1", "kind": "slow"}}, "step.disk: a slow disk needs latency_ms > 0"),
        (
            {"disk": {"target": "n1", "kind": "eio", "latency_ms": 5}},
            "step.disk: latency_ms is for kind slow",
        ),
        ({"disk": {"target": "n1", "kind": "eio", "ops": ["unlink"]}}, "step.disk.ops.0: input should be"),
        ({"disk": {"target": "n1", "kind": "eio", "ops": []}}, "step.disk.ops: list should have at least 1"),
        ({"power_loss": {"window": "1s"}}, "step.power_loss.target: field required"),
        ({"wipe": {"target": "n1", "return": "later"}}, "step.wipe.return: input should be a valid boolean"),
        ({"wipe": {"target": "n1", "returns": True}}, "step.wipe.returns: unknown field"),
    ],
)
def test_bad_steps(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_step(doc)
    assert str(exc.value).startswith(message), str(exc.value)


def test_partition_shapes_give_the_planner_its_parameters() -> None:
    step = parse_step({"partition": {"one_way": {"from": "n1", "to": ["n2", "n3"]}}})
    assert isinstance(step, PartitionStep)
    assert step.shape_and_params() == ("one_way", {"src": "n1", "dst": ["n2", "n3"]})
    assert isinstance(parse_step({"kill": "primary"}), KillStep)
