"""``no_interrupts`` and ``raise_interrupt`` with real signals sent to this very process.

Every test installs recording handlers (never Python's default SIGINT handler, so a leaked signal cannot
abort the pytest session); the ``handlers`` fixture and ``conftest.restore_signal_handlers`` put pytest's
own handlers back afterwards.

Proving that a signal was *not* delivered without sleeping: after the signal under test, a marker
(SIGUSR1, recorded too) is sent, and the test waits with a deadline until the marker's handler ran. The
kernel delivers pending standard signals lowest number first and CPython runs the Python handlers of
tripped signals in ascending number order, so a SIGINT (2) or SIGTERM (15) sent before the marker (10)
that was not ignored would have been handled by the time the marker's handler ran, or in the same batch
(``test_the_marker_method_sees_a_signal_that_is_not_ignored`` checks that).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest

from harness.runtime.signals import no_interrupts, raise_interrupt

MARKER = signal.SIGUSR1
CHILD_TIMEOUT_S = 30.0
DELIVERY_TIMEOUT_S = 10.0


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DELIVERY_TIMEOUT_S) -> None:
    """Poll ``predicate`` until true or the deadline; ``time.sleep`` is interrupted by signals, whose
    Python handlers run before it resumes (PEP 475)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.001)


def handler_of(sig: int) -> object:
    """The handler installed for ``sig`` (typed ``object``: an identity check must not narrow the other
    side's type)."""
    return signal.getsignal(sig)


class Recorder:
    """A signal handler that records what it received, in order."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)

    def count(self, signum: int) -> int:
        return self.received.count(signum)


@pytest.fixture
def handlers() -> Iterator[Recorder]:
    """SIGINT, SIGTERM and the marker go to one recorder; every previous handler is restored after."""
    recorder = Recorder()
    sigs = (signal.SIGINT, signal.SIGTERM, MARKER)
    saved = {sig: signal.signal(sig, recorder) for sig in sigs}
    try:
        yield recorder
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def send_then_marker(recorder: Recorder, *sigs: int) -> None:
    """Send ``sigs`` to this process, then the marker, and wait until the marker was handled."""
    markers = recorder.count(MARKER)
    for sig in sigs:
        os.kill(os.getpid(), sig)
    os.kill(os.getpid(), MARKER)
    wait_for(lambda: recorder.count(MARKER) > markers, "the marker signal to be handled")


def test_the_marker_method_sees_a_signal_that_is_not_ignored(handlers: Recorder) -> None:
    send_then_marker(handlers, signal.SIGINT, signal.SIGTERM)
    assert handlers.count(signal.SIGINT) == 1
    assert handlers.count(signal.SIGTERM) == 1


def test_block_ignores_sigint_and_sigterm_then_restores_the_handlers(handlers: Recorder) -> None:
    with no_interrupts():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert handler_of(MARKER) is handlers, "other signals are left alone"
        send_then_marker(handlers, signal.SIGINT, signal.SIGTERM)
        assert handlers.received == [MARKER], "SIGINT/SIGTERM reached a handler inside the block"
    assert handler_of(signal.SIGINT) is handlers
    assert handler_of(signal.SIGTERM) is handlers
    # An ignored signal is discarded, not held back: nothing arrives once the handlers are back ...
    send_then_marker(handlers)
    assert handlers.received == [MARKER, MARKER]
    # ... and the restored handlers work again.
    send_then_marker(handlers, signal.SIGINT)
    assert handlers.received == [MARKER, MARKER, signal.SIGINT, MARKER]


def test_a_second_ctrl_c_does_not_cut_the_block_short(handlers: Recorder) -> None:
    """The cleanup case: Python's own SIGINT handler would raise KeyboardInterrupt inside the block."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    steps: list[str] = []
    try:
        with no_interrupts():
            steps.append("removal started")
            send_then_marker(handlers, signal.SIGINT)
            send_then_marker(handlers, signal.SIGINT)  # the impatient second Ctrl-C
            steps.append("removal finished")
    except KeyboardInterrupt:  # a test failure, not an interrupted pytest session
        pytest.fail(f"SIGINT interrupted the block after {steps}")
    assert steps == ["removal started", "removal finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, handlers)  # before any further signal: never KeyboardInterrupt pytest


def test_handlers_are_restored_after_an_exception(handlers: Recorder) -> None:
    with pytest.raises(RuntimeError, match="removal failed"), no_interrupts():
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        raise RuntimeError("removal failed")
    assert handler_of(signal.SIGINT) is handlers
    assert handler_of(signal.SIGTERM) is handlers
    send_then_marker(handlers, signal.SIGTERM)
    assert handlers.received == [signal.SIGTERM, MARKER]


def test_nested_blocks_restore_the_outer_state(handlers: Recorder) -> None:
    with no_interrupts():
        with no_interrupts():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "the outer block still ignores"
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    assert handler_of(signal.SIGINT) is handlers
    assert handler_of(signal.SIGTERM) is handlers


def test_children_started_in_the_block_inherit_the_ignore(handlers: Recorder) -> None:
    probe = (
        "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "
        "signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)"
    )
    with no_interrupts():
        inside = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=True
        )
    outside = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=True
    )
    assert inside.stdout.split() == ["True", "True"]
    assert outside.stdout.split() == ["False", "False"]


def test_off_the_main_thread_it_does_nothing(handlers: Recorder) -> None:
    seen: dict[str, Any] = {}

    def worker() -> None:
        try:
            with no_interrupts():
                seen["inside"] = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
            seen["after"] = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
        except BaseException as exc:  # signal.signal() off the main thread raises ValueError
            seen["error"] = exc

    thread = threading.Thread(target=worker, name="not-main")
    thread.start()
    thread.join(timeout=DELIVERY_TIMEOUT_S)
    assert not thread.is_alive()
    assert "error" not in seen, seen.get("error")
    assert seen["inside"] == (handlers, handlers), "the block changed handlers from another thread"
    assert seen["after"] == (handlers, handlers)
    # and the process still reacts to SIGINT: nothing was ignored behind the main thread's back
    send_then_marker(handlers, signal.SIGINT)
    assert handlers.received == [signal.SIGINT, MARKER]


def test_raise_interrupt_raises_keyboard_interrupt() -> None:
    with pytest.raises(KeyboardInterrupt):
        raise_interrupt(signal.SIGTERM, None)


def test_sigterm_with_raise_interrupt_unwinds_like_ctrl_c(handlers: Recorder) -> None:
    signal.signal(signal.SIGTERM, raise_interrupt)
    cleaned_up: list[bool] = []
    with pytest.raises(KeyboardInterrupt):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            wait_for(lambda: False, "SIGTERM to raise KeyboardInterrupt")  # interrupted by the signal
        finally:
            cleaned_up.append(True)
    assert cleaned_up == [True], "the finally block ran"


def test_raise_interrupt_is_held_off_inside_the_block(handlers: Recorder) -> None:
    """``harness.cli`` installs ``raise_interrupt`` for SIGTERM; a cleanup under ``no_interrupts`` is not
    unwound by it, and afterwards SIGTERM unwinds again."""
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        with no_interrupts():
            send_then_marker(handlers, signal.SIGTERM)
    except KeyboardInterrupt:
        pytest.fail("SIGTERM unwound the block")
    assert signal.getsignal(signal.SIGTERM) is raise_interrupt
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: False, "SIGTERM to raise KeyboardInterrupt after the block")
