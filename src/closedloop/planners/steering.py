"""Steering-experiment design: BoTorch chooses (layer, α, step window) to maximise agreement.

A steering experiment injects a concept direction (surrogates/steering.py) into one layer with
strength α during rollout steps [first_step, first_step + window) of a base case. Its design
space, in natural units, is the box

    alpha ∈ [α_min, α_max]            continuous
    layer ∈ {0 … L−1}                 integer: index into the candidate layers
    first_step ∈ {0 … T−1}            integer
    window ∈ {1 … T}                  integer: steered steps (clipped at the rollout's end)

Integers are relaxed to the box [k_min − ½, k_max + ½] for the GP and the acquisition, and
snapped to the nearest integer before an experiment is run (and before it is recorded, so the GP
sees what was run). The objective y (e.g. agreement with the target regime's reference
simulation) is modelled by the campaign's GP (``fit_error_model``: SingleTaskGP, float64,
Normalize/Standardize) and the next q experiments maximise its qUCB (``propose_batch``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from closedloop.planners.acquisition import propose_batch
from closedloop.planners.design import DesignSpace, round_seed, sobol_design
from closedloop.planners.gp import fit_error_model

PARAMETERS = ("alpha", "layer", "first_step", "window")


@dataclass(frozen=True)
class SteeringExperiment:
    """One point of the design space, snapped: what to steer, how strongly and when."""

    alpha: float
    layer: int  # index into the candidate layers
    first_step: int
    window: int

    def steps(self, n_steps: int) -> range:
        """The rollout steps steered (forward-call indices of the layer), clipped to the rollout."""
        return range(self.first_step, min(self.first_step + self.window, n_steps))


@dataclass(frozen=True)
class SteeringSpace:
    """The experiment box for ``n_layers`` candidate layers and rollouts of ``n_steps`` steps."""

    n_layers: int
    n_steps: int
    alpha_min: float = -2.0
    alpha_max: float = 2.0

    def __post_init__(self) -> None:
        if self.n_layers < 1:
            raise ValueError(f"n_layers: need at least one candidate layer, got {self.n_layers}")
        if self.n_steps < 1:
            raise ValueError(f"n_steps: need at least one rollout step, got {self.n_steps}")
        if not (torch.isfinite(torch.tensor([self.alpha_min, self.alpha_max])).all()
                and self.alpha_min < self.alpha_max):
            raise ValueError(f"alpha_min/alpha_max: need finite alpha_min < alpha_max, got "
                             f"[{self.alpha_min}, {self.alpha_max}]")

    def design_space(self) -> DesignSpace:
        """The relaxed box BoTorch works in (integers widened by ½ on each side)."""
        return DesignSpace(PARAMETERS, (self.alpha_min, -0.5, -0.5, 0.5),
                           (self.alpha_max, self.n_layers - 0.5, self.n_steps - 0.5, self.n_steps + 0.5))

    def snap(self, x: torch.Tensor) -> torch.Tensor:
        """Round the integer columns of ``x`` (n x 4) to valid values; α clamped to its bounds."""
        x = x.to(torch.float64).clone()
        x[:, 0] = x[:, 0].clamp(self.alpha_min, self.alpha_max)
        x[:, 1] = x[:, 1].round().clamp(0, self.n_layers - 1)
        x[:, 2] = x[:, 2].round().clamp(0, self.n_steps - 1)
        x[:, 3] = x[:, 3].round().clamp(1, self.n_steps)
        return x

    def experiments(self, x: torch.Tensor) -> list[SteeringExperiment]:
        return [SteeringExperiment(alpha=float(r[0]), layer=int(r[1]), first_step=int(r[2]), window=int(r[3]))
                for r in self.snap(x)]

    def as_tensor(self, experiments: Sequence[SteeringExperiment]) -> torch.Tensor:
        return torch.tensor([[e.alpha, e.layer, e.first_step, e.window] for e in experiments],
                            dtype=torch.float64).reshape(-1, 4)


def initial_experiments(space: SteeringSpace, n: int, seed: int) -> list[SteeringExperiment]:
    """A scrambled Sobol design over the box, snapped."""
    return space.experiments(sobol_design(space.design_space(), n, seed=seed))


def propose_experiments(space: SteeringSpace, done: Sequence[SteeringExperiment], y: torch.Tensor, q: int,
                        seed: int, beta: float = 2.0, num_restarts: int = 4, raw_samples: int = 128,
                        mc_samples: int = 64) -> list[SteeringExperiment]:
    """The next ``q`` experiments: qUCB of a GP fitted to the objective ``y`` of those ``done``.

    Proposals that snap onto an experiment already run (or onto each other) are replaced by
    the best-scoring Sobol point that does not, so no evaluation is wasted on a repeat.
    """
    if len(done) != y.numel():
        raise ValueError(f"y: {y.numel()} values for {len(done)} experiments")
    box = space.design_space()
    x_done = space.as_tensor(done)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        gp = fit_error_model(box, x_done, y)
        x = propose_batch(gp, box, q, seed=seed, beta=beta, num_restarts=num_restarts, raw_samples=raw_samples,
                          mc_samples=mc_samples, existing=x_done)
    seen = {tuple(r.tolist()) for r in x_done}
    out: list[SteeringExperiment] = []
    pool = None
    for row in space.snap(x):
        key = tuple(row.tolist())
        if key in seen:
            if pool is None:  # unseen snapped points of a Sobol pool, ranked by the GP's UCB
                cand = space.snap(sobol_design(box, 512, seed=seed + 1))
                with torch.no_grad():
                    post = gp.posterior(cand)
                    ucb = post.mean.squeeze(-1) + beta ** 0.5 * post.variance.clamp_min(0).sqrt().squeeze(-1)
                pool = [cand[i] for i in ucb.argsort(descending=True)]
            row = next((p for p in pool if tuple(p.tolist()) not in seen), None)
            if row is None:
                break  # every experiment of the box has been run
            key = tuple(row.tolist())
        seen.add(key)
        out.append(space.experiments(row[None])[0])
    return out


@dataclass
class SteeringSearch:
    """The experiments run by :func:`optimise_steering`, in order, with their objective values."""

    experiments: list[SteeringExperiment]
    values: torch.Tensor  # (n,)
    strategies: list[str]  # "sobol" or "gp" per experiment

    @property
    def best(self) -> SteeringExperiment:
        return self.experiments[int(self.values.argmax())]


def optimise_steering(objective: Callable[[list[SteeringExperiment]], torch.Tensor], space: SteeringSpace,
                      n_initial: int = 6, rounds: int = 4, q: int = 2, seed: int = 0,
                      beta: float = 2.0) -> SteeringSearch:
    """Sobol start, then ``rounds`` batches of ``q`` GP-chosen experiments; maximises ``objective``.

    ``objective`` maps a list of experiments to their values (n,), higher is better; non-finite
    values are refused (the caller decides what a failed experiment is worth).
    """
    if n_initial < 2:
        raise ValueError(f"n_initial: the GP needs at least 2 initial experiments, got {n_initial}")
    done = initial_experiments(space, n_initial, seed)
    values = _checked(objective(done), len(done))
    strategies = ["sobol"] * len(done)
    for r in range(rounds):
        batch = propose_experiments(space, done, values, q, seed=round_seed(seed, r + 1), beta=beta)
        if not batch:
            break
        done += batch
        values = torch.cat([values, _checked(objective(batch), len(batch))])
        strategies += ["gp"] * len(batch)
    return SteeringSearch(done, values, strategies)


def _checked(y: torch.Tensor, n: int) -> torch.Tensor:
    y = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
    if y.numel() != n:
        raise ValueError(f"objective returned {y.numel()} values for {n} experiments")
    if not torch.isfinite(y).all():
        raise ValueError("objective returned non-finite values")
    return y
