"""The pure page model of harness.storage.lazyfs against a reference: durable = content at last fsync."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.storage.lazyfs import LazyModel, MemoryDurable

FILES = ("a", "b")

op = st.one_of(
    st.tuples(
        st.just("write"),
        st.sampled_from(FILES),
        st.integers(0, 70),
        st.binary(min_size=0, max_size=40),
    ),
    st.tuples(st.just("truncate"), st.sampled_from(FILES), st.integers(0, 90)),
    st.tuples(st.just("fsync"), st.sampled_from(FILES)),
    st.tuples(st.just("read"), st.sampled_from(FILES), st.integers(0, 100), st.integers(0, 60)),
    st.tuples(st.just("sync-all")),
    st.tuples(st.just("power-loss")),
)


def _write(buf: bytearray, offset: int, data: bytes) -> None:
    if offset > len(buf):
        buf.extend(bytes(offset - len(buf)))
    buf[offset : offset + len(data)] = data


def _truncate(buf: bytearray, size: int) -> None:
    if size < len(buf):
        del buf[size:]
    else:
        buf.extend(bytes(size - len(buf)))


@settings(max_examples=400, deadline=None)
@given(
    page_size=st.sampled_from([1, 4, 8, 16]),
    initial=st.fixed_dictionaries({f: st.binary(max_size=50) for f in FILES}),
    ops=st.lists(op, max_size=40),
)
def test_model_matches_reference(page_size: int, initial: dict[str, bytes], ops: list[tuple]) -> None:
    model = LazyModel(page_size)
    backing = {f: MemoryDurable(initial[f]) for f in FILES}
    current = {f: bytearray(initial[f]) for f in FILES}  # what a reader must see
    durable = {f: bytearray(initial[f]) for f in FILES}  # what must survive a power loss

    def fsync(f: str) -> None:
        plan = model.plan(f)
        if plan is not None:
            backing[f].apply(plan)
            model.synced(f)
        durable[f] = bytearray(current[f])

    for o in ops:
        kind = o[0]
        if kind == "write":
            _, f, off, data = o
            assert model.write(f, backing[f], off, data) == len(data)
            _write(current[f], off, data)
        elif kind == "truncate":
            _, f, size = o
            model.truncate(f, backing[f], size)
            _truncate(current[f], size)
        elif kind == "fsync":
            fsync(o[1])
        elif kind == "sync-all":
            for f in FILES:
                fsync(f)
        elif kind == "read":
            _, f, off, n = o
            assert model.read(f, backing[f], off, n) == bytes(current[f][off : off + n])
        elif kind == "power-loss":
            model.power_loss()
            current = {f: bytearray(durable[f]) for f in FILES}
        for f in FILES:
            assert model.size(f, backing[f].size()) == len(current[f])
            assert model.read(f, backing[f], 0, 1000) == bytes(current[f])
            # the backing store only ever holds durable state
            assert bytes(backing[f].data) == bytes(durable[f])
    model.power_loss()
    for f in FILES:
        assert bytes(backing[f].data) == bytes(durable[f])
        assert model.read(f, backing[f], 0, 1000) == bytes(durable[f])
        assert model.pending_bytes == 0


def test_power_loss_reports_what_it_dropped() -> None:
    model = LazyModel(8)
    d = MemoryDurable(b"x" * 20)
    model.write("f", d, 30, b"y" * 10)  # pages 3 and 4
    assert model.size("f", d.size()) == 40
    assert model.read("f", d, 18, 14) == b"xx" + bytes(10) + b"yy"
    assert model.power_loss() == (1, 16)
    assert model.read("f", d, 0, 100) == b"x" * 20


def test_truncate_hides_durable_tail_until_fsync() -> None:
    model = LazyModel(4)
    d = MemoryDurable(b"abcdefghij")
    model.truncate("f", d, 3)
    model.truncate("f", d, 8)
    assert model.read("f", d, 0, 100) == b"abc" + bytes(5)
    assert d.data == bytearray(b"abcdefghij")  # nothing durable yet
    plan = model.plan("f")
    assert plan is not None and plan.cut == 3 and plan.size == 8
    d.apply(plan)
    model.synced("f")
    assert bytes(d.data) == b"abc" + bytes(5)
    assert model.plan("f") is None
