"""The campaign's steps as plain functions (no Prefect): propose, simulate, validate, retrain.

tasks/ wraps each in a Prefect task; flows/campaign.py composes them. Every step reads what it
needs from the campaign directory and writes its result there atomically, so a campaign stopped
at any point continues from its ledger: proposals are stored before they are simulated, a case
whose file exists is never simulated again, and a round ends when its checkpoint is written.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from closedloop.lab.config import CampaignConfig
from closedloop.lab.forcing import batch_problems, spec_for
from closedloop.lab.store import Case, CampaignStore, make_provenance, now_iso
from closedloop.planners import fit_error_model, propose_batch, sobol_design
from closedloop.simulators import Scenario, simulate
from closedloop.surrogates import HybridSurrogate, SurrogateSpec, TrainConfig, relative_l2, train
from closedloop.surrogates.training import TrainReport


# ----------------------------------------------------------------------------- scenarios
def scenario_for(config: CampaignConfig, params: dict[str, float]) -> Scenario:
    """The base scenario with the design parameters applied (validated)."""
    paths = {p.name: p.path for p in config.design.parameters}
    return config.scenario.with_parameters({paths[k]: v for k, v in params.items()})


def feasible_mask(config: CampaignConfig, x: torch.Tensor) -> torch.Tensor:
    """Which rows of x (n x d, natural units) give a valid scenario (e.g. source not in a pillar)."""
    space = config.design.space()
    ok = []
    for row in space.as_dicts(x):
        try:
            scenario_for(config, row)
            ok.append(True)
        except ValueError:
            ok.append(False)
    return torch.tensor(ok, dtype=torch.bool)


def feasible_sobol(config: CampaignConfig, n: int, skip: int) -> tuple[torch.Tensor, int]:
    """The next ``n`` feasible points of the campaign's Sobol sequence from position ``skip``,
    and the position just after the last one used (so a continuation never repeats a point)."""
    space = config.design.space()
    out: list[torch.Tensor] = []
    pos = skip
    while True:
        chunk = sobol_design(space, 64, seed=config.seed, skip=pos)
        ok = feasible_mask(config, chunk)
        for j in range(chunk.shape[0]):
            if ok[j]:
                out.append(chunk[j])
                if len(out) == n:
                    return torch.stack(out), pos + j + 1
        pos += 64
        if pos - skip >= 4096:
            raise ValueError(f"design space: fewer than {n} feasible points in 4096 Sobol draws")


def sobol_position(config: CampaignConfig, ledger: pd.DataFrame) -> int:
    """Replay the Sobol rounds in the ledger to find where the sequence continues."""
    pos = 0
    sob = ledger[ledger["strategy"] == "sobol"]
    for _, group in sob.groupby("round", sort=True):
        _, pos = feasible_sobol(config, len(group), pos)
    return pos


# ----------------------------------------------------------------------------- proposals
@dataclass
class Proposal:
    round: int
    strategy: str
    parameters: list[dict[str, float]]


def observed_errors(ledger: pd.DataFrame, config: CampaignConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, log relative L2) of every validated case; failed and unvalidated cases are left out."""
    rows = ledger[(ledger["status"] == "done") & ledger["log_rel_l2"].notna()]
    space = config.design.space()
    x = space.as_tensor([json.loads(p) for p in rows["parameters"]])
    y = torch.tensor(rows["log_rel_l2"].to_numpy(dtype=float), dtype=torch.float64)
    return x.reshape(-1, space.dim), y


def propose_round(config: CampaignConfig, ledger: pd.DataFrame, round_index: int) -> Proposal:
    """Round 0: a Sobol design. Later rounds: the GP error model's qUCB batch (or Sobol)."""
    space = config.design.space()
    existing = space.as_tensor([json.loads(p) for p in ledger["parameters"]]) if len(ledger) else None
    x_obs, y_obs = observed_errors(ledger, config)
    if round_index == 0 or config.planner.strategy == "sobol" or len(y_obs) < 2:
        n = config.budget.initial_cases if round_index == 0 else config.budget.batch_size
        x, _ = feasible_sobol(config, n, sobol_position(config, ledger))
        return Proposal(round_index, "sobol", space.as_dicts(x))
    gp = fit_error_model(space, x_obs, y_obs)
    pl = config.planner
    x = propose_batch(gp, space, config.budget.batch_size, seed=config.seed * 1000 + round_index,
                      beta=pl.beta, num_restarts=pl.num_restarts, raw_samples=pl.raw_samples,
                      mc_samples=pl.mc_samples, feasible=lambda z: feasible_mask(config, z),
                      existing=existing)
    return Proposal(round_index, "error", space.as_dicts(x))


def proposal_rows(config: CampaignConfig, proposal: Proposal, flow_run_id: str | None) -> list[dict]:
    rows = []
    for params in proposal.parameters:
        scenario = scenario_for(config, params)
        rows.append({"case_id": scenario.case_id(), "round": proposal.round, "status": "proposed",
                     "strategy": proposal.strategy, "parameters": json.dumps(params, sort_keys=True),
                     "proposed_at": now_iso(), "flow_run_id": flow_run_id})
    return rows


# ----------------------------------------------------------------------------- simulation
def run_case(config: CampaignConfig, store: CampaignStore, params: dict[str, float]) -> dict[str, Any]:
    """Simulate one case unless its file already exists; returns a ledger update."""
    scenario = scenario_for(config, params)
    case_id = scenario.case_id()
    if store.has_case(case_id):
        return {"case_id": case_id, "status": "done", "reused": True}
    t0 = time.perf_counter()
    result = simulate(scenario, device=config.simulation.device)
    case = Case(scenario=scenario, times=result.times, plane=result.plane, plane_mask=result.plane_mask,
                probes=result.probes,
                budget={"mass_in_domain": result.mass_in_domain, "mass_emitted": result.mass_emitted,
                        "mass_exhausted": result.mass_exhausted},
                provenance=make_provenance(producer="reference", device=result.device, seed=config.seed,
                                           config_hash=config.config_hash(), steps=result.steps,
                                           dtype=result.dtype),
                grid={"shape": result.extra["grid_shape"], "spacing": list(scenario.room.spacing),
                      "plane": scenario.plane.model_dump()})
    store.write_case(case)
    return {"case_id": case_id, "status": "done", "sim_seconds": time.perf_counter() - t0,
            "finished_at": now_iso(), "reused": False}


# ----------------------------------------------------------------------------- surrogate
def model_name(round_index: int) -> str:
    return f"round_{round_index:03d}"


def initial_model(config: CampaignConfig, scenarios: list[Scenario]) -> HybridSurrogate:
    """The untrained surrogate: pure physics with D = K (the closure's head starts at zero)."""
    _, problem = batch_problems(scenarios[:1])
    torch.manual_seed(config.seed)
    spec = spec_for(problem, hidden_channels=config.surrogate.hidden_channels,
                    use_closure=config.surrogate.use_closure)
    return HybridSurrogate(spec, problem.mask).double()


def load_model(checkpoint: dict[str, Any]) -> HybridSurrogate:
    spec = SurrogateSpec.from_dict(checkpoint["spec"])
    # float64 before loading, so the saved float64 weights are not rounded through float32
    model = HybridSurrogate(spec, checkpoint["state_dict"]["mask"].bool()).double()
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def model_for_round(config: CampaignConfig, store: CampaignStore, round_index: int,
                    scenarios: list[Scenario]) -> HybridSurrogate:
    """The model trained at the end of ``round_index`` (the initial model for −1)."""
    if round_index < 0:
        return initial_model(config, scenarios)
    return load_model(store.load_checkpoint(model_name(round_index)))


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
    cases = [store.read_case(cid) for cid in case_ids]
    scenarios = [c.scenario for c in cases]
    model = model_for_round(config, store, round_index - 1, scenarios)
    pred = predict_cases(model, scenarios)
    ref = torch.stack([c.plane for c in cases]).to(pred.dtype)
    err = relative_l2(pred[:, 1:], ref[:, 1:])
    by = model_name(round_index - 1) if round_index > 0 else "initial"
    rows = [{"case_id": cid, "rel_l2": float(e), "log_rel_l2": math.log(max(float(e), 1e-300)),
             "validated_by": by} for cid, e in zip(case_ids, err)]
    return rows, dict(zip(case_ids, pred))


def retrain_round(config: CampaignConfig, store: CampaignStore, round_index: int,
                  case_ids: list[str]) -> TrainReport:
    """Train on every done case, warm-starting from the previous round's checkpoint."""
    cases = [store.read_case(cid) for cid in case_ids]
    scenarios = [c.scenario for c in cases]
    warm = round_index > 0
    model = model_for_round(config, store, round_index - 1, scenarios)
    forcing, _ = batch_problems(scenarios)
    target = torch.stack([c.plane for c in cases]).to(torch.float64)
    sc = config.surrogate
    report = train(model, forcing, target,
                   TrainConfig(epochs=sc.warm_start_epochs if warm else sc.epochs,
                               learning_rate=sc.learning_rate, tbptt_steps=sc.tbptt_steps,
                               loss_floor=sc.loss_floor, seed=config.seed + round_index))
    store.save_checkpoint(model_name(round_index), {
        "spec": model.spec.to_dict(), "state_dict": model.state_dict(),
        "trained_on": list(case_ids), "round": round_index, "losses": report.losses,
        "initial_loss": report.initial_loss, "best_loss": report.best_loss,
        "config_hash": config.config_hash(), "created": now_iso()})
    return report


# ----------------------------------------------------------------------------- campaign state
def round_complete(store: CampaignStore, round_index: int) -> bool:
    return store.model_path(model_name(round_index)).exists()


def stop_reason(config: CampaignConfig, ledger: pd.DataFrame, round_index: int) -> str | None:
    """Why the campaign stops after ``round_index``, or None to go on."""
    target = config.budget.error_target
    rows = ledger[(ledger["round"] == round_index) & ledger["rel_l2"].notna()]
    if target is not None and len(rows) and rows["rel_l2"].mean() < target:
        return f"error target reached: mean validation relative L2 {rows['rel_l2'].mean():.4f} < {target}"
    if round_index + 1 >= config.budget.rounds:
        return f"round budget spent ({config.budget.rounds} rounds)"
    return None


def read_state(store: CampaignStore) -> dict[str, Any]:
    path = store.root / "campaign.json"
    return json.loads(path.read_text()) if path.exists() else {}


def write_state(store: CampaignStore, state: dict[str, Any]) -> None:
    from closedloop.lab.atomic import atomic_write_text

    atomic_write_text(store.root / "campaign.json", json.dumps(state, indent=2, sort_keys=True))


def check_same_campaign(store: CampaignStore, config: CampaignConfig) -> None:
    """Refuse to mix two different campaigns (other scenario or design) in one directory."""
    state = read_state(store)
    key = config.model_dump(mode="json", include={"scenario", "design", "seed"})
    if state and state.get("identity") not in (None, key):
        raise ValueError(f"{store.root}: holds a campaign with another scenario, design or seed "
                         f"({state.get('name')!r}); use a new --dir")


def campaign_dir_default(config: CampaignConfig) -> Path:
    return Path("runs") / config.name


def campaign_state(config: CampaignConfig, store: CampaignStore, *, status: str,
                   run_id: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """The summary written to ``campaign.json`` and returned by the flow."""
    previous = read_state(store)
    ledger = store.read_ledger()
    rounds_done = [r for r in range(config.budget.rounds) if round_complete(store, r)]
    runs = list(previous.get("flow_run_ids", []))
    if run_id and run_id not in runs:
        runs.append(run_id)
    validated = ledger[ledger["rel_l2"].notna()]
    last = validated[validated["round"] == validated["round"].max()] if len(validated) else validated
    return {
        "name": config.name, "config_hash": config.config_hash(), "status": status,
        "stop_reason": reason, "identity": config.model_dump(mode="json", include={"scenario", "design", "seed"}),
        "rounds_done": len(rounds_done), "rounds_budget": config.budget.rounds,
        "cases_done": int((ledger["status"] == "done").sum()),
        "cases_failed": int((ledger["status"] == "failed").sum()),
        "last_round_mean_rel_l2": float(last["rel_l2"].mean()) if len(last) else None,
        "latest_model": str(store.model_path(model_name(rounds_done[-1]))) if rounds_done else None,
        "ledger": str(store.ledger_path), "figures": str(store.figures_dir),
        "flow_run_ids": runs, "updated": now_iso(),
    }
