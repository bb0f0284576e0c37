"""A surrogate outside a campaign: train one on case files, save it, predict a scenario with it.

What ``closedloop train`` and ``closedloop predict`` do; a campaign trains through
:mod:`closedloop.lab.campaign.learn` instead (warm starts, one checkpoint per round).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from closedloop.lab.atomic import atomic_path
from closedloop.lab.cases import Case, make_provenance, now_iso
from closedloop.simulators import Scenario
from closedloop.lab.surrogate_config import SurrogateConfig
from closedloop.surrogates import HybridSurrogate, TrainReport
from closedloop.surrogates.coupling import PlaneProblem
from closedloop.surrogates.forcing import Forcing
from closedloop.surrogates.training import TrainConfig, train_stages
from closedloop.surrogates.checkpoint import checkpoint_payload, load_model, read_checkpoint, write_checkpoint
from closedloop.simulators.budget import memory_limit
from closedloop.surrogates.coupling import batch_problems, spec_for
from closedloop.surrogates.memory import fit_training, training_budget


def new_model(surrogate: SurrogateConfig, problem: PlaneProblem, seed: int, fidelity_levels: int = 0) -> HybridSurrogate:
    """The untrained surrogate of ``surrogate``'s options on ``problem``'s plane, seeded by ``seed``:
    pure physics with D = K (the closure's head starts at zero); ``fidelity_levels`` > 0 takes the
    level as an input (a multi-fidelity campaign)."""
    torch.manual_seed(seed)
    levels = {"fidelity_levels": fidelity_levels} if fidelity_levels else {}
    return HybridSurrogate(spec_for(problem, **surrogate.spec_options(), **levels), problem.mask).double()


def fitted_stages(model: HybridSurrogate, forcing: Forcing, n_steps: int, stages: list[TrainConfig],
                  surrogate: SurrogateConfig, device: torch.device | str = "cpu") -> list[TrainConfig]:
    """``stages`` with each mini-batch set: ``batch_size`` when given, else the one the training budget
    ``surrogate.training_memory_gb`` affords (surrogates/memory.py: the fewest equal mini-batches that
    fit), so training memory does not grow with the cases. On the CPU a training whose estimated
    memory is over ``surrogate.max_memory_gb`` is refused (:class:`TrainingTooLarge`) before it starts."""
    device = torch.device(device)
    budget = training_budget(surrogate.training_memory_gb, device)
    limit = memory_limit(surrogate.max_memory_gb, "surrogate.max_memory_gb") if device.type == "cpu" else None
    return [dataclasses.replace(stage, batch_size=fit_training(model, forcing, n_steps, stage.tbptt_steps,
                                                               stage.batch_size, budget, limit).batch)
            for stage in stages]


def train_surrogate(cases: list[Case], surrogate: SurrogateConfig, seed: int = 0,
                    progress: Callable[[int, float], None] | None = None) -> tuple[HybridSurrogate, TrainReport]:
    """A new model (``surrogate``'s options, seeded by ``seed``) trained on ``cases`` as a campaign's
    round 0 trains it (:meth:`SurrogateConfig.schedule`: the staged fit, :func:`fitted_stages`)."""
    forcing, problem = batch_problems([c.scenario for c in cases])
    model = new_model(surrogate, problem, seed)
    target = torch.stack([c.plane for c in cases]).to(torch.float64)
    stages = fitted_stages(model, forcing, problem.n_steps, surrogate.schedule(0, seed), surrogate)
    return model, train_stages(model, forcing, target, stages, progress=progress)


def save_surrogate(path: str | Path, model: HybridSurrogate, cases: list[Case], report: TrainReport) -> None:
    """Write the model's checkpoint atomically, with the cases it was trained on and its losses."""
    payload = checkpoint_payload(model, trained_on=[c.case_id for c in cases], losses=report.losses,
                                 initial_loss=report.initial_loss, best_loss=report.best_loss,
                                 training=report.summary(), created=now_iso())
    with atomic_path(Path(path)) as tmp:
        write_checkpoint(tmp, payload)


def load_surrogate(path: str | Path) -> HybridSurrogate:
    """The model of a checkpoint file; ValueError naming the file for anything that is not one."""
    try:
        return load_model(read_checkpoint(path))
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint is reported the same way
        first_line = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise ValueError(f"{path}: not a readable closedloop checkpoint ({type(err).__name__}: {first_line})") from err


def predict_case(model: HybridSurrogate, scenario: Scenario, source: str, model_name: str) -> Case:
    """The surrogate's plane series of ``scenario`` as a case (the same format as a simulation's).

    Refused (ValueError starting with ``source``, the scenario's file) when the scenario's plane
    grid, mask or output interval differs from what the model was trained on.
    """
    forcing, problem = batch_problems([scenario])
    if tuple(problem.mask.shape) != tuple(model.spec.shape) or not torch.equal(problem.mask.float(), model.mask.float()):
        raise ValueError(f"{source}: its plane grid/mask differs from the geometry the model was trained on")
    if abs(problem.output_interval - model.spec.output_interval) > 1e-12:
        raise ValueError(f"{source}: time.output_interval {problem.output_interval} differs from the model's "
                         f"{model.spec.output_interval}")
    with torch.no_grad():
        pred = model.rollout(forcing, problem.n_steps)[0]
    return Case(scenario=scenario, times=torch.tensor(scenario.time.output_times(), dtype=torch.float64), plane=pred,
                plane_mask=problem.mask,
                provenance=make_provenance(producer="surrogate", device="cpu", model=model_name),
                grid={"shape": list(scenario.room.shape), "spacing": list(scenario.room.spacing),
                      "plane": scenario.plane.model_dump()})
