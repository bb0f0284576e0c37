"""physics.kernels: the compile switch and its eager fallback; compiled CPU kernels run on one thread and
the caller's thread count comes back."""
from __future__ import annotations

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
