"""The memory closure (ConvGRU): causal, remembers earlier inputs, the global context reaches far cells, and
a zero head adds nothing."""
from __future__ import annotations

import torch

from closedloop.surrogates.closure import ConvGRUClosure


def test_closure_correction_depends_on_earlier_inputs():
    torch.manual_seed(1)
    cl = ConvGRUClosure(5, 4).double()
    with torch.no_grad():
        cl.head.weight.normal_(0, 0.3)
    xs = [torch.randn(1, 5, 6, 5, dtype=torch.float64) for _ in range(4)]

    def run(seq):
        h = cl.initial_state(seq[0])
        outs = []
        for x in seq:
            corr, h = cl(x, h)
            outs.append(corr)
        return outs, h

    with torch.no_grad():
        base, _ = run(xs)
        changed, _ = run([xs[0] + 1.0] + xs[1:])
        fresh, _ = cl(xs[-1], cl.initial_state(xs[-1]))
    assert base[-1].shape == (1, 6, 5)
    assert torch.equal(base[0], run(xs[:1])[0][0])  # causal: step 0 sees only step 0
    # the last correction remembers the first input
    assert (base[-1] - changed[-1]).abs().max() > 1e-6
    # a fresh hidden state forgets the history
    assert (base[-1] - fresh).abs().max() > 1e-6


def test_global_context_lets_a_far_change_reach_the_memory_in_one_step():
    """A 3 × 3 ConvGRU cannot see a change 10 cells away within one step; with the global context
    (the plane mean of its inputs and memory) it can."""
    torch.manual_seed(2)
    x = torch.randn(1, 5, 12, 6, dtype=torch.float64)
    far = x.clone()
    far[0, :, 11, 5] += 3.0  # a change at the far corner
    for context, reaches in ((False, False), (True, True)):
        cl = ConvGRUClosure(5, 4, global_context=context).double()
        with torch.no_grad():
            cl.head.weight.normal_(0, 0.3)
            h0 = cl.initial_state(x)
            a, ha = cl(x, h0)
            b, hb = cl(far, h0)
        moved = (ha[0, :, 0, 0] - hb[0, :, 0, 0]).abs().max() > 1e-9
        assert bool(moved) == reaches


def test_zero_head_closure_adds_nothing_whatever_the_input():
    cl = ConvGRUClosure(5, 3).double()
    x = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    h = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    corr, h_new = cl(x, h)
    assert torch.count_nonzero(corr) == 0
    assert not torch.equal(h_new, h)  # but the memory is updated
