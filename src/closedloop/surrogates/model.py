"""The hybrid surrogate of the plane (after Xue et al., arXiv 2511.21369).

Over each output interval Δt the plane field is advanced by

    c̄ ← c̄ + ∫ [−∇·((ū + δu) c̄) + ∇·(D ∇c̄) − λ c̄ + S̄] dt   (k explicit FV substeps, physics/)
    c̄ ← max(0, c̄ + s · M_θ(c̄, S̄, ū, D, mask; h)),  h ← memory(·, h)   (non-Markovian closure)
    or, with ``closure_form = "multiplicative"``, c̄ ← c̄ · (1 + g tanh M_θ): bounded per step (a factor
    in (1 − g, 1 + g), g = ``closure_gain`` ≤ 1), positive, zero where c̄ is zero (solids, clean air),
    so it cannot create mass from nothing. Applied every output interval, the factors compound over
    a rollout: a small g keeps an untrained or partly trained closure from swamping the physics

with learnable orthotropic face diffusivities D_x, D_y = softplus(θ) ⊙ open-face mask (≥ 0, zero
at walls and pillars, so the geometry is carried by the mask), an optional learnable velocity
correction δu (zero at start, masked), an optional learnable exchange rate λ(x, y) = λ₀ exp(θ_λ) ≥ 0
(the band-mean equation's unresolved vertical fluxes through the band's top and bottom, closed as a
first-order relaxation −λ c̄; initialised at the room's air-exchange rate Q/V) with a learnable
retention η = exp(θ_η) of the emission in the band (η S̄ in place of S̄: the share that is not
carried out of the band at once; one scalar, so it transfers to unseen source positions), and s the per-case
scale S̄_max Δt, which makes the closure equivariant to the emission rate like the equation itself.
With ``closure_scale = "mixed"`` the additive correction is scaled by s_m = ⟨S̄⟩ Δt instead (⟨·⟩ the
mean over fluid cells: the increment per interval of a well-mixed band), hundreds of times smaller than
S̄_max Δt for a concentrated source: the size of what comes back far from the source, where a correction scaled by
the peak would need outputs of 10⁻⁴ (the inputs keep the peak scale).

With ``room_layers`` the state also holds the layer means below and above the band, advanced by
their own layer-mean flow and exchanging with the band through its bottom and top
(surrogates/layers.py): what leaves the band comes back elsewhere, as in the room. The band, c̄,
is what the model predicts; the closure sees the layers as two more input channels.

With ``memory_gate`` the hybrid's ConvGRU carries γ·h between intervals instead of h, γ = clamp(k θ_γ, 0, 1)
a learned scalar that starts at 0 (k = 20, so that Adam's steps of about the learning rate in θ_γ can
open the gate within a few epochs): the model starts as the Markovian closure exactly (warm-started
from a trained one) and takes in as much memory as training on the data finds useful.

Variants (``SurrogateSpec.variant``): ``hybrid`` (physics + memory closure), ``markovian``
(closure without memory: its state is reset every step), ``data_only`` (no physics step: the
closure alone advances c̄), ``physics_only`` (no closure; learned D and δu only).

Across fidelities (``fidelity_levels`` L > 1): a case of level s ∈ [0, 1] (``Forcing.fidelity``, top = 1,
None = top) is modelled with D_s = softplus(θ_D + θ_f (1 − s)) (a learned shift of the diffusivity
below the top level, e.g. a coarse level's numerical diffusion) and the closure sees 1 − s as one more
channel, so cheap cases teach the shared physics and the model predicts the top level at s = 1.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from closedloop.physics import Grid, advect_upwind, diffuse, open_faces, stable_time_step
from closedloop.physics import advect_tvd
from closedloop.physics.kernels import Kernel
from closedloop.surrogates.closure import ConvGRUClosure, EncoderLSTMClosure
from closedloop.surrogates.forcing import Forcing
from closedloop.surrogates.layers import exchange_matrix, solve_exchange
from closedloop.surrogates.spec import VARIANTS, SurrogateSpec  # noqa: F401 - SurrogateSpec re-exported

N_CLOSURE_INPUTS = 7  # c/s, S/S_max, u_x, u_y (cell-centred), D_x, D_y (cell-centred, / D₀), mask
# (+ 1 with vertical_outflow: the outflow rate × Δt; + 2 with room_layers: c_lo/s, c_hi/s)
MEMORY_GATE_SCALE = 20.0  # k in γ = clamp(k θ_γ, 0, 1)
PHYSICS_PARAMETERS = ("raw_dx", "raw_dy", "dux", "duy", "log_sink", "log_retention", "log_layer_diffusivity",
                      "fidelity_shift")  # fields of the physics step


def layered_substep(c: torch.Tensor, velocity: tuple, diffusivity: tuple, opens: tuple, mask: torch.Tensor,
                    src: torch.Tensor, lam: torch.Tensor, matrix: tuple, dt: torch.Tensor | float, grid: Grid,
                    tvd: bool) -> torch.Tensor:
    """One substep of the layered state (B, 3, nx, ny): explicit horizontal transport of the three
    layers at once, the band's sink −λc̄ and source, then the implicit vertical exchange."""
    adv = advect_tvd(c, velocity, grid, opens) if tvd else advect_upwind(c, velocity, grid)
    rate = (adv + diffuse(c, diffusivity, grid)) * mask
    band = rate[:, 1] - lam * c[:, 1] * mask[:, 1] + src
    c = c + dt * torch.stack([rate[:, 0], band, rate[:, 2]], dim=1)
    return torch.stack(solve_exchange(*c.unbind(1), matrix), dim=1)


def inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class HybridSurrogate(nn.Module):
    def __init__(self, spec: SurrogateSpec, mask: torch.Tensor):
        super().__init__()
        if tuple(mask.shape) != tuple(spec.shape):
            raise ValueError(f"mask shape {tuple(mask.shape)} != spec.shape {spec.shape}")
        self.spec = spec
        self.grid = Grid(shape=tuple(spec.shape), spacing=tuple(spec.spacing))
        self.register_buffer("mask", mask.to(torch.float32))
        for axis, name in enumerate(("x", "y")):
            self.register_buffer(f"open_{name}", open_faces(mask.bool(), self.grid, axis).to(torch.float32))
            raw = torch.full(self.grid.face_shape(axis), inverse_softplus(spec.initial_diffusivity))
            self.register_parameter(f"raw_d{name}", nn.Parameter(raw, requires_grad=spec.learn_diffusivity))
        if spec.learn_velocity_correction:
            for axis, name in enumerate(("x", "y")):
                self.register_parameter(f"du{name}", nn.Parameter(torch.zeros(self.grid.face_shape(axis))))
        if spec.learn_sink:
            # log-space: Adam's steps change λ by a factor, whatever its magnitude
            self.register_parameter("log_sink", nn.Parameter(torch.zeros(tuple(spec.shape))))
            self.register_parameter("log_retention", nn.Parameter(torch.zeros(())))
        if spec.room_layers:  # one factor per layer on its eddy diffusivity
            self.register_parameter("log_layer_diffusivity", nn.Parameter(torch.zeros(2)))
        if spec.fidelity_levels > 1:  # θ_f: the diffusivity's shift below the top level
            self.register_parameter("fidelity_shift", nn.Parameter(torch.zeros(())))
        self._fused_substep: Kernel | None = None
        self._fused_training = False
        variant = spec.effective_variant
        n_inputs = N_CLOSURE_INPUTS + (1 if spec.vertical_outflow else 0) + (2 if spec.room_layers else 0) \
            + (1 if spec.fidelity_levels > 1 else 0)
        self.closure: nn.Module | None = None
        if variant != "physics_only":
            if spec.closure == "convgru":
                self.closure = ConvGRUClosure(n_inputs, spec.hidden_channels, global_context=spec.closure_context)
                if spec.memory_gate:  # θ_γ = 0: no memory until training finds it useful
                    self.register_parameter("memory_logit", nn.Parameter(torch.zeros(())))
            else:
                self.closure = EncoderLSTMClosure(n_inputs, spec.hidden_channels, spec.closure_layers,
                                                  memory=variant != "markovian")

    # --------------------------------------------------------------------------- physics
    def below_top(self, forcing: Forcing | None) -> torch.Tensor | None:
        """1 − s per case (B,), or None at the top level (no levels, or ``forcing.fidelity`` unset)."""
        if self.spec.fidelity_levels <= 1 or forcing is None or forcing.fidelity is None:
            return None
        return 1.0 - forcing.fidelity

    def diffusivities(self, forcing: Forcing | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Face diffusivities D_x, D_y ≥ 0, zero on closed faces; (B, faces) for cases below the top level."""
        rx, ry = self.raw_dx, self.raw_dy
        below = self.below_top(forcing)
        if below is not None:
            shift = (self.fidelity_shift * below.to(rx.dtype))[:, None, None]
            rx, ry = rx + shift, ry + shift
        return (F.softplus(rx) * self.open_x, F.softplus(ry) * self.open_y)

    def sink(self) -> torch.Tensor | None:
        """The exchange rate λ ≥ 0 per cell (1/s), or None without the term."""
        if not self.spec.learn_sink:
            return None
        return max(self.spec.initial_sink, 1e-6) * torch.exp(self.log_sink) * self.mask

    def sink_rate(self, forcing: Forcing) -> torch.Tensor | None:
        """λ (learned) plus the known vertical outflow rate when enabled: (nx, ny) or (B, nx, ny)."""
        lam = self.sink()
        if self.spec.vertical_outflow:
            if forcing.outflow is None:
                raise ValueError("vertical_outflow: the model needs Forcing.outflow (surrogates.coupling provides it)")
            lam = forcing.outflow if lam is None else lam + forcing.outflow
        return lam

    def velocity(self, forcing: Forcing) -> tuple[torch.Tensor, torch.Tensor]:
        """ū, plus the learned correction δu on interior open faces when enabled."""
        if not self.spec.learn_velocity_correction:
            return forcing.velocity
        return (forcing.velocity[0] + self.dux * self.open_x, forcing.velocity[1] + self.duy * self.open_y)

    def substeps(self, forcing: Forcing) -> int:
        if self.spec.effective_variant == "data_only":
            return 0
        d = self.diffusivities(forcing)
        vel = tuple(u.detach() for u in self.velocity(forcing))
        dt = stable_time_step(vel, tuple(x.detach() for x in d), self.grid, safety=0.9,
                              advection_factor=2.0 if self.spec.advection == "tvd" else 1.0)
        factor = 2.0 if self.spec.advection == "tvd" else 1.0
        lam = self.sink_rate(forcing)
        if lam is not None:  # the sink adds λ to the diagonal: 1 − Δt(Σ rates + λ) ≥ 0 keeps c ≥ 0
            dt = 1.0 / (1.0 / dt + 0.9 * lam.detach().max().item())
        if self.spec.room_layers:
            layers = self.require_layers(forcing)
            for j, scale in enumerate(self.layer_diffusivity_scale().detach().tolist()):
                vel_j, d_j, _ = layers.layer(j)
                dt_j = stable_time_step(vel_j, tuple(x * scale for x in d_j), self.grid, safety=0.9,
                                        advection_factor=factor)
                dt = min(dt, dt_j)
        return max(1, math.ceil(self.spec.output_interval / dt))

    def require_layers(self, forcing: Forcing):
        if forcing.layers is None:
            raise ValueError("room_layers: the model needs Forcing.layers (surrogates.coupling provides it)")
        return forcing.layers

    def layer_diffusivity_scale(self) -> torch.Tensor:
        """The learned factors on the layers' eddy diffusivities, (2,) for [below, above]."""
        return torch.exp(self.log_layer_diffusivity)

    def transport(self, c: torch.Tensor, velocity, diffusivities, opens) -> torch.Tensor:
        """−∇·(u c) + ∇·(D∇c) of one 2D layer."""
        if self.spec.advection == "tvd":
            adv = advect_tvd(c, velocity, self.grid, opens)
        else:
            adv = advect_upwind(c, velocity, self.grid)
        return adv + diffuse(c, diffusivities, self.grid)

    def layered_fields(self, forcing: Forcing, dtype: torch.dtype) -> tuple:
        """Velocities, face diffusivities, open-face masks and cell masks of [c_lo, c̄, c_hi], stacked
        as (B, 3, …) so that one transport call advances all three layers."""
        layers = self.require_layers(forcing)
        b = forcing.batch_size
        scale = self.layer_diffusivity_scale().to(dtype)

        def stack(lo, band, hi):
            return torch.stack([lo.to(dtype), band.to(dtype).expand_as(lo), hi.to(dtype)], dim=1)

        vel = self.velocity(forcing)
        d = self.diffusivities(forcing)
        opens = (self.open_x, self.open_y)
        velocity = tuple(stack(u[:, 0], ub, u[:, 1]) for u, ub in zip((layers.ux, layers.uy), vel))
        diffusivity = tuple(stack(x[:, 0] * scale[0], db, x[:, 1] * scale[1]) for x, db in zip((layers.dx, layers.dy), d))
        open_masks = tuple(stack((x[:, 0] > 0), ob, (x[:, 1] > 0)) for x, ob in zip((layers.dx, layers.dy), opens))
        mask = stack(layers.mask[:, 0], self.mask.expand(b, -1, -1), layers.mask[:, 1])
        return velocity, diffusivity, open_masks, mask

    def physics_interval(self, c: torch.Tensor, forcing: Forcing, t0: float, k: int) -> torch.Tensor:
        """Advance c over one output interval with k forward-Euler FV substeps.

        A windowed source is switched by the substep's midpoint time; a source series
        (``forcing.source_series``) is held at its interval mean S̄_n, n = round(t0 / Δt).
        With room layers ``c`` is the layered state (B, 3, nx, ny).
        """
        d = self.diffusivities(forcing)
        vel = self.velocity(forcing)
        lam = self.sink_rate(forcing)
        dt = self.spec.output_interval / k
        mask = self.mask.to(c.dtype)
        start, stop = forcing.window[:, 0], forcing.window[:, 1]
        opens = (self.open_x.to(c.dtype), self.open_y.to(c.dtype))
        series = None
        if forcing.source_series is not None:
            series = forcing.source_pattern(round(t0 / self.spec.output_interval))
        retention = torch.exp(self.log_retention).to(c.dtype) if self.spec.learn_sink else None
        if lam is not None:
            lam = lam.to(c.dtype)
        layers = self.require_layers(forcing) if self.spec.room_layers else None
        if layers is not None:
            vel, d, opens, mask = self.layered_fields(forcing, c.dtype)
            matrix = exchange_matrix(layers, self.spec.layer_heights, dt, c.dtype)
            lam_band = torch.zeros((), dtype=c.dtype, device=c.device) if lam is None else lam
            fused = self._fused_substep is not None and (self._fused_training or not torch.is_grad_enabled())
            substep = self._fused_substep if fused else layered_substep
            # Δt as a tensor: a Python number would be a constant of the compiled graph, compiled again
            # for every batch whose stable substep differs (until dynamo's limit, then eager)
            dt_step = torch.tensor(dt, dtype=c.dtype, device=c.device)
        for j in range(k):
            if series is None:
                t_mid = t0 + (j + 0.5) * dt
                on = ((start <= t_mid) & (t_mid < stop)).to(c.dtype)[:, None, None]
                src = on * forcing.source
            else:
                src = series
            if retention is not None:
                src = src * retention
            if layers is None:
                rate = self.transport(c, vel, d, opens)
                if lam is not None:
                    rate = rate - lam * c
                c = c + dt * (rate * mask + src)
                continue
            c = substep(c, vel, d, opens, mask, src, lam_band, matrix, dt_step, self.grid, self.spec.advection == "tvd")
        return c

    def compile_physics(self, enabled: bool | None = True, *, training: bool = False) -> Kernel:
        """Fuse the layered substep into one compiled kernel (physics.kernels) for inference, and with
        ``training`` under autograd too (inductor builds the backward as well; measured 3.4× on a hall
        segment's forward + backward, bench/results/training_profile.json). Returns the kernel, which
        says whether it compiled (eager otherwise, same numbers)."""
        self._fused_substep = Kernel(layered_substep, enabled=enabled)
        self._fused_training = training
        return self._fused_substep

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """The band c̄ (B, nx, ny) of a model state (the state itself without room layers)."""
        return state[:, 1] if self.spec.room_layers else state

    # --------------------------------------------------------------------------- closure
    def closure_inputs(self, c: torch.Tensor, forcing: Forcing, scale: torch.Tensor, n: int = 0,
                       layers: torch.Tensor | None = None) -> torch.Tensor:
        """The closure's input channels during output interval ``n`` (``layers``: the layered state)."""
        ux, uy = forcing.velocity
        ux_c = 0.5 * (ux[:, 1:, :] + ux[:, :-1, :])
        uy_c = 0.5 * (uy[:, :, 1:] + uy[:, :, :-1])
        src = forcing.source_pattern(n) / forcing.source_peak().clamp_min(1e-30)[:, None, None]
        mask = self.mask.to(c.dtype).expand_as(c)
        dx, dy = self.diffusivities(forcing)
        d0 = self.spec.initial_diffusivity
        dx_c = (0.5 * (dx[..., 1:, :] + dx[..., :-1, :]) / d0).to(c.dtype).expand_as(c)
        dy_c = (0.5 * (dy[..., 1:] + dy[..., :-1]) / d0).to(c.dtype).expand_as(c)
        channels = [c / scale, src, ux_c, uy_c, dx_c, dy_c, mask]
        if self.spec.fidelity_levels > 1:
            below = self.below_top(forcing)
            channels.append(torch.zeros_like(c) if below is None else below.to(c.dtype)[:, None, None].expand_as(c))
        if self.spec.vertical_outflow:
            assert forcing.outflow is not None
            channels.append(forcing.outflow * self.spec.output_interval)
        if layers is not None:
            channels += [layers[:, 0] / scale, layers[:, 2] / scale]
        return torch.stack(channels, dim=1)

    def scale(self, forcing: Forcing) -> torch.Tensor:
        """Per-case concentration scale s = max S̄ · Δt, shape (B, 1, 1)."""
        return (forcing.source_peak() * self.spec.output_interval).clamp_min(1e-30)[:, None, None]

    def memory_fraction(self) -> torch.Tensor:
        """γ = clamp(k θ_γ, 0, 1): the share of the memory h carried to the next interval (memory_gate)."""
        return (MEMORY_GATE_SCALE * self.memory_logit).clamp(0.0, 1.0)

    def correction_scale(self, forcing: Forcing, peak: torch.Tensor) -> torch.Tensor:
        """The additive closure's scale (B, 1, 1): ``peak`` (s = S̄_max Δt, from ``scale``), or with
        ``closure_scale = "mixed"`` s_m = ⟨S̄⟩ Δt, the fluid-cell mean of the (time-mean) source density × Δt."""
        if self.spec.closure_scale == "peak":
            return peak
        mask = self.mask.to(forcing.source.dtype)
        mean = (forcing.source * mask).sum(dim=(-2, -1)) / mask.sum().clamp_min(1.0)
        return (mean * self.spec.output_interval).clamp_min(1e-30)[:, None, None]

    # --------------------------------------------------------------------------- rollout
    def initial_state(self, forcing: Forcing, dtype: torch.dtype, device: torch.device
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        layers = (3,) if self.spec.room_layers else ()
        c = torch.zeros(forcing.batch_size, *layers, *self.spec.shape, dtype=dtype, device=device)
        h = None
        if isinstance(self.closure, EncoderLSTMClosure):
            h = torch.zeros(forcing.batch_size, *self.closure.state_shape(*self.spec.shape), dtype=dtype, device=device)
        elif self.closure is not None:
            h = torch.zeros(forcing.batch_size, self.closure.hidden_channels, *self.spec.shape,
                            dtype=dtype, device=device)
        return c, h

    def step(self, c: torch.Tensor, h: torch.Tensor | None, forcing: Forcing, t0: float, k: int
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One output interval: physics substeps, then the memory closure's correction.

        ``c`` is the model state (see ``observe``); the closure corrects the band."""
        if k > 0:
            c = self.physics_interval(c, forcing, t0, k)
        if self.closure is not None:
            state = c if self.spec.room_layers else None
            c = self.observe(c)
            assert h is not None
            s = self.scale(forcing)
            if self.spec.effective_variant == "markovian" and isinstance(self.closure, ConvGRUClosure):
                h = torch.zeros_like(h)  # no memory: the closure sees the present only
            elif self.spec.memory_gate:
                h = self.memory_fraction().to(h.dtype) * h
            n = round(t0 / self.spec.output_interval)
            correction, h = self.closure(self.closure_inputs(c, forcing, s, n, state), h)
            if self.spec.closure_form == "multiplicative":
                c = c * (1 + self.spec.closure_gain * torch.tanh(correction)) * self.mask.to(c.dtype)
            else:
                c = c + self.correction_scale(forcing, s).to(c.dtype) * correction * self.mask.to(c.dtype)
                # concentrations stay ≥ 0; straight-through, so an undershooting closure still learns
                c = c + (c.clamp_min(0) - c).detach()
            if state is not None:
                c = torch.stack([state[:, 0], c, state[:, 2]], dim=1)
        return c, h

    def rollout(self, forcing: Forcing, n_steps: int, substeps: int | None = None) -> torch.Tensor:
        """Predict (B, n_steps + 1, nx, ny) starting from c̄ = 0 at t = 0; ``substeps`` per output interval
        (default: the stable count of this batch, :meth:`substeps`)."""
        dtype = forcing.source.dtype
        c, h = self.initial_state(forcing, dtype, forcing.source.device)
        k = self.substeps(forcing) if substeps is None else substeps
        out = [self.observe(c)]
        for n in range(n_steps):
            c, h = self.step(c, h, forcing, n * self.spec.output_interval, k)
            out.append(self.observe(c))
        return torch.stack(out, dim=1)
