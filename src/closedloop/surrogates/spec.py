"""What the hybrid surrogate is made of: every switch and size needed to rebuild it before loading
its weights (a checkpoint stores :meth:`SurrogateSpec.to_dict`)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

VARIANTS = ("hybrid", "markovian", "data_only", "physics_only")


@dataclass(frozen=True)
class SurrogateSpec:
    """Everything needed to rebuild the model before loading a state dict."""

    shape: tuple[int, int]
    spacing: tuple[float, float]
    output_interval: float
    initial_diffusivity: float
    hidden_channels: int = 8
    use_closure: bool = True  # False is the physics_only variant (kept for old checkpoints)
    learn_diffusivity: bool = True
    variant: str = "hybrid"
    closure: str = "convgru"  # or "encoder_lstm" (encoder → stacked ConvLSTM → decoder → head)
    closure_layers: int = 2
    advection: str = "upwind"  # or "tvd"
    learn_velocity_correction: bool = False
    learn_sink: bool = False  # the vertical-exchange term −λ c̄
    initial_sink: float = 0.0  # λ₀ (1/s), e.g. the air-exchange rate Q/V
    vertical_outflow: bool = False  # remove c̄ where the flow leaves the band vertically (Forcing.outflow)
    closure_form: str = "additive"  # c̄ + s·M, or "multiplicative": c̄·(1 + g tanh M)
    closure_gain: float = 1.0  # g: the multiplicative closure's largest change per output interval
    closure_scale: str = "peak"  # the additive correction's scale: S̄_max Δt, or "mixed": ⟨S̄⟩ Δt
    closure_context: bool = False  # ConvGRU gates also see the plane mean of [inputs, memory]
    memory_gate: bool = False  # hybrid ConvGRU carries γ·h, γ = clamp(k θ_γ, 0, 1) learned, starting at 0
    room_layers: bool = False  # carry the room below and above the band (Forcing.layers)
    layer_heights: tuple[float, float, float] = (0.0, 0.0, 0.0)  # h_lo, h_band, h_hi (m)
    fidelity_levels: int = 1  # > 1: cases of several fidelities (Forcing.fidelity), predicted at the top

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant: {self.variant!r} is not one of {VARIANTS}")
        if self.closure not in ("convgru", "encoder_lstm"):
            raise ValueError(f"closure: {self.closure!r} is not 'convgru' or 'encoder_lstm'")
        if self.closure_form not in ("additive", "multiplicative"):
            raise ValueError(f"closure_form: {self.closure_form!r} is not 'additive' or 'multiplicative'")
        if self.closure_scale not in ("peak", "mixed"):
            raise ValueError(f"closure_scale: {self.closure_scale!r} is not 'peak' or 'mixed'")
        if self.advection not in ("upwind", "tvd"):
            raise ValueError(f"advection: {self.advection!r} is not 'upwind' or 'tvd'")
        if self.variant == "data_only" and not self.use_closure:
            raise ValueError("variant: 'data_only' needs a closure (use_closure = true)")
        if not (self.initial_sink >= 0 and math.isfinite(self.initial_sink)):
            raise ValueError(f"initial_sink: must be a finite rate ≥ 0 (1/s), got {self.initial_sink}")
        if not (0 < self.closure_gain <= 1):
            raise ValueError(f"closure_gain: must be in (0, 1], got {self.closure_gain}")
        if self.memory_gate and (self.variant != "hybrid" or self.closure != "convgru" or not self.use_closure):
            raise ValueError("memory_gate: only the hybrid variant's ConvGRU closure carries memory to gate")
        if self.fidelity_levels < 1:
            raise ValueError(f"fidelity_levels: must be ≥ 1, got {self.fidelity_levels}")
        if self.room_layers:
            if len(self.layer_heights) != 3 or not all(h > 0 and math.isfinite(h) for h in self.layer_heights):
                raise ValueError(f"layer_heights: room_layers needs three heights > 0 (m), got {self.layer_heights}")
            if self.vertical_outflow:
                raise ValueError("vertical_outflow: room_layers already carries the band's vertical exchange; "
                                 "use one or the other")

    @property
    def effective_variant(self) -> str:
        return "physics_only" if not self.use_closure else self.variant

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"], d["spacing"], d["layer_heights"] = list(self.shape), list(self.spacing), list(self.layer_heights)
        if self.fidelity_levels == 1:  # checkpoints written before fidelities existed stay byte-identical
            del d["fidelity_levels"]
        return d

    @staticmethod
    def from_dict(d: dict) -> SurrogateSpec:
        heights = tuple(d.get("layer_heights", (0.0, 0.0, 0.0)))
        return SurrogateSpec(**{**d, "shape": tuple(d["shape"]), "spacing": tuple(d["spacing"]),
                                "layer_heights": heights})
