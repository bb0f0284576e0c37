"""physics.kernels.single_thread: compiled CPU kernels run on one thread, the caller's count comes back."""
from __future__ import annotations

import pytest
import torch

from closedloop.physics.kernels import single_thread


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
