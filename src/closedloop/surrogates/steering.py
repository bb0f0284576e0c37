"""Activation steering (after Fear et al., arXiv 2511.20798), for any torch module.

Record the activations of named submodules for cases of regime A and regime B; the concept
direction of a layer is Δ = mean(A) − mean(B). Steering adds it back during inference,

    out' = out + α · Δ · ‖out‖ / ‖Δ‖,

so α is a strength relative to the activation's own size: α > 0 pushes toward the concept,
α < 0 away, α = 0 (or Δ = 0) leaves the model untouched. Norms are taken per sample and, for
``reduce="space_mean"`` directions on feature maps, per spatial location (over channels), like
the paper's per-token norms; ``reduce="field"`` keeps Δ as a full (C, H, W) map.

No Prefect here; works on any nn.Module (our closure or a user's model).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

Reduce = Literal["space_mean", "field"]


def _first_tensor(out: Any) -> torch.Tensor:
    """The tensor a hook steers: the output itself, or the first element of a tuple output."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"cannot steer a module output of type {type(out).__name__}")


def _replace_first(out: Any, new: torch.Tensor) -> Any:
    if isinstance(out, torch.Tensor):
        return new
    return type(out)([new, *out[1:]])


def _reduce(act: torch.Tensor, reduce: Reduce) -> torch.Tensor:
    """(B, C, *space) → (B, C) for space_mean; unchanged for field."""
    if reduce == "field" or act.ndim <= 2:
        return act
    return act.mean(dim=tuple(range(2, act.ndim)))


def submodule(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; an unknown name lists the valid ones."""
    modules = dict(model.named_modules())
    if name not in modules:
        raise KeyError(f"layer {name!r} not found; layers: {sorted(k for k in modules if k)}")
    return modules[name]


@contextlib.contextmanager
def record_activations(model: nn.Module, layers: Sequence[str], reduce: Reduce = "space_mean"
                       ) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Collect the (reduced, detached) outputs of ``layers`` for every forward call inside the block.

    ``with record_activations(model, ["closure.candidate"]) as acts: model.rollout(...)`` gives
    ``acts["closure.candidate"]`` = one (B, C[, H, W]) tensor per call (per rollout step).
    Hooks are removed on exit, also when the block raises.
    """
    store: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    handles = []
    try:
        for name in layers:
            mod = submodule(model, name)

            def hook(_m: nn.Module, _inp: Any, out: Any, name: str = name) -> None:
                store[name].append(_reduce(_first_tensor(out).detach(), reduce))

            handles.append(mod.register_forward_hook(hook))
        yield store
    finally:
        for h in handles:
            h.remove()


@dataclass
class ConceptDirection:
    """Δ = mean(A) − mean(B) at one layer, with its provenance and a bootstrap spread."""

    layer: str
    delta: torch.Tensor  # (C,) for space_mean, (C, H, W) for field
    reduce: Reduce
    n_a: int
    n_b: int
    bootstrap_norm_std: float  # spread of ‖Δ‖ over bootstrap resamples of the two groups
    bootstrap_cosine: float  # mean cosine between bootstrap Δs and Δ (1: a stable direction)
    checkpoint_id: str | None = None
    concept: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def norm(self) -> float:
        return float(self.delta.norm())

    def to_dict(self) -> dict:
        """A torch.save-able dict (weights_only-loadable: tensors and plain types only)."""
        return {"layer": self.layer, "delta": self.delta, "reduce": self.reduce, "n_a": self.n_a, "n_b": self.n_b,
                "bootstrap_norm_std": self.bootstrap_norm_std, "bootstrap_cosine": self.bootstrap_cosine,
                "checkpoint_id": self.checkpoint_id, "concept": self.concept, "meta": self.meta}

    @staticmethod
    def from_dict(d: dict) -> ConceptDirection:
        return ConceptDirection(**d)


def random_direction(direction: ConceptDirection, seed: int) -> ConceptDirection:
    """A control: a direction of the same layer, shape and norm as ``direction``, pointing at random."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(direction.delta.shape, generator=g, dtype=torch.float64).to(direction.delta.dtype)
    delta = r * (direction.norm / max(float(r.norm()), 1e-300))
    return ConceptDirection(layer=direction.layer, delta=delta, reduce=direction.reduce, n_a=direction.n_a,
                            n_b=direction.n_b, bootstrap_norm_std=0.0, bootstrap_cosine=0.0,
                            checkpoint_id=direction.checkpoint_id, concept=f"random({direction.concept})",
                            meta={"control": "random direction", "seed": seed})


def directions_payload(directions: Sequence[ConceptDirection], checkpoint_id: str) -> dict:
    """What to save (``torch.save``, weights_only-loadable): the directions and their checkpoint."""
    if not checkpoint_id:
        raise ValueError("checkpoint_id: a concept direction is saved with the checkpoint it was measured on")
    for d in directions:
        if d.checkpoint_id not in (None, checkpoint_id):
            raise ValueError(f"direction {d.concept!r} at {d.layer}: measured on checkpoint {d.checkpoint_id}, "
                             f"not {checkpoint_id}")
    return {"checkpoint_id": checkpoint_id,
            "directions": [{**d.to_dict(), "checkpoint_id": checkpoint_id} for d in directions]}


def directions_from_payload(payload: dict, checkpoint_id: str) -> list[ConceptDirection]:
    """Directions saved by :func:`directions_payload`; refused for any other checkpoint (the
    activations of a retrained model live in another basis, so an old Δ means nothing there)."""
    if payload.get("checkpoint_id") != checkpoint_id:
        raise ValueError(f"checkpoint_id: these directions belong to checkpoint {payload.get('checkpoint_id')}, "
                         f"not to {checkpoint_id}; measure them again on this model")
    return [ConceptDirection.from_dict(d) for d in payload["directions"]]


def case_activations(recorded: list[torch.Tensor]) -> torch.Tensor:
    """Average a layer's per-step activations over the rollout: list of (B, ...) → (B, ...)."""
    if not recorded:
        raise ValueError("no activations were recorded; did the model call that layer?")
    return torch.stack(recorded).mean(dim=0)


def concept_direction(acts_a: torch.Tensor, acts_b: torch.Tensor, layer: str, reduce: Reduce = "space_mean",
                      n_bootstrap: int = 200, seed: int = 0, **meta: Any) -> ConceptDirection:
    """Δ from per-case activations of groups A (n_a, ...) and B (n_b, ...), with a bootstrap."""
    if acts_a.shape[1:] != acts_b.shape[1:]:
        raise ValueError(f"groups have different activation shapes {tuple(acts_a.shape[1:])} and "
                         f"{tuple(acts_b.shape[1:])}")
    if acts_a.shape[0] < 1 or acts_b.shape[0] < 1:
        raise ValueError("each group needs at least one case")
    delta = acts_a.mean(0) - acts_b.mean(0)
    g = torch.Generator().manual_seed(seed)
    norms, cosines = [], []
    for _ in range(n_bootstrap):
        ia = torch.randint(acts_a.shape[0], (acts_a.shape[0],), generator=g)
        ib = torch.randint(acts_b.shape[0], (acts_b.shape[0],), generator=g)
        d = acts_a[ia].mean(0) - acts_b[ib].mean(0)
        norms.append(float(d.norm()))
        denom = float(d.norm() * delta.norm())
        cosines.append(float((d * delta).sum()) / denom if denom > 0 else 0.0)
    std = float(torch.tensor(norms).std()) if n_bootstrap > 1 else 0.0
    cos = float(torch.tensor(cosines).mean()) if n_bootstrap else 1.0
    return ConceptDirection(layer=layer, delta=delta, reduce=reduce, n_a=acts_a.shape[0], n_b=acts_b.shape[0],
                            bootstrap_norm_std=std, bootstrap_cosine=cos, meta=dict(meta))


def steering_term(out: torch.Tensor, direction: ConceptDirection, alpha: float) -> torch.Tensor:
    """α · Δ · ‖out‖ / ‖Δ‖ shaped like ``out`` (B, C, *space) or (B, C)."""
    delta = direction.delta.to(dtype=out.dtype, device=out.device)
    dn = delta.norm()
    if alpha == 0 or float(dn) == 0:
        return torch.zeros_like(out)
    if direction.reduce == "field" or out.ndim <= 2:
        if tuple(delta.shape) != tuple(out.shape[1:]):
            raise ValueError(f"direction for {direction.layer} has shape {tuple(delta.shape)}, "
                             f"the layer outputs {tuple(out.shape[1:])}")
        scale = out.flatten(1).norm(dim=1).reshape(-1, *([1] * (out.ndim - 1)))
        return alpha * scale * delta / dn
    if delta.shape[0] != out.shape[1]:
        raise ValueError(f"direction for {direction.layer} has {delta.shape[0]} channels, the layer {out.shape[1]}")
    shape = (1, -1) + (1,) * (out.ndim - 2)
    local = out.norm(dim=1, keepdim=True)  # ‖h‖ per sample and location, over channels
    return alpha * local * delta.reshape(shape) / dn


@contextlib.contextmanager
def steer(model: nn.Module, directions: ConceptDirection | Iterable[ConceptDirection], alpha: float,
          steps: Iterable[int] | None = None) -> Iterator[dict[str, int]]:
    """Inject α·Δ·‖out‖/‖Δ‖ at each direction's layer during the block.

    ``steps``: the forward-call indices of each layer (rollout steps, from 0) to steer; None =
    all. Yields a dict counting the calls seen per layer. Hooks are always removed on exit.
    """
    dirs = [directions] if isinstance(directions, ConceptDirection) else list(directions)
    if not math.isfinite(alpha):
        raise ValueError(f"alpha must be finite, got {alpha}")
    window = None if steps is None else set(steps)
    calls: dict[str, int] = {d.layer: 0 for d in dirs}
    handles = []
    try:
        for d in dirs:
            mod = submodule(model, d.layer)

            def hook(_m: nn.Module, _inp: Any, out: Any, d: ConceptDirection = d) -> Any:
                k = calls[d.layer]
                calls[d.layer] = k + 1
                if window is not None and k not in window:
                    return None
                t = _first_tensor(out)
                return _replace_first(out, t + steering_term(t, d, alpha))

            handles.append(mod.register_forward_hook(hook))
        yield calls
    finally:
        for h in handles:
            h.remove()


# ------------------------------------------------------------------------------ effect measures
def effect_measures(series: torch.Tensor, spacing: tuple[float, float], mask: torch.Tensor | None = None,
                    target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Quantities a steering experiment moves, from plane series (B, T, nx, ny), t = 0 first.

    mass (final Σc·A), peak (final max), peak_x/peak_y (m), centroid_x/centroid_y (final, m),
    centroid_drift (m, from the first non-empty frame to the final one), spread (final second
    moment about the centroid, m²), decay_rate (−d log mass/dt over the last half, 1/s per
    frame), distance (relative L2 to ``target`` over all times, when given).
    """
    b, t, nx, ny = series.shape
    hx, hy = spacing
    x = (torch.arange(nx, dtype=series.dtype) + 0.5) * hx
    y = (torch.arange(ny, dtype=series.dtype) + 0.5) * hy
    c = series.clamp(min=0)
    if mask is not None:
        c = c * mask.to(c.dtype)
    mass_t = c.sum(dim=(-2, -1)) * hx * hy
    safe = mass_t.clamp_min(1e-300)
    cx_t = (c.sum(-1) * x).sum(-1) * hx * hy / safe
    cy_t = (c.sum(-2) * y).sum(-1) * hx * hy / safe
    final = c[:, -1]
    r2 = (x[:, None] - cx_t[:, -1, None, None]) ** 2 + (y[None, :] - cy_t[:, -1, None, None]) ** 2
    spread = (final * r2).sum(dim=(-2, -1)) * hx * hy / safe[:, -1]
    first = torch.argmax((mass_t > 0).to(torch.int64), dim=1)
    idx = torch.arange(b)
    drift = torch.sqrt((cx_t[:, -1] - cx_t[idx, first]) ** 2 + (cy_t[:, -1] - cy_t[idx, first]) ** 2)
    flat = final.flatten(1).argmax(1)
    half = max(1, t // 2)
    logm = torch.log(mass_t[:, half:].clamp_min(1e-300))
    steps_ = torch.arange(logm.shape[1], dtype=series.dtype)
    steps_ = steps_ - steps_.mean()
    slope = ((logm - logm.mean(1, keepdim=True)) * steps_).sum(1) / (steps_ ** 2).sum().clamp_min(1e-300)
    out = {"mass": mass_t[:, -1], "peak": final.flatten(1).amax(1), "peak_x": x[flat // ny], "peak_y": y[flat % ny],
           "centroid_x": cx_t[:, -1], "centroid_y": cy_t[:, -1], "centroid_drift": drift, "spread": spread,
           "decay_rate": -slope}
    if target is not None:
        out["distance"] = (series - target).flatten(1).norm(dim=1) / target.flatten(1).norm(dim=1).clamp_min(1e-300)
    return out


def dose_response(run: Callable[[], torch.Tensor], model: nn.Module, direction: ConceptDirection,
                  alphas: Sequence[float], measure: Callable[[torch.Tensor], dict[str, torch.Tensor]],
                  steps: Iterable[int] | None = None) -> dict[str, torch.Tensor]:
    """Each measure as a function of α: {name: (len(alphas), B)}; ``run`` returns a prediction."""
    rows: dict[str, list[torch.Tensor]] = {}
    for a in alphas:
        with torch.no_grad(), steer(model, direction, a, steps):
            m = measure(run())
        for k, v in m.items():
            rows.setdefault(k, []).append(v)
    return {k: torch.stack(v) for k, v in rows.items()}


def specificity(response: dict[str, torch.Tensor], target: str) -> dict[str, float]:
    """How much each non-target measure moves per unit movement of the target measure.

    Ratio of relative ranges (max − min)/|mean| across α; small values: a specific direction.
    """
    def rel_range(v: torch.Tensor) -> float:
        m = v.mean(dim=1)
        return float((m.max() - m.min()) / m.abs().mean().clamp_min(1e-300))

    base = max(rel_range(response[target]), 1e-300)
    return {k: rel_range(v) / base for k, v in response.items() if k != target}


def response_slope(response: dict[str, torch.Tensor], alphas: Sequence[float], measure: str) -> float:
    """Least-squares slope d(mean measure)/dα of a dose-response (the effect per unit strength)."""
    a = torch.as_tensor(list(alphas), dtype=torch.float64)
    m = response[measure].to(torch.float64).mean(dim=1)
    a0 = a - a.mean()
    return float((a0 * (m - m.mean())).sum() / (a0 ** 2).sum().clamp_min(1e-300))


def transfer(responses: dict[str, dict[str, torch.Tensor]], alphas: Sequence[float], measure: str,
             source: str) -> dict[str, float]:
    """Transfer of a direction to other scenario families: each family's dose-response slope of
    ``measure`` over that of the ``source`` family (1: the same effect, 0: none, < 0: reversed)."""
    if source not in responses:
        raise KeyError(f"source family {source!r} not among {sorted(responses)}")
    base = response_slope(responses[source], alphas, measure)
    if base == 0:
        raise ValueError(f"{measure} does not move with alpha in the source family {source!r}")
    return {fam: response_slope(r, alphas, measure) / base for fam, r in responses.items()}
