"""Super-time-stepping for stiff diffusion: the second-order Runge–Kutta–Legendre scheme (RKL2).

A benchmark scheme (bench/reference_peer.py), not part of the library: see ``peer_schemes``.

Explicit diffusion must keep Δt ≤ Δt_E ∝ h²/D (``stable_time_step``), however slowly the solution
changes. RKL2 (Meyer, Balsara & Aslam 2014) spends s evaluations of the rate M per step, chains them
through the Legendre three-term recurrence and is stable for τ ≤ Δt_E (s² + s − 2)/4: the step
grows like s², the work like s, so a step long enough for the accuracy wanted costs far fewer
evaluations than explicit Euler/Heun at Δt_E. Second order in τ for smooth solutions.

With b₀ = b₁ = b₂ = 1/3, b_j = (j² + j − 2)/(2j(j + 1)), a_j = 1 − b_j, w₁ = 4/(s² + s − 2):

    Y₀ = cⁿ,   Y₁ = Y₀ + μ̃₁ τ M(Y₀),   μ̃₁ = b₁ w₁,
    Y_j = μ_j Y_{j−1} + ν_j Y_{j−2} + (1 − μ_j − ν_j) Y₀ + μ̃_j τ M(Y_{j−1}) + γ̃_j τ M(Y₀),  j = 2..s,
    μ_j = (2j − 1) b_j / (j b_{j−1}),  ν_j = −(j − 1) b_j / (j b_{j−2}),  μ̃_j = μ_j w₁,  γ̃_j = −a_{j−1} μ̃_j,
    cⁿ⁺¹ = Y_s.

Every stage is a linear combination of Y₀ and rates M(·), so a conservative M (flux form, closed
walls) keeps the total mass to round-off. The stability polynomial a_s + b_s P_s(1 + w₁ z) stays in
[0, 1] on the whole stability interval, so no eigenmode is amplified or flips sign; pointwise
positivity, unlike forward Euler's, is not guaranteed by construction (tests/bench check it on
puffs at the stability limit).

For speed the stage update fuses into one kernel (``rkl2_stage``, compiled by ``physics.kernels``),
so a stage reads Y_{j−1}, Y_{j−2}, Y₀ and M(Y₀) once and writes Y_j once.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import torch

Rate = Callable[[torch.Tensor], torch.Tensor]
Stage = Callable[..., torch.Tensor]


def rkl2_stages(dt: float, dt_explicit: float, min_stages: int = 2) -> int:
    """Fewest stages s ≥ ``min_stages`` with τ = ``dt`` ≤ ``dt_explicit``·(s² + s − 2)/4.

    ``dt_explicit`` is a forward-Euler limit such as ``stable_time_step(..., safety=1)``; the
    positivity limit 1/max λ is at most the Euler stability limit 2/ρ(M) (Gershgorin), so it is safe.
    """
    if not (dt > 0 and dt_explicit > 0):
        raise ValueError(f"rkl2_stages: dt and dt_explicit must be positive, got {dt}, {dt_explicit}")
    ratio = dt / dt_explicit
    s = max(2, min_stages, math.ceil((-1 + math.sqrt(9 + 16 * ratio)) / 2 - 1e-12))
    while (s * s + s - 2) / 4 < ratio:
        s += 1
    return s


@lru_cache(maxsize=64)
def rkl2_coefficients(stages: int) -> tuple[tuple[float, float, float, float], ...]:
    """(μ_j, ν_j, μ̃_j, γ̃_j) for j = 1..s (j = 1: (1, 0, μ̃₁, 0))."""
    s = stages
    if s < 2:
        raise ValueError(f"RKL2 needs at least 2 stages, got {s}")
    w1 = 4.0 / (s * s + s - 2)
    b = [1 / 3, 1 / 3, 1 / 3] + [(j * j + j - 2) / (2 * j * (j + 1)) for j in range(3, s + 1)]
    out = [(1.0, 0.0, b[1] * w1, 0.0)]
    for j in range(2, s + 1):
        mu = (2 * j - 1) / j * b[j] / b[j - 1]
        nu = -(j - 1) / j * b[j] / b[j - 2]
        mut = mu * w1
        out.append((mu, nu, mut, -(1 - b[j - 1]) * mut))
    return tuple(out)


def rkl2_stage(rate: Rate) -> Stage:
    """The fusable stage Y_j = μ Y_{j−1} + ν Y_{j−2} + (1 − μ − ν) Y₀ + μ̃τ M(Y_{j−1}) + γ̃τ M(Y₀).

    Returns ``stage(y1, y2, y0, m0, mu, nu, mut_dt, gt_dt)``; pass the scalars as 0-d tensors when
    the stage is compiled (see ``physics.kernels``).
    """
    def stage(y1: torch.Tensor, y2: torch.Tensor, y0: torch.Tensor, m0: torch.Tensor, mu: torch.Tensor,
              nu: torch.Tensor, mut_dt: torch.Tensor, gt_dt: torch.Tensor) -> torch.Tensor:
        return mu * y1 + nu * y2 + (1 - mu - nu) * y0 + mut_dt * rate(y1) + gt_dt * m0

    return stage


def rkl2(rate: Rate, c: torch.Tensor, dt: float, stages: int, stage: Stage | None = None,
         first: Stage | None = None) -> torch.Tensor:
    """One RKL2 step of length ``dt`` with ``stages`` evaluations of ``rate``.

    ``stage`` (default ``rkl2_stage(rate)``) and ``first`` (default: ``rate``; a callable returning
    M(Y₀)) may be compiled versions of the same functions.
    """
    coeffs = rkl2_coefficients(stages)
    stage = stage if stage is not None else rkl2_stage(rate)
    m0 = (first if first is not None else rate)(c)
    y2, y1 = c, c + coeffs[0][2] * dt * m0
    for args in _stage_scalars(stages, dt, c.dtype, c.device):
        y2, y1 = y1, stage(y1, y2, c, m0, *args)
    return y1


_SCALARS: dict[tuple, list[tuple[torch.Tensor, ...]]] = {}


def _stage_scalars(stages: int, dt: float, dtype: torch.dtype, device: torch.device) -> list[tuple[torch.Tensor, ...]]:
    """Stage coefficients as 0-d tensors (no recompiles of a compiled stage), built once per (s, Δt)."""
    key = (stages, float(dt), dtype, str(device), torch.is_inference_mode_enabled())
    out = _SCALARS.get(key)
    if out is None:
        if len(_SCALARS) > 256:
            _SCALARS.clear()
        as_t = lambda x: torch.tensor(x, dtype=dtype, device=device)  # noqa: E731
        out = [(as_t(mu), as_t(nu), as_t(mut * dt), as_t(gt * dt)) for mu, nu, mut, gt in rkl2_coefficients(stages)[1:]]
        _SCALARS[key] = out
    return out
