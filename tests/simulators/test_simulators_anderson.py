"""Anderson acceleration: the first step is the plain iterate, a linear fixed point is reached in far fewer
iterations than by plain iteration, the carried quantity is mixed like the iterate, and a residual jump
restarts the history."""
from __future__ import annotations

import torch

from closedloop.simulators.anderson import Anderson

F64 = torch.float64


def linear_map(seed: int = 0):
    """G(x) = M x + b on a pair of 3-vectors, spectral radius 0.95: plain iteration converges slowly."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=F64))
    m = q @ torch.diag(torch.linspace(-0.95, 0.95, 6, dtype=F64)) @ q.T
    b = torch.randn(6, generator=gen, dtype=F64)
    fixed = torch.linalg.solve(torch.eye(6, dtype=F64) - m, b)

    def g(x: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        y = m @ torch.cat(x) + b
        return y[:3], y[3:]

    return g, (fixed[:3], fixed[3:])


def iterations(g, fixed, accelerate: Anderson | None, tol: float = 1e-10, most: int = 2000) -> int:
    x = (torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64))
    for n in range(most):
        if (torch.cat(x) - torch.cat(fixed)).norm() < tol:
            return n
        gx = g(x)
        x = gx if accelerate is None else accelerate(x, gx, torch.zeros((), dtype=F64))[0]
    return most


def test_a_linear_fixed_point_is_reached_in_a_few_steps():
    g, fixed = linear_map()
    plain = iterations(g, fixed, None)
    fast = iterations(g, fixed, Anderson(depth=6))
    assert plain > 300 and fast < 20, (plain, fast)


def test_the_first_step_is_plain_and_the_carry_is_mixed_like_the_iterate():
    g, _ = linear_map(1)
    acc = Anderson(depth=3)
    x = (torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64))
    carry = lambda v: v[0].sum() + 2.0 * v[1].sum()  # noqa: E731 - linear in the iterate
    gx = g(x)
    out, mixed = acc(x, gx, carry(gx))
    assert all(torch.equal(a, b) for a, b in zip(out, gx)) and torch.equal(mixed, carry(gx))
    for _ in range(3):
        x = out
        gx = g(x)
        out, mixed = acc(x, gx, carry(gx))
        assert torch.allclose(mixed, carry(out), rtol=1e-12, atol=1e-12)
    assert len(acc.df) == 3  # the history is capped at depth


def test_a_residual_jump_restarts_the_history():
    g, _ = linear_map(2)
    acc = Anderson(depth=4, restart_growth=10.0)
    x = (torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64))
    for _ in range(3):
        x = acc(x, g(x), torch.zeros((), dtype=F64))[0]
    assert len(acc.df) == 2
    far = (x[0] + 1e6, x[1])
    out, _ = acc(far, g(far), torch.zeros((), dtype=F64))
    assert acc.df == [] and all(torch.equal(a, b) for a, b in zip(out, g(far)))  # plain step after the restart
