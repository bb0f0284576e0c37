"""physics.kernels: the compile switch and its eager fallback; compiled CPU kernels run on one thread and
the caller's thread count comes back."""
from __future__ import annotations

import threading

import pytest
import torch

from closedloop.physics.kernels import Kernel, compile_enabled, single_thread


def test_kernel_switch_and_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSEDLOOP_COMPILE", "off")
    assert compile_enabled() is False and compile_enabled(True) is True
    monkeypatch.setenv("CLOSEDLOOP_COMPILE", "1")
    assert compile_enabled() is True
    monkeypatch.setenv("CLOSEDLOOP_COMPILE", "maybe")
    with pytest.raises(ValueError):
        compile_enabled()
    eager = Kernel(lambda x: 2 * x, enabled=False)
    assert not eager.compiled and eager.fallback_reason == "disabled"
    assert torch.equal(eager(torch.ones(3)), 2 * torch.ones(3)) and eager.first_call_seconds is not None


def test_single_thread_pins_and_restores_even_on_error() -> None:
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with single_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError):
            with single_thread():
                raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
        with single_thread(False):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


def test_overlapping_pins_from_two_threads_restore_the_count_once_both_leave() -> None:
    """Two simulations in threads, each pinned, ending in the other order than they began: the
    process gets its thread count back only when the last leaves (never stays on one thread)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    first_in, second_in, first_may_leave = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def first() -> None:
        with single_thread():
            first_in.set()
            second_in.wait(10)
            first_may_leave.wait(10)
        seen["after_first"] = torch.get_num_threads()

    def second() -> None:
        first_in.wait(10)
        with single_thread():
            second_in.set()
            first_may_leave.set()
            t_first.join(10)
            seen["second_alone"] = torch.get_num_threads()
    try:
        t_first, t_second = threading.Thread(target=first), threading.Thread(target=second)
        t_first.start(); t_second.start(); t_second.join(20)
        assert seen == {"after_first": 1, "second_alone": 1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)
