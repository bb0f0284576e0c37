"""The campaign's steps as plain functions (no Prefect): propose, simulate, validate, retrain.

tasks/ wraps each in a Prefect task; flows/campaign.py composes them. Every step reads what it
needs from the campaign directory and writes its result there atomically, so a campaign stopped
at any point (even by SIGKILL) continues from its ledger: proposals are stored before they are
simulated, a case whose file exists is never simulated again, and a round ends when its checkpoint
is written and indexed. Before resuming, :func:`audit` checks what is on disk against the recorded
checksums and sets damaged files aside to be simulated or trained again. Every step is
deterministic given the campaign seed, so a resumed campaign ends where an uninterrupted one would.
The :mod:`closedloop.lab.faults` points mark where the crash tests kill the process.
"""
from __future__ import annotations

import dataclasses

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from closedloop.lab import faults
from closedloop.lab.atomic import atomic_write_text
from closedloop.lab.config import CampaignConfig
from closedloop.lab.forcing import batch_problems, spec_for
from closedloop.lab.store import (Case, CampaignStore, IntegrityError, check_sha256, file_sha256,
                                  now_iso, read_case, reference_case, write_case)
from closedloop.planners import fit_error_model, sobol_design
from closedloop.planners import stopping
from closedloop.planners.ensemble import disagreement
from closedloop.planners.strategies import Evidence, propose
from closedloop.simulators import Scenario, simulate
from closedloop.simulators.devices import resolve_device
from closedloop.surrogates import HybridSurrogate, SurrogateSpec, TrainConfig, relative_l2, train
from closedloop.surrogates.sensitivity import fisher_sketch
from closedloop.surrogates.training import TrainReport


# ----------------------------------------------------------------------------- scenarios
def scenario_for(config: CampaignConfig, params: dict[str, float]) -> Scenario:
    """The base scenario with the design parameters applied (validated)."""
    return config.scenario.with_parameters(config.design.scenario_values(params))


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


def points_with_status(ledger: pd.DataFrame, config: CampaignConfig, status: str,
                       before_round: int | None = None) -> torch.Tensor:
    """Design points (n x d) of the ledger's cases with ``status`` (optionally of earlier rounds)."""
    rows = ledger[ledger["status"] == status] if len(ledger) else ledger
    if before_round is not None and len(rows):
        rows = rows[rows["round"] < before_round]
    space = config.design.space()
    if len(rows) == 0:
        return torch.empty(0, space.dim, dtype=torch.float64)
    return space.as_tensor([json.loads(p) for p in rows["parameters"]])


def evidence_for(config: CampaignConfig, ledger: pd.DataFrame, round_index: int) -> Evidence:
    """What the planner sees: validated errors (failed cases excluded), failures, pending points
    (proposed in earlier rounds, still simulating) and every point in the ledger."""
    space = config.design.space()
    x_obs, y_obs = observed_errors(ledger, config)
    existing = space.as_tensor([json.loads(p) for p in ledger["parameters"]]) if len(ledger) else None
    return Evidence(observed=x_obs, log_error=y_obs, failed=points_with_status(ledger, config, "failed"),
                    pending=points_with_status(ledger, config, "proposed", before_round=round_index),
                    existing=existing)


def remaining_cases(config: CampaignConfig, ledger: pd.DataFrame) -> int | None:
    """Simulations left in the budget (every proposed, done or failed case counts), or None."""
    if config.budget.max_cases is None:
        return None
    return max(config.budget.max_cases - len(ledger), 0)


def candidate_problems(config: CampaignConfig, points: torch.Tensor):
    """Scenarios of design points (n x d) and their batched plane forcing and problem."""
    scenarios = [scenario_for(config, row) for row in config.design.space().as_dicts(points)]
    forcing, problem = batch_problems(scenarios)
    return scenarios, forcing, problem


def trained_rounds(store: CampaignStore, round_index: int, strategy: str) -> list[int]:
    """Rounds before ``round_index`` with a checkpoint, newest first; a model-scoring strategy needs one."""
    rounds = [r for r in range(round_index - 1, -1, -1) if round_complete(store, r)]
    if not rounds:
        raise ValueError(f"round {round_index}: strategy {strategy!r} needs a trained round (a checkpoint) first")
    return rounds


def ensemble_scorer(config: CampaignConfig, store: CampaignStore, round_index: int):
    """Disagreement of a snapshot ensemble: the models of the last ``ensemble_members`` rounds
    (the untrained model fills in early on), each rolling out every candidate scenario."""
    def score(candidates: torch.Tensor) -> torch.Tensor:
        scenarios, forcing, problem = candidate_problems(config, candidates)
        rounds = trained_rounds(store, round_index, "ensemble")
        members = [model_for_round(config, store, r, scenarios) for r in rounds[:config.planner.ensemble_members]]
        if len(members) < 2:
            members.append(initial_model(config, scenarios))
        with torch.no_grad():
            preds = torch.stack([m.rollout(forcing, problem.n_steps)[:, 1:] for m in members])
        return disagreement(preds)
    return score


def information_scorer(config: CampaignConfig, store: CampaignStore, round_index: int):
    """Parameter information (sketched Fisher, ``surrogates.sensitivity``) of scenarios under the
    latest trained model: what each would teach it, for the greedy D-optimal batch."""
    def information(points: torch.Tensor) -> torch.Tensor:
        scenarios, forcing, problem = candidate_problems(config, points)
        model = model_for_round(config, store, trained_rounds(store, round_index, "information")[0], scenarios)
        return fisher_sketch(model, forcing, problem.n_steps, k=config.planner.information_directions,
                             seed=config.seed * 1000 + round_index,
                             differences=config.planner.information_differences)
    return information


def propose_round(config: CampaignConfig, ledger: pd.DataFrame, round_index: int,
                  store: CampaignStore | None = None) -> Proposal:
    """Round 0: a Sobol design. Later rounds: the configured strategy (planners/strategies.py) on
    the ledger's evidence; Sobol also while fewer than two cases are validated (no GP yet)."""
    space = config.design.space()
    evidence = evidence_for(config, ledger, round_index)
    n = config.budget.initial_cases if round_index == 0 else config.budget.batch_size
    left = remaining_cases(config, ledger)
    if left is not None:
        n = min(n, left)
    if n < 1:
        raise ValueError(f"round {round_index}: the simulation budget (budget.max_cases = "
                         f"{config.budget.max_cases}) is spent")
    strategy = config.planner.strategy
    model_based = strategy in ("error", "variance")
    if round_index == 0:
        x, _ = feasible_sobol(config, n, 0)
        proposal = Proposal(round_index, "sobol", space.as_dicts(x))
    elif strategy == "sobol" or (model_based and len(evidence.log_error) < 2):
        # the campaign's Sobol sequence continued: its first feasible points not yet in the ledger
        # and clear of failed cases
        x = propose("sobol", space, n, evidence, seed=config.seed, settings=config.planner.settings(),
                    feasible=lambda z: feasible_mask(config, z))
        proposal = Proposal(round_index, "sobol", space.as_dicts(x))
    else:
        seed = config.seed * 1000 + round_index
        if strategy in ("ensemble", "information") and store is None:
            raise ValueError(f"planner.strategy {strategy!r}: proposing needs the campaign store (its checkpoints)")
        scorer = ensemble_scorer(config, store, round_index) if strategy == "ensemble" else None
        information = information_scorer(config, store, round_index) if strategy == "information" else None
        # The GP fit may draw random restarts from the global generator: seed it, so that a resumed
        # process (whose generator has another history) proposes what an uninterrupted one would.
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            x = propose(strategy, space, n, evidence, seed=seed, settings=config.planner.settings(),
                        feasible=lambda z: feasible_mask(config, z), ensemble_score=scorer,
                        information=information)
        proposal = Proposal(round_index, strategy, space.as_dicts(x))
    faults.point("propose:planned", str(round_index))
    return proposal


def proposal_rows(config: CampaignConfig, proposal: Proposal, flow_run_id: str | None) -> list[dict]:
    rows = []
    for params in proposal.parameters:
        scenario = scenario_for(config, params)
        rows.append({"case_id": scenario.case_id(), "round": proposal.round, "status": "proposed",
                     "strategy": proposal.strategy, "parameters": json.dumps(params, sort_keys=True),
                     "proposed_at": now_iso(), "flow_run_id": flow_run_id})
    return rows


# ----------------------------------------------------------------------------- simulation
def simulation_cache_key(config: CampaignConfig, params: dict[str, float]) -> str:
    """What a simulation's result depends on: the scenario (its hash is the case id) and the device.

    Prefect caches finished simulate tasks under this key (tasks/campaign.py); :func:`audit`
    deletes the record with the case file when that file is damaged.
    """
    device = config.simulation.device.replace(":", "-")
    return f"simulate-{scenario_for(config, params).case_id()}-{device}"


def check_finite(case_id: str, result: Any) -> None:
    """Refuse a simulation result holding NaN or ±inf (it is never written as a case)."""
    series = {"plane": result.plane, **{f"probe:{k}": v for k, v in result.probes.items()},
              "mass_in_domain": result.mass_in_domain, "mass_emitted": result.mass_emitted,
              "mass_exhausted": result.mass_exhausted}
    bad = []
    for name, values in series.items():
        values = torch.as_tensor(values)
        if not torch.isfinite(values).all():
            bad.append(f"{name}: {int(values.isnan().sum())} NaN, {int(values.isinf().sum())} inf "
                       f"of {values.numel()}")
    if bad:
        raise FloatingPointError(f"case {case_id}: the simulation returned non-finite values ({'; '.join(bad)}); "
                                 "nothing was written")


def run_case(config: CampaignConfig, store: CampaignStore, params: dict[str, float]) -> dict[str, Any]:
    """Simulate one case unless its file already exists; returns a ledger update."""
    scenario = scenario_for(config, params)
    case_id = scenario.case_id()
    if store.has_case(case_id):
        # written by an earlier run that stopped before the ledger recorded it (or recorded it already)
        prov = store.case_metadata(case_id).get("provenance", {})
        row = {"case_id": case_id, "status": "done", "reused": True,
               "case_sha256": file_sha256(store.case_path(case_id)),
               "sim_seconds": prov.get("sim_seconds"), "finished_at": prov.get("created")}
        return {k: v for k, v in row.items() if v is not None}
    faults.point("simulate:start", case_id)
    t0 = time.perf_counter()
    result = simulate(scenario, device=config.simulation.device,
                      progress=lambda t, horizon: faults.point("simulate:progress", case_id))
    seconds = time.perf_counter() - t0
    check_finite(case_id, result)
    case = reference_case(scenario, result, seed=config.seed, config_hash=config.config_hash(),
                          sim_seconds=seconds)
    sha = write_case(store.case_path(case_id), case)
    faults.point("simulate:end", case_id)
    return {"case_id": case_id, "status": "done", "sim_seconds": seconds, "case_sha256": sha,
            "finished_at": case.provenance["created"], "reused": False}


# ----------------------------------------------------------------------------- surrogate
def model_name(round_index: int) -> str:
    return f"round_{round_index:03d}"


def initial_model(config: CampaignConfig, scenarios: list[Scenario]) -> HybridSurrogate:
    """The untrained surrogate: pure physics with D = K (the closure's head starts at zero)."""
    _, problem = batch_problems(scenarios[:1])
    torch.manual_seed(config.seed)
    sc = config.surrogate
    spec = dataclasses.replace(
        spec_for(problem, hidden_channels=sc.hidden_channels, use_closure=sc.use_closure,
                 learn_sink=sc.learn_sink, vertical_exchange=sc.vertical_exchange, room_layers=sc.room_layers),
        variant=sc.variant, closure=sc.closure, closure_layers=sc.closure_layers, advection=sc.advection,
        learn_velocity_correction=sc.learn_velocity_correction, closure_form=sc.closure_form,
        closure_gain=sc.closure_gain, closure_scale=sc.closure_scale, closure_context=sc.closure_context)
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
    model = model_for_round(config, store, round_index - 1, scenarios)
    pred = predict_cases(model, scenarios)
    ref = torch.stack([c.plane for c in cases]).to(pred.dtype)
    err = relative_l2(pred[:, 1:], ref[:, 1:])
    by = model_name(round_index - 1) if round_index > 0 else "initial"
    rows = [{"case_id": cid, "rel_l2": float(e), "log_rel_l2": math.log(max(float(e), 1e-300)),
             "validated_by": by} for cid, e in zip(case_ids, err)]
    return rows, dict(zip(case_ids, pred))


def validate_new_cases(config: CampaignConfig, store: CampaignStore, round_index: int) -> list[dict]:
    """Validate the round's simulated cases that have no error yet; store the errors in the ledger."""
    ledger = store.read_ledger()
    todo = ledger[(ledger["round"] == round_index) & (ledger["status"] == "done") & ledger["rel_l2"].isna()]
    rows, _ = validate_round(config, store, round_index, todo["case_id"].tolist())
    faults.point("validate:done", str(round_index))
    if rows:
        store.upsert(rows)
    return rows


def round_train_config(config: CampaignConfig, round_index: int) -> TrainConfig:
    """How round ``round_index`` trains: the full schedule (physics warm-up included) in round 0, a
    warm start of ``warm_start_epochs`` after; seeded by the campaign seed and the round."""
    sc = config.surrogate
    warm = round_index > 0
    return TrainConfig(epochs=sc.warm_start_epochs if warm else sc.epochs,
                       learning_rate=sc.learning_rate, tbptt_steps=sc.tbptt_steps,
                       loss_floor=sc.loss_floor, seed=config.seed + round_index,
                       curriculum=tuple(sc.curriculum), weight_decay=sc.weight_decay,
                       smoothness=sc.smoothness, physics_learning_rate=sc.physics_learning_rate,
                       physics_warmup_epochs=0 if warm else sc.physics_warmup_epochs,
                       batch_size=sc.batch_size)


def retrain_round(config: CampaignConfig, store: CampaignStore, round_index: int,
                  case_ids: list[str]) -> TrainReport:
    """Train on every done case, warm-starting from the previous round's checkpoint.

    Training always starts from that checkpoint (or the seeded initial model) and only the finished
    result is saved, so a round whose training was killed is trained again from the same start and
    ends with the same weights.
    """
    if not case_ids:
        raise ValueError(f"round {round_index}: no simulated case to train on (every simulation failed; "
                         "the ledger's error column says why)")
    cases = load_cases(store, case_ids)
    scenarios = [c.scenario for c in cases]
    device = resolve_device(config.surrogate.device)  # simulations stay on CPU workers
    model = model_for_round(config, store, round_index - 1, scenarios).to(device)
    forcing, _ = batch_problems(scenarios)
    forcing = forcing.to(device=device)
    target = torch.stack([c.plane for c in cases]).to(device=device, dtype=torch.float64)
    report = train(model, forcing, target, round_train_config(config, round_index),
                   progress=lambda epoch, loss: faults.point("train:epoch", f"{round_index}:{epoch}"))
    model = model.cpu()  # checkpoints hold CPU tensors, loadable anywhere
    store.save_checkpoint(model_name(round_index), {
        "spec": model.spec.to_dict(), "state_dict": model.state_dict(),
        "trained_on": list(case_ids), "round": round_index, "losses": report.losses,
        "initial_loss": report.initial_loss, "best_loss": report.best_loss,
        "config_hash": config.config_hash(), "created": now_iso()})
    faults.point("retrain:done", str(round_index))
    return report


# ----------------------------------------------------------------------------- campaign state
def round_complete(store: CampaignStore, round_index: int) -> bool:
    """A round is complete once its checkpoint is written and its checksum indexed."""
    return store.has_checkpoint(model_name(round_index))


def report_path(store: CampaignStore, round_index: int) -> Path:
    return store.figures_dir / f"{model_name(round_index)}.md"


def round_published(store: CampaignStore, round_index: int) -> bool:
    """The round's report (figures/round_NNN.md, written last by publishing) exists."""
    return report_path(store, round_index).exists()


# ----------------------------------------------------------------------------- integrity
@dataclass
class AuditReport:
    """What :func:`audit` found before a campaign resumed."""

    temp_files: list[str] = field(default_factory=list)  # left by a killed writer, removed
    damaged: list[str] = field(default_factory=list)  # one line per file set aside
    notes: list[str] = field(default_factory=list)  # harmless findings (e.g. checksums recorded late)
    resimulate: list[dict[str, float]] = field(default_factory=list)  # cases of complete rounds to run again


def checksum_problem(path: Path, sha256: str) -> str | None:
    """Why ``path`` does not match its recorded checksum, or None."""
    try:
        check_sha256(path, sha256)
    except IntegrityError as err:
        return str(err).removeprefix(f"{path}: ")
    return None


def checkpoint_problem(store: CampaignStore, name: str, sha256: str | None) -> str | None:
    """Why a checkpoint cannot be used, or None."""
    path = store.model_path(name)
    if not path.exists():
        return "file is missing"
    if sha256:
        return checksum_problem(path, sha256)
    try:  # no checksum recorded: the file must at least load as a checkpoint
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
        if not {"spec", "state_dict"} <= set(ckpt):
            return "not a closedloop checkpoint (no spec/state_dict)"
    except Exception as err:  # noqa: BLE001 - any unreadable file is damaged
        return f"unreadable ({type(err).__name__}: {str(err).strip().splitlines()[0][:160] if str(err).strip() else ''})"
    return None


def case_problem(store: CampaignStore, case_id: str, sha256: str | None) -> str | None:
    """Why an existing case file cannot be used, or None."""
    path = store.case_path(case_id)
    if sha256:
        return checksum_problem(path, sha256)
    try:  # written but not yet recorded (the run stopped before the ledger knew): it must read back
        case = read_case(path)
        if not torch.isfinite(case.plane).all():
            return "holds non-finite values"
    except (ValueError, OSError, KeyError) as err:
        return str(err).removeprefix(f"{path}: ")
    return None


def audit(config: CampaignConfig, store: CampaignStore) -> AuditReport:
    """Check a campaign directory before resuming it (call under the campaign lock).

    Removes temporary files left by a killed writer; checks every checkpoint against
    ``models/index.json`` and every case file against the ledger's sha256 (or, where none is
    recorded yet, that it reads back). Damaged files are moved to ``quarantine/`` and the damage is
    written to the ledger's ``error`` column; a damaged checkpoint makes its round incomplete (it is
    trained again, from the same start), a damaged case goes back to ``proposed`` (and its cached
    task result is dropped) so it is simulated again: by its round, or, when that round is complete,
    by the flow's repair step (``resimulate``).
    """
    report = AuditReport(temp_files=[str(p) for p in store.remove_temp_files()])
    try:
        index = store.read_model_index()
    except IntegrityError as err:
        report.damaged.append(f"{err}; set aside as {store.quarantine(store.model_index_path)}")
        index = {}
    for name in sorted(set(index) | {p.stem for p in store.models_dir.glob("round_*.pt")}):
        entry = index.get(name)
        problem = checkpoint_problem(store, name, entry["sha256"] if entry else None)
        path = store.model_path(name)
        if problem is None and entry is None:
            store.index_checkpoint(name, file_sha256(path))
            report.notes.append(f"{path}: complete but not yet indexed (the run stopped in between); indexed")
        elif problem is not None:
            where = f"; set aside as {store.quarantine(path)}" if path.exists() else ""
            store.index_checkpoint(name, None)
            report.damaged.append(f"{path}: {problem}{where}; the round will be trained again")

    ledger = store.read_ledger()
    updates = []
    for _, row in ledger.iterrows():
        cid, status = row["case_id"], row["status"]
        path = store.case_path(cid)
        sha = None if pd.isna(row["case_sha256"]) else str(row["case_sha256"])
        if status == "failed" or (status == "proposed" and not path.exists()):
            continue
        problem = "file is missing" if not path.exists() else case_problem(store, cid, sha)
        if problem is None:
            if status == "done" and sha is None:  # a ledger from before checksums: record it now
                updates.append({"case_id": cid, "case_sha256": file_sha256(path)})
            continue
        where = f"; set aside as {store.quarantine(path)}" if path.exists() else ""
        params = json.loads(row["parameters"])
        (store.cache_dir / simulation_cache_key(config, params)).unlink(missing_ok=True)
        message = f"{path}: {problem}{where}; simulated again"
        report.damaged.append(message)
        updates.append({"case_id": cid, "status": "proposed", "case_sha256": None,
                        "error": f"{now_iso()} {message}"[:2000]})
    if updates:
        ledger = store.upsert(updates)
    complete = {r for r in ledger["round"].unique() if round_complete(store, int(r))}
    stranded = ledger[(ledger["status"] == "proposed") & ledger["round"].isin(complete)]
    report.resimulate = [json.loads(p) for p in stranded["parameters"]]
    return report


def round_mean_errors(ledger: pd.DataFrame, up_to: int) -> list[float]:
    """Mean validation relative L2 of each round 0 … ``up_to`` that has validated cases."""
    rows = ledger[ledger["rel_l2"].notna() & (ledger["round"] <= up_to)]
    return [float(g["rel_l2"].mean()) for _, g in rows.groupby("round", sort=True)]


def expected_max_error(config: CampaignConfig, ledger: pd.DataFrame, round_index: int) -> float | None:
    """The error GP's E[max_x relative L2] over the feasible space (None with < 2 validated cases)."""
    x_obs, y_obs = observed_errors(ledger, config)
    if len(y_obs) < 2:
        return None
    space = config.design.space()
    seed = config.seed * 1000 + round_index + 500
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        gp = fit_error_model(space, x_obs, y_obs)
        return stopping.expected_max_error(gp, space, seed=seed, n_points=256,
                                           feasible=lambda z: feasible_mask(config, z))


def stop_reason(config: CampaignConfig, ledger: pd.DataFrame, round_index: int) -> str | None:
    """Why the campaign stops after ``round_index``, or None to go on (planners/stopping.py):
    simulation budget, round-mean error target, GP-expected maximum error target, patience,
    round budget, in that order."""
    b = config.budget
    target = b.error_target
    rows = ledger[(ledger["round"] == round_index) & ledger["rel_l2"].notna()]
    if target is not None and len(rows) and rows["rel_l2"].mean() < target:
        return f"error target reached: mean validation relative L2 {rows['rel_l2'].mean():.4f} < {target}"
    expected = expected_max_error(config, ledger, round_index) if b.max_error_target is not None else None
    return stopping.stop_reason(cases_used=len(ledger), max_cases=b.max_cases, rounds_done=round_index + 1,
                                max_rounds=b.rounds, expected_max=expected, max_error_target=b.max_error_target,
                                history=round_mean_errors(ledger, round_index), patience=b.patience,
                                min_improvement=b.min_improvement)


@dataclass
class ErrorSlice:
    """The error GP's predicted relative L2, exp(μ(x)), on a 2D slice of the design space: the first
    two parameters on a grid, the others at their mid-range (NaN where the scenario is infeasible)."""

    names: tuple[str, str]
    xs: torch.Tensor
    ys: torch.Tensor
    error: torch.Tensor  # (len(ys), len(xs))
    fixed: dict[str, float]


def predicted_error_slice(config: CampaignConfig, ledger: pd.DataFrame, n: int = 40) -> ErrorSlice | None:
    """None when the design has one parameter or fewer than 2 cases are validated."""
    x_obs, y_obs = observed_errors(ledger, config)
    space = config.design.space()
    if space.dim < 2 or len(y_obs) < 2:
        return None
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        gp = fit_error_model(space, x_obs, y_obs)
    lo, hi = space.bounds()
    xs, ys = torch.linspace(lo[0], hi[0], n, dtype=torch.float64), torch.linspace(lo[1], hi[1], n, dtype=torch.float64)
    grid = space.snap(((lo + hi) / 2).repeat(n * n, 1))
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid[:, 0], grid[:, 1] = gx.reshape(-1), gy.reshape(-1)
    grid = space.snap(grid)
    with torch.no_grad():
        err = gp.posterior(grid).mean.squeeze(-1).exp()
    err[~feasible_mask(config, grid)] = float("nan")
    fixed = {name: float(v) for name, v in zip(space.names[2:], grid[0, 2:])}
    return ErrorSlice((space.names[0], space.names[1]), xs, ys, err.reshape(n, n), fixed)


def planner_report(config: CampaignConfig, ledger: pd.DataFrame, round_index: int) -> list[str]:
    """Markdown lines for a round's report: strategy, proposals and the stopping decision."""
    mine = ledger[ledger["round"] == round_index]
    strategies = ", ".join(sorted(set(mine["strategy"].dropna()))) or "none"
    pl, b = config.planner, config.budget
    lines = [f"Strategy: **{strategies}** (configured `{pl.strategy}`, acquisition `{pl.acquisition}`, "
             f"batch {b.batch_size}; {len(ledger)} of {b.max_cases or 'unlimited'} simulations used)", "",
             "| case | status | " + " | ".join(config.design.space().names) + " |",
             "|---|---|" + "---|" * config.design.space().dim]
    for _, row in mine.iterrows():
        params = json.loads(row["parameters"])
        lines.append(f"| `{row['case_id']}` | {row['status']} | " +
                     " | ".join(f"{params[k]:.4g}" for k in config.design.space().names) + " |")
    reason = stop_reason(config, ledger, round_index)
    lines += ["", f"Stopping rule: {'**stop** — ' + reason if reason else 'continue (no stopping condition met)'}"]
    return lines


def read_state(store: CampaignStore) -> dict[str, Any]:
    path = store.state_path
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise IntegrityError(f"{path}: unreadable campaign state ({err}); it holds the campaign's identity, "
                             "restore it or use a new --dir") from err


def write_state(store: CampaignStore, state: dict[str, Any]) -> None:
    atomic_write_text(store.state_path, json.dumps(state, indent=2, sort_keys=True), label="state")


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
                   run_id: str | None = None, reason: str | None = None,
                   repairs: list[str] | None = None) -> dict[str, Any]:
    """The summary written to ``campaign.json`` and returned by the flow (``repairs``: damage found
    by :func:`audit`, appended to earlier runs' findings)."""
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
        "stop_reason": reason, "strategy": config.planner.strategy, "batch_size": config.budget.batch_size,
        "max_cases": config.budget.max_cases, "identity": config.model_dump(mode="json", include={"scenario", "design", "seed"}),
        "rounds_done": len(rounds_done), "rounds_budget": config.budget.rounds,
        "cases_done": int((ledger["status"] == "done").sum()),
        "cases_failed": int((ledger["status"] == "failed").sum()),
        "last_round_mean_rel_l2": float(last["rel_l2"].mean()) if len(last) else None,
        "latest_model": str(store.model_path(model_name(rounds_done[-1]))) if rounds_done else None,
        "ledger": str(store.ledger_path), "figures": str(store.figures_dir),
        "flow_run_ids": runs, "updated": now_iso(),
        "repairs": (list(previous.get("repairs", [])) + list(repairs or []))[-200:],
    }
