"""The learn step: validate each new case (predict it BEFORE training on it), then retrain.

Round r is validated by the model of round r − 1 (the untrained, pure-physics model for round 0)
and trains on every done case from that model's weights (warm start; :func:`round_schedule` gives
the stages), so a round whose training was killed is trained again from the same start and ends
with the same weights. Each checkpoint carries its training's summary (start, best and last loss,
best epoch, largest spike): :func:`training_history` reads them back.
"""
from __future__ import annotations

import math

import pandas as pd
import torch

from closedloop.lab import faults
from closedloop.lab.campaign.fidelity import surrogate_view
from closedloop.lab.campaign.state import model_name
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import Case, CampaignStore, now_iso
from closedloop.lab.surrogate import fitted_stages, new_model
from closedloop.lab.timing import timed
from closedloop.physics import compile_wanted
from closedloop.simulators import Scenario
from closedloop.simulators.devices import resolve_device
from closedloop.surrogates import HybridSurrogate, TrainConfig, relative_l2
from closedloop.surrogates.checkpoint import checkpoint_payload, load_model
from closedloop.surrogates.coupling import batch_problems
from closedloop.surrogates.training import TrainReport, train_stages


def initial_model(config: CampaignConfig, scenarios: list[Scenario]) -> HybridSurrogate:
    """The campaign's untrained surrogate (``lab.surrogate.new_model`` seeded by the campaign seed)."""
    _, problem = batch_problems(scenarios[:1])
    return new_model(config.surrogate, problem, config.seed, len(config.fidelity))


def model_for_round(config: CampaignConfig, store: CampaignStore, round_index: int,
                    scenarios: list[Scenario]) -> HybridSurrogate:
    """The model trained at the end of ``round_index`` (the initial model for −1)."""
    if round_index < 0:
        return initial_model(config, scenarios)
    return load_model(store.load_checkpoint(model_name(round_index)))


def fused(config: CampaignConfig, model: HybridSurrogate, *, training: bool = False) -> HybridSurrogate:
    """``model`` with its layered physics substep compiled (``HybridSurrogate.compile_physics``) when
    ``surrogate.compile`` (or ``$CLOSEDLOOP_COMPILE``) wants it; under autograd too with ``training``."""
    if model.spec.room_layers and compile_wanted(config.surrogate.compile):
        model.compile_physics(True, training=training)
    return model


def load_cases(store: CampaignStore, case_ids: list[str]) -> list[Case]:
    """Read cases, each verified against the sha256 the ledger recorded when it was simulated.

    A damaged file raises :class:`IntegrityError`, so it is never validated or trained on; the next
    start of the campaign (:func:`audit`) sets it aside and simulates the case again.
    """
    ledger = store.read_ledger().set_index("case_id")
    cases = []
    for cid in case_ids:
        sha = ledger.at[cid, "case_sha256"] if cid in ledger.index else None
        cases.append(store.read_case(cid, sha256=None if pd.isna(sha) else str(sha)))
    return cases


def predict_cases(model: HybridSurrogate, scenarios: list[Scenario]) -> torch.Tensor:
    forcing, problem = batch_problems(scenarios)
    with torch.no_grad():
        return model.rollout(forcing, problem.n_steps)


def validate_round(config: CampaignConfig, store: CampaignStore, round_index: int,
                   case_ids: list[str]) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Predict each new case with the model from before this round, then compare with the reference.

    Returns ledger updates (rel_l2, log_rel_l2, validated_by) and the predictions by case id.
    """
    if not case_ids:
        return [], {}
    cases = load_cases(store, case_ids)
    scenarios = [c.scenario for c in cases]
    if config.fidelity:  # each case predicted at its own level, on the surrogate's grid
        scenarios, forcing, ref = surrogate_view(config, cases)
        model = fused(config, model_for_round(config, store, round_index - 1, scenarios))
        with torch.no_grad():
            pred = model.rollout(forcing, scenarios[0].time.n_outputs)
    else:
        model = fused(config, model_for_round(config, store, round_index - 1, scenarios))
        pred = predict_cases(model, scenarios)
        ref = torch.stack([c.plane for c in cases]).to(pred.dtype)
    err = relative_l2(pred[:, 1:], ref[:, 1:])
    by = model_name(round_index - 1) if round_index > 0 else "initial"
    rows = [{"case_id": cid, "rel_l2": float(e), "log_rel_l2": math.log(max(float(e), 1e-300)),
             "validated_by": by} for cid, e in zip(case_ids, err)]
    return rows, dict(zip(case_ids, pred))


@timed("validation")
def validate_cases(config: CampaignConfig, store: CampaignStore, round_index: int,
                   case_ids: list[str] | None = None) -> list[dict]:
    """Validate done cases in round ``round_index``: each predicted by the model from before it
    (checkpoint ``round_index − 1``, the initial model in round 0) and its error stored in the ledger
    with its round and ``validated_by``, before any training on it.

    Sync mode validates a round's cases once they are all in (``case_ids`` None: the round's done
    cases without an error); async mode each case as it arrives, in the round the newest checkpoint
    opens (its ``round`` is written again, lab/campaign/scheduler.py).
    """
    if case_ids is None:
        case_ids = store.read_ledger().cases.of_round(round_index).cases.unvalidated()["case_id"].tolist()
    rows, _ = validate_round(config, store, round_index, case_ids)
    faults.point("validate:done", str(round_index))
    rows = [{**row, "round": round_index} for row in rows]
    if rows:
        store.upsert(rows)
    return rows


def round_schedule(config: CampaignConfig, round_index: int) -> list[TrainConfig]:
    """How round ``round_index`` trains (:meth:`SurrogateConfig.schedule`: the staged fit in round 0,
    a warm start after), seeded by the campaign seed and the round."""
    return config.surrogate.schedule(round_index, seed=config.seed + round_index)


def previous_optimizer_state(store: CampaignStore, round_index: int) -> dict | None:
    """AdamW's state at the end of round ``round_index − 1``'s training (None if it kept none)."""
    return store.load_checkpoint(model_name(round_index - 1)).get("optimizer_state")


def new_cases(store: CampaignStore, round_index: int, case_ids: list[str]) -> list[int]:
    """Indices into ``case_ids`` of the cases round ``round_index − 1``'s model was not trained on
    (every case in round 0)."""
    if round_index == 0:
        return list(range(len(case_ids)))
    before = set(store.load_checkpoint(model_name(round_index - 1)).get("trained_on", []))
    return [i for i, case_id in enumerate(case_ids) if case_id not in before]


def training_history(store: CampaignStore, rounds: int) -> list[dict]:
    """Each trained round's training summary (``TrainReport.summary``) with its round, cases and
    warnings, from its checkpoint: what ``campaign status`` and the round report show."""
    out = []
    for r in range(rounds):
        try:
            checkpoint = store.load_checkpoint(model_name(r))
        except (FileNotFoundError, KeyError, ValueError):
            continue
        summary = checkpoint.get("training")
        if summary is None:  # a checkpoint written before training summaries
            continue
        report = TrainReport(losses=list(checkpoint.get("losses", [])), initial_loss=summary["initial_loss"],
                             best_epoch=summary["best_epoch"])
        out.append({"round": r, "cases": len(checkpoint.get("trained_on", [])), **summary,
                    "warnings": report.warnings()})
    return out


def training_set(ledger: pd.DataFrame, up_to_round: int | None = None) -> list[str]:
    """What a training takes, in both modes: every done case a model has already predicted (a case is
    validated before it is trained on), of rounds ≤ ``up_to_round`` (every round when None), in
    ledger order."""
    rows = ledger.cases.validated()
    if up_to_round is not None:
        rows = rows[rows["round"] <= up_to_round]
    return rows["case_id"].tolist()


@timed("training")
def retrain_round(config: CampaignConfig, store: CampaignStore, round_index: int,
                  case_ids: list[str]) -> TrainReport:
    """Train on every done case, warm-starting from the previous round's checkpoint.

    Training always starts from that checkpoint (or the seeded initial model) and only the finished
    result is saved, so a round whose training was killed is trained again from the same start and
    ends with the same weights. Without ``surrogate.batch_size`` the mini-batch is the one the memory
    budget ``surrogate.training_memory_gb`` affords (surrogates/memory.py: the fewest equal
    mini-batches that fit; all cases at once when they fit), so training memory does not grow with
    the number of cases. Training whose estimated memory is over ``surrogate.max_memory_gb``
    (default half of this machine's) is refused before it starts.
    """
    if not case_ids:
        raise ValueError(f"round {round_index}: no simulated case to train on (every simulation failed; "
                         "the ledger's error column says why)")
    cases = load_cases(store, case_ids)
    scenarios = [c.scenario for c in cases]
    if config.fidelity:  # every level on the surrogate's grid, its level an input (Forcing.fidelity)
        scenarios, forcing, target = surrogate_view(config, cases)
    else:
        forcing, target = batch_problems(scenarios)[0], torch.stack([c.plane for c in cases])
    device = resolve_device(config.surrogate.device)  # simulations stay on CPU workers
    model = fused(config, model_for_round(config, store, round_index - 1, scenarios).to(device), training=True)
    forcing = forcing.to(device=device)
    target = target.to(device=device, dtype=torch.float64)
    stages = fitted_stages(model, forcing, target.shape[1] - 1, round_schedule(config, round_index), config.surrogate,
                           device)
    keep = config.surrogate.warm_start_optimizer == "kept" and round_index > 0
    report = train_stages(model, forcing, target, stages,
                          progress=lambda epoch, loss: faults.point("train:epoch", f"{round_index}:{epoch}"),
                          optimizer_state=previous_optimizer_state(store, round_index) if keep else None,
                          new_cases=new_cases(store, round_index, case_ids))
    extra = {"optimizer_state": report.optimizer_state} if config.surrogate.warm_start_optimizer == "kept" else {}
    store.save_checkpoint(model_name(round_index), checkpoint_payload(
        model.cpu(), trained_on=list(case_ids), round=round_index, losses=report.losses,
        initial_loss=report.initial_loss, best_loss=report.best_loss,
        training={**report.summary(), "torch_threads": torch.get_num_threads(), "device": str(device)},
        config_hash=config.config_hash(), created=now_iso(), **extra))
    faults.point("retrain:done", str(round_index))
    return report
