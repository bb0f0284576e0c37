"""Exponential integrator for linear diffusion: c(t) = exp(t L) c₀ by a Chebyshev expansion.

A benchmark scheme (bench/reference_peer.py), not part of the library: see ``peer_schemes``.

L is the finite-volume operator c ↦ ∇·(D∇c) (``diffuse``). With uniform cells it is symmetric and
negative semi-definite, so its spectrum is real and lies in [−ρ, 0], where Gershgorin's theorem on
row i (diagonal −λ_i, off-diagonals D_f/h² summing to λ_i, λ_i from ``outflow_coefficient``) gives

    ρ = 2 max_i λ_i,   λ_i = Σ_a (D_{i−1/2} + D_{i+1/2}) / h_a².

Walls and solids carry D = 0 on their faces, so they only shrink λ_i. Mapping the interval onto
[−1, 1], L = (ρ/2)(X − I), and the generating function of the modified Bessel functions give

    exp(t L) = e^{−a} exp(a X) = Σ_k α_k T_k(X),   a = ρt/2,  α₀ = e^{−a}I₀(a),  α_k = 2e^{−a}I_k(a).

All α_k > 0 and Σ α_k = e^{−a}e^{a} = 1. Truncating after degree N leaves |p(z) − e^{tz}| ≤ the tail
Σ_{k>N} α_k on the whole interval; the kept coefficients are then rescaled to sum to 1 exactly, which
at most doubles that error and makes p(0) = 1: a uniform field stays uniform (L·1 = 0) and, because
L's columns sum to zero (1ᵀL = 0, flux form), 1ᵀ p(L) c = p(0) 1ᵀc, so total mass is conserved to
round-off. The degree is the smallest N with tail ≤ tol/2, which grows like √(2a ln(1/tol)): one
long step costs far fewer operator evaluations than explicit steps (≈ a at the Euler limit).

p(X)c is summed by Clenshaw's recurrence, one operator evaluation per degree:

    b_{N+1} = b_{N+2} = 0,  b_k = α_k c + 2X b_{k+1} − b_{k+2}  (k = N..1),  p(X)c = α₀ c + X b₁ − b₂,

with X b = b + (2/ρ) L b. Each update is one fusable stage (``clenshaw_stage``, compiled through
``physics.kernels``). The spectral bound assumes a symmetric L: non-uniform cell volumes (still
similar to a symmetric matrix, bound still valid) are fine, advection (non-normal) is not covered.

Positivity: exp(tL) maps non-negative fields to non-negative ones (L is an M-matrix generator); the
truncated series is only guaranteed to within the tolerance (its monomial coefficients have mixed
signs). With ρ from Gershgorin, X = I + (2/ρ)L is entrywise non-negative, and on a uniform 1D lattice
T_k(X)δ_i = (δ_{i+k} + δ_{i−k})/2 ≥ 0; no undershoot has been seen on puffs in rooms with solids and
variable D (tests/bench/test_bench_exponential.py) nor on the peer benchmark (bench/reference_peer.py).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import torch

from closedloop.physics.equations import outflow_coefficient
from closedloop.physics.grids import Grid

Rate = Callable[[torch.Tensor], torch.Tensor]
Stage = Callable[..., torch.Tensor]


def spectral_bound(diffusivities: Sequence[torch.Tensor], grid: Grid) -> float:
    """Gershgorin bound ρ ≥ max |eigenvalue| of the diffusion operator: 2 max_i λ_i."""
    return 2.0 * float(outflow_coefficient(None, diffusivities, grid).detach().max().item())


@lru_cache(maxsize=256)
def _scaled_bessel(a: float) -> tuple[float, ...]:
    """α_k = (2 − δ_k0) e^{−a} I_k(a) for k = 0..K (Miller's backward recurrence, normalised by Σα = 1)."""
    if a == 0.0:
        return (1.0,)
    start = int(a + 12 * math.sqrt(a) + 60)  # I_k(a)/I₀(a) < 1e-30 well before this
    vals = [0.0] * (start + 2)
    vals[start] = 1.0
    for k in range(start, 0, -1):  # I_{k−1} = I_{k+1} + (2k/a) I_k
        vals[k - 1] = vals[k + 1] + (2 * k / a) * vals[k]
        if vals[k - 1] > 1e200:  # rescale: only the ratios matter
            for j in range(k - 1, start + 1):
                vals[j] *= 1e-200
    total = vals[0] + 2 * sum(vals[1:])
    return tuple([vals[0] / total] + [2 * v / total for v in vals[1:start + 1]])


def chebyshev_coefficients(a: float, tol: float = 1e-8) -> tuple[float, ...]:
    """Coefficients α₀..α_N of exp(a(x − 1)) on [−1, 1], N the fewest with sup error ≤ ``tol``.

    ``a`` = ρt/2. The kept coefficients are rescaled to sum to 1 (p(0) = 1 on the operator's scale).
    """
    if not a >= 0 or not math.isfinite(a):
        raise ValueError(f"chebyshev_coefficients: a must be finite and non-negative, got {a}")
    if not 0 < tol < 1:
        raise ValueError(f"chebyshev_coefficients: tol must lie in (0, 1), got {tol}")
    alpha = _scaled_bessel(float(a))
    tail, n = 0.0, len(alpha) - 1
    while n > 0 and tail + alpha[n] <= tol / 2:
        tail += alpha[n]
        n -= 1
    kept = alpha[:n + 1]
    s = math.fsum(kept)
    return tuple(x / s for x in kept)


def chebyshev_degree(rho: float, t: float, tol: float = 1e-8) -> int:
    """Operator evaluations needed for exp(t L) c with spectrum in [−ρ, 0] to ``tol``."""
    return len(chebyshev_coefficients(rho * t / 2, tol)) - 1


def clenshaw_stage(rate: Rate) -> Stage:
    """The fusable Clenshaw update out = α c + β b₁ + γ L b₁ − b₂.

    Interior steps use β = 2, γ = 4/ρ (α_k c + 2X b₁ − b₂); the last uses β = 1, γ = 2/ρ
    (α₀ c + X b₁ − b₂). Pass α, β, γ as 0-d tensors when compiled (``physics.kernels``).
    """
    def stage(b1: torch.Tensor, b2: torch.Tensor, c: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
              gamma: torch.Tensor) -> torch.Tensor:
        return alpha * c + beta * b1 + gamma * rate(b1) - b2

    return stage


def clenshaw_block(rate: Rate, unroll: int) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``unroll`` interior Clenshaw updates in one call: (b₁, b₂) ↦ (b_{k−u+1}, b_{k−u+2}).

    ``block(b1, b2, c, alphas, gamma)`` with ``alphas`` a 1-d tensor (α_k, α_{k−1}, ...) and γ = 4/ρ.
    Compiled, one call replaces ``unroll`` kernel launches: on small grids the per-call overhead of a
    compiled function, not arithmetic, dominates.
    """
    def block(b1: torch.Tensor, b2: torch.Tensor, c: torch.Tensor, alphas: torch.Tensor,
              gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for i in range(unroll):
            b1, b2 = alphas[i] * c + 2 * b1 + gamma * rate(b1) - b2, b1
        return b1, b2

    return block


def chebyshev_expm(rate: Rate, c: torch.Tensor, t: float, rho: float, tol: float = 1e-8,
                   stage: Stage | None = None, block: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
                   unroll: int = 1) -> torch.Tensor:
    """exp(t L) c for a linear ``rate`` c ↦ L c with spectrum in [−ρ, 0] (``spectral_bound``).

    Costs ``chebyshev_degree(rho, t, tol)`` evaluations of ``rate``. ``stage`` may be a compiled
    ``clenshaw_stage(rate)``; ``block`` a compiled ``clenshaw_block(rate, unroll)`` used for runs of
    ``unroll`` interior updates (same arithmetic, fewer calls).
    """
    if not (t >= 0 and rho >= 0):
        raise ValueError(f"chebyshev_expm: t and rho must be non-negative, got {t}, {rho}")
    alpha = chebyshev_coefficients(rho * t / 2, tol)
    n = len(alpha) - 1
    if n == 0:
        return c * alpha[0]
    stage = stage if stage is not None else clenshaw_stage(rate)
    sc = _scalars(alpha, rho, unroll if block is not None else 1, c.dtype, c.device)
    b2, b1 = torch.zeros_like(c), c * alpha[n]
    k = n - 1
    if block is not None and unroll > 1:
        while k - unroll + 1 >= 1:
            b1, b2 = block(b1, b2, c, sc["blocks"][k], sc["inner"])
            k -= unroll
    for j in range(k, 0, -1):
        b2, b1 = b1, stage(b1, b2, c, sc["alpha"][j], sc["two"], sc["inner"])
    return stage(b1, b2, c, sc["alpha"][0], sc["one"], sc["last"])


_SCALARS: dict[tuple, dict] = {}


def _scalars(alpha: tuple[float, ...], rho: float, unroll: int, dtype: torch.dtype, device: torch.device) -> dict:
    """Coefficients as tensors (a compiled stage is not recompiled per value), cached."""
    key = (alpha, rho, unroll, dtype, str(device), torch.is_inference_mode_enabled())
    out = _SCALARS.get(key)
    if out is None:
        if len(_SCALARS) > 64:
            _SCALARS.clear()
        as_t = lambda x: torch.tensor(x, dtype=dtype, device=device)  # noqa: E731
        n = len(alpha) - 1
        out = {"alpha": [as_t(x) for x in alpha], "two": as_t(2.0), "one": as_t(1.0),
               "inner": as_t(4.0 / rho), "last": as_t(2.0 / rho),
               "blocks": {k: as_t([alpha[k - i] for i in range(unroll)]) for k in range(unroll, n)}}
        _SCALARS[key] = out
    return out
