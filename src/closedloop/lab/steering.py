"""The steering experiment's steps as plain functions (no Prefect); tasks/steer.py wraps them.

On a campaign directory's latest model:

1. ``open_campaign``: the model, its checkpoint id (sha256) and the ledger's design.
2. ``select_groups``: two groups of done cases by a query on one design parameter
   (A: ``p >= split`` for a concept toward "high", B the rest; split = median by default), and
   base cases: the B cases farthest from the split, held out of the direction.
3. ``measure_directions``: Δ = mean activation(A) − mean(B) per candidate layer, saved with the
   checkpoint id to ``steering/directions/<concept>.pt``.
4. ``target_scenarios`` / ``simulate_target``: each base case moved to the target regime
   (p = mean of group A); its reference simulation, cached in ``steering/cases/`` by case id.
5. ``search_experiments``: BoTorch chooses (layer, α, step window); the objective is the mean over
   base cases of log(d_unsteered / d_steered), d = relative L2 to the target's reference series.
6. ``dose_response_table`` and ``write_results``: the experiments table, dose-response and
   before/after figures, a report; all written atomically under ``steering/``.
"""
from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, model_validator  # noqa: E402
from torch import nn  # noqa: E402

from closedloop.lab.atomic import atomic_path, atomic_write, atomic_write_bytes, atomic_write_text  # noqa: E402
from closedloop.lab.campaign import check_finite, load_model  # noqa: E402
from closedloop.lab.config import Design  # noqa: E402
from closedloop.lab.figures import data_url  # noqa: E402
from closedloop.lab.forcing import batch_problems  # noqa: E402
from closedloop.lab.lock import campaign_lock  # noqa: E402
from closedloop.lab.store import (CampaignStore, file_sha256, now_iso, read_case, reference_case,  # noqa: E402
                                  write_case)
from closedloop.planners.steering import (SteeringExperiment, SteeringSearch, SteeringSpace,  # noqa: E402
                                          optimise_steering)
from closedloop.simulators import Scenario, simulate  # noqa: E402
from closedloop.surrogates import HybridSurrogate  # noqa: E402
from closedloop.surrogates.steering import (ConceptDirection, Reduce, case_activations,  # noqa: E402
                                            concept_direction, directions_payload, effect_measures,
                                            record_activations, steer)

MEASURES = ("distance", "mass", "peak", "centroid_x", "centroid_y", "spread", "decay_rate")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SteeringConfig(Strict):
    """What to steer and how hard to search. Checked against the campaign before any compute."""

    concept: str = Field(default="inlet_speed", min_length=1,
                         description="A design parameter of the campaign, e.g. inlet_speed or source_x")
    toward: Literal["high", "low"] = Field(default="high", description="The regime the direction points to")
    split: float | None = Field(default=None, allow_inf_nan=False,
                                description="Group A/B boundary of the parameter (default: its median)")
    layers: list[str] | None = Field(default=None, description="Candidate layers (default: the closure's "
                                                                 "convolutions)")
    base_cases: int = Field(default=2, ge=1, le=64, description="Held-out cases of the other regime to steer")
    alpha_min: float = Field(default=-2.0, allow_inf_nan=False)
    alpha_max: float = Field(default=2.0, allow_inf_nan=False)
    initial_experiments: int = Field(default=6, ge=2, le=256)
    rounds: int = Field(default=3, ge=0, le=100)
    batch_size: int = Field(default=2, ge=1, le=32)
    dose_points: int = Field(default=9, ge=3, le=101)
    n_bootstrap: int = Field(default=100, ge=0, le=10000)
    reduce: Literal["space_mean", "field"] = Field(
        default="space_mean", description="Δ per channel (mean over the plane, the paper's 'drop' mode) or "
                                          "a full (C, nx, ny) map (keeps where on the plane the concept acts)")
    seed: int = Field(default=0, ge=0)
    device: str = Field(default="cpu", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
                        description="Where the target references are simulated")

    @model_validator(mode="after")
    def _alpha(self) -> SteeringConfig:
        if not self.alpha_min < self.alpha_max:
            raise ValueError(f"alpha_min ({self.alpha_min}) must be below alpha_max ({self.alpha_max})")
        return self

    @property
    def name(self) -> str:
        return f"{self.concept}_{self.toward}" + ("_field" if self.reduce == "field" else "")


# ----------------------------------------------------------------------------- the campaign
@dataclass
class SteeringCampaign:
    """A campaign directory opened for steering: its design and latest model."""

    store: CampaignStore
    scenario: Scenario
    design: Design
    seed: int
    model_name: str
    checkpoint_id: str  # sha256 of the checkpoint file
    model: HybridSurrogate

    @property
    def steering_dir(self) -> Path:
        return self.store.root / "steering"

    def scenario_for(self, params: dict[str, float]) -> Scenario:
        paths = {p.name: p.path for p in self.design.parameters}
        return self.scenario.with_parameters({paths[k]: v for k, v in params.items()})


def open_campaign(campaign_dir: str | Path) -> SteeringCampaign:
    """The campaign's design (from campaign.json) and its latest indexed model, checksum-verified."""
    root = Path(campaign_dir)
    if not (root / "ledger.parquet").is_file() or not (root / "campaign.json").is_file():
        raise ValueError(f"campaign_dir: {root} holds no ledger.parquet and campaign.json; not a campaign directory")
    store = CampaignStore(root)
    identity = json.loads(store.state_path.read_text()).get("identity") or {}
    if not {"scenario", "design"} <= set(identity):
        raise ValueError(f"campaign_dir: {store.state_path} records no scenario and design (identity)")
    index = store.read_model_index()
    rounds = sorted((n for n in index if n.startswith("round_") and n[6:].isdigit() and store.model_path(n).exists()),
                    key=lambda n: int(n[6:]))
    if not rounds:
        raise ValueError(f"campaign_dir: {root} has no trained model yet (models/index.json is empty); "
                         "run the campaign first")
    name = rounds[-1]
    model = load_model(store.load_checkpoint(name))
    return SteeringCampaign(store=store, scenario=Scenario.model_validate(identity["scenario"]),
                            design=Design.model_validate(identity["design"]), seed=int(identity.get("seed", 0)),
                            model_name=name, checkpoint_id=index[name]["sha256"], model=model)


def candidate_layers(model: nn.Module) -> list[str]:
    """The closure's convolutions with two or more output channels (in module order): where a
    concept can live in the surrogate. A one-channel output (the closure's head) has no direction,
    only a sign: steering it merely rescales the correction by (1 ± α), so it is left out by
    default (it can still be named in ``layers``)."""
    return [n for n, m in model.named_modules()
            if n.startswith("closure.") and isinstance(m, nn.Conv2d) and m.out_channels >= 2]


def check_config(campaign: SteeringCampaign, config: SteeringConfig) -> list[str]:
    """The candidate layers; raises ValueError naming the field for what cannot be steered."""
    names = [p.name for p in campaign.design.parameters]
    if config.concept not in names:
        raise ValueError(f"concept: {config.concept!r} is not a design parameter of this campaign; "
                         f"choose one of {names}")
    available = candidate_layers(campaign.model)
    if not available:
        raise ValueError(f"layers: model {campaign.model_name} has no closure to steer "
                         f"(variant {campaign.model.spec.effective_variant!r})")
    layers = list(config.layers) if config.layers else available
    modules = dict(campaign.model.named_modules())
    unknown = [n for n in layers if n not in modules or not n]
    if unknown:
        raise ValueError(f"layers: {unknown} not in the model; steerable layers: {available}")
    return layers


# ----------------------------------------------------------------------------- groups
@dataclass
class Groups:
    """Cases of regime A (the concept) and B, the held-out base cases and the target value."""

    concept: str
    parameter: str
    split: float
    query_a: str
    query_b: str
    a: pd.DataFrame  # case_id + parameter columns
    b: pd.DataFrame  # without the base cases
    base: pd.DataFrame
    target_value: float  # mean of the parameter over group A


def case_parameters(ledger: pd.DataFrame) -> pd.DataFrame:
    """Done cases as a table: case_id and one column per design parameter."""
    done = ledger[ledger["status"] == "done"]
    rows = [{"case_id": cid, **json.loads(p)} for cid, p in zip(done["case_id"], done["parameters"])]
    return pd.DataFrame(rows)


def select_groups(campaign: SteeringCampaign, config: SteeringConfig) -> Groups:
    """Split the done cases by a query on the concept's parameter; hold out base cases from B."""
    table = case_parameters(campaign.store.read_ledger())
    p = config.concept
    if len(table) == 0:
        raise ValueError("campaign_dir: the ledger holds no done case to build a concept from")
    split = float(table[p].median()) if config.split is None else config.split
    hi, lo = f"`{p}` >= {split!r}", f"`{p}` < {split!r}"
    query_a, query_b = (hi, lo) if config.toward == "high" else (lo, hi)
    a, b = table.query(query_a), table.query(query_b)
    for label, group, query in (("A", a, query_a), ("B", b, query_b)):
        if len(group) == 0:
            raise ValueError(f"split: group {label} ({query}) is empty among {len(table)} done cases; "
                             f"{p} ranges over [{table[p].min():.4g}, {table[p].max():.4g}]")
    if len(b) < config.base_cases + 1:
        raise ValueError(f"base_cases: group B ({query_b}) has {len(b)} cases; {config.base_cases} held out "
                         "would leave none to measure the direction")
    far = (b[p] - split).abs().sort_values(ascending=False).index[:config.base_cases]
    return Groups(concept=config.name, parameter=p, split=split, query_a=query_a, query_b=query_b, a=a,
                  b=b.drop(index=far), base=b.loc[far], target_value=float(a[p].mean()))


def group_scenarios(campaign: SteeringCampaign, group: pd.DataFrame) -> list[Scenario]:
    names = [q.name for q in campaign.design.parameters]
    return [campaign.scenario_for({n: float(r[n]) for n in names}) for _, r in group.iterrows()]


# ----------------------------------------------------------------------------- directions
def layer_activations(model: nn.Module, scenarios: list[Scenario], layers: list[str],
                      reduce: Reduce = "space_mean") -> dict[str, torch.Tensor]:
    """Per-case activations, mean over the rollout: {layer: (n, C)} or, for ``field``, (n, C, nx, ny)."""
    forcing, problem = batch_problems(scenarios)
    with torch.no_grad(), record_activations(model, layers, reduce) as acts:
        model.rollout(forcing, problem.n_steps)
    return {name: case_activations(acts[name]) for name in layers}


def measure_directions(campaign: SteeringCampaign, groups: Groups, layers: list[str], n_bootstrap: int = 100,
                       seed: int = 0, reduce: Reduce = "space_mean") -> list[ConceptDirection]:
    """Δ per layer from groups A and B (base cases excluded), tagged with the checkpoint id."""
    acts_a = layer_activations(campaign.model, group_scenarios(campaign, groups.a), layers, reduce)
    acts_b = layer_activations(campaign.model, group_scenarios(campaign, groups.b), layers, reduce)
    out = []
    for name in layers:
        d = concept_direction(acts_a[name], acts_b[name], name, reduce=reduce, n_bootstrap=n_bootstrap, seed=seed,
                              query_a=groups.query_a, query_b=groups.query_b, model=campaign.model_name)
        d.checkpoint_id, d.concept = campaign.checkpoint_id, groups.concept
        out.append(d)
    return out


def hold_steering(campaign: SteeringCampaign, owner: str | None = None) -> contextlib.AbstractContextManager:
    """An exclusive lock on ``steering/`` (one steering run at a time writes its tables); a second
    run raises :class:`closedloop.lab.lock.CampaignLocked` naming the holder."""
    return campaign_lock(campaign.steering_dir, owner=owner)


def save_directions(campaign: SteeringCampaign, directions: list[ConceptDirection], concept: str) -> Path:
    path = campaign.steering_dir / "directions" / f"{concept}.pt"
    with atomic_path(path, label="directions") as tmp:
        torch.save(directions_payload(directions, campaign.checkpoint_id), tmp)
    return path


# ----------------------------------------------------------------------------- targets
@dataclass
class Target:
    base_case: str
    base_parameters: dict[str, float]
    target_parameters: dict[str, float]
    scenario: Scenario  # the base case moved to the target regime

    @property
    def case_id(self) -> str:
        return self.scenario.case_id()


def target_scenarios(campaign: SteeringCampaign, groups: Groups) -> list[Target]:
    """Each base case with the concept's parameter set to the target regime's value."""
    names = [q.name for q in campaign.design.parameters]
    out = []
    for _, row in groups.base.iterrows():
        base = {n: float(row[n]) for n in names}
        target = {**base, groups.parameter: groups.target_value}
        try:
            scenario = campaign.scenario_for(target)
        except ValueError as err:
            raise ValueError(f"split: base case {row['case_id']} moved to {groups.parameter} = "
                             f"{groups.target_value:.4g} is not a valid scenario ({err})") from None
        out.append(Target(str(row["case_id"]), base, target, scenario))
    return out


def simulate_target(steering_dir: str | Path, scenario: Scenario, device: str = "cpu", seed: int = 0
                    ) -> dict[str, Any]:
    """The target regime's reference simulation, written to ``steering/cases/<id>.parquet`` once.

    A case file already there (or in the campaign's own cases/) is reused, never simulated again.
    """
    case_id = scenario.case_id()
    own = Path(steering_dir) / "cases" / f"{case_id}.parquet"
    campaign_case = Path(steering_dir).parent / "cases" / f"{case_id}.parquet"
    for path in (own, campaign_case):
        if path.is_file():
            return {"case_id": case_id, "path": str(path), "sha256": file_sha256(path), "reused": True}
    result = simulate(scenario, device=device)
    check_finite(case_id, result)
    sha = write_case(own, reference_case(scenario, result, seed=seed, producer_note="steering target"))
    return {"case_id": case_id, "path": str(own), "sha256": sha, "reused": False}


# ----------------------------------------------------------------------------- experiments
@dataclass
class SteeringProblem:
    """Base cases batched for the surrogate, with the target references and unsteered predictions."""

    model: HybridSurrogate
    layers: list[str]
    directions: list[ConceptDirection]  # one per layer, same order
    targets: list[Target]
    forcing: Any
    n_steps: int
    spacing: tuple[float, float]
    mask: torch.Tensor
    reference: torch.Tensor  # (B, T, nx, ny) target references
    unsteered: torch.Tensor  # (B, T, nx, ny)

    @property
    def space(self) -> SteeringSpace:
        return SteeringSpace(n_layers=len(self.layers), n_steps=self.n_steps)

    def predict(self, experiment: SteeringExperiment | None = None,
                direction: ConceptDirection | None = None) -> torch.Tensor:
        """The base cases' predictions, steered by ``experiment`` (``direction`` overrides its layer's Δ)."""
        if experiment is None:
            return self.unsteered
        d = direction if direction is not None else self.directions[experiment.layer]
        with torch.no_grad(), steer(self.model, d, experiment.alpha, experiment.steps(self.n_steps)):
            return self.model.rollout(self.forcing, self.n_steps)

    def distance(self, pred: torch.Tensor) -> torch.Tensor:
        """Relative L2 of each base case's series to its target reference, (B,)."""
        return (pred - self.reference).flatten(1).norm(dim=1) / self.reference.flatten(1).norm(dim=1).clamp_min(1e-300)

    def measures(self, pred: torch.Tensor) -> dict[str, torch.Tensor]:
        return effect_measures(pred, self.spacing, self.mask, target=self.reference)


def steering_problem(campaign: SteeringCampaign, layers: list[str], directions: list[ConceptDirection],
                     targets: list[Target], references: list[torch.Tensor],
                     base_scenarios: list[Scenario] | None = None) -> SteeringProblem:
    """``base_scenarios`` default to the campaign's scenario at each target's base parameters
    (give them for base cases outside the design, e.g. another scenario family)."""
    base = base_scenarios if base_scenarios is not None else [campaign.scenario_for(t.base_parameters)
                                                              for t in targets]
    forcing, problem = batch_problems(base)
    ref = torch.stack([r.to(torch.float64) for r in references])
    with torch.no_grad():
        unsteered = campaign.model.rollout(forcing, problem.n_steps)
    if ref.shape != unsteered.shape:
        raise ValueError(f"target references have shape {tuple(ref.shape)}, the surrogate predicts "
                         f"{tuple(unsteered.shape)}")
    return SteeringProblem(model=campaign.model, layers=layers, directions=directions, targets=targets,
                           forcing=forcing, n_steps=problem.n_steps, spacing=problem.spacing,
                           mask=problem.mask, reference=ref, unsteered=unsteered)


def read_references(targets: list[Target], rows: list[dict[str, Any]]) -> list[torch.Tensor]:
    by_id = {r["case_id"]: r for r in rows}
    return [read_case(by_id[t.case_id]["path"]).plane for t in targets]


def agreement(problem: SteeringProblem, experiments: list[SteeringExperiment]) -> torch.Tensor:
    """Objective per experiment: mean over base cases of log(d_unsteered / d_steered) (> 0: closer)."""
    d0 = problem.distance(problem.unsteered)
    out = [(d0.log() - problem.distance(problem.predict(e)).clamp_min(1e-300).log()).mean() for e in experiments]
    return torch.stack(out).to(torch.float64)


def search_experiments(problem: SteeringProblem, config: SteeringConfig,
                       progress: Callable[[int], None] | None = None) -> SteeringSearch:
    """BoTorch's search over (α, layer, first step, window) for the best agreement."""
    space = SteeringSpace(n_layers=len(problem.layers), n_steps=problem.n_steps,
                          alpha_min=config.alpha_min, alpha_max=config.alpha_max)

    def objective(batch: list[SteeringExperiment]) -> torch.Tensor:
        y = agreement(problem, batch)
        if progress is not None:
            progress(len(batch))
        return torch.nan_to_num(y, nan=-10.0, posinf=-10.0, neginf=-10.0)

    return optimise_steering(objective, space, n_initial=config.initial_experiments, rounds=config.rounds,
                             q=config.batch_size, seed=config.seed)


def experiment_rows(problem: SteeringProblem, search: SteeringSearch, config: SteeringConfig,
                    checkpoint_id: str, flow_run_id: str | None = None) -> pd.DataFrame:
    """One row per (experiment, base case): the steered and unsteered distance to the target reference."""
    d0 = problem.distance(problem.unsteered)
    rows = []
    for i, (e, y, strategy) in enumerate(zip(search.experiments, search.values, search.strategies)):
        d = problem.distance(problem.predict(e))
        for t, ds, du in zip(problem.targets, d, d0):
            rows.append({"concept": config.name, "experiment": i, "strategy": strategy,
                         "layer": problem.layers[e.layer], "alpha": e.alpha, "first_step": e.first_step,
                         "last_step": e.steps(problem.n_steps)[-1], "base_case": t.base_case,
                         "target_case": t.case_id, "distance_steered": float(ds), "distance_unsteered": float(du),
                         "improved": bool(ds < du), "objective": float(y), "best": e == search.best,
                         "checkpoint_id": checkpoint_id, "flow_run_id": flow_run_id, "created": now_iso()})
    return pd.DataFrame(rows)


def dose_response_table(problem: SteeringProblem, best: SteeringExperiment, points: int,
                        alpha_min: float, alpha_max: float) -> pd.DataFrame:
    """The best experiment's layer and window over an α grid (α = 0 included): mean measures."""
    alphas = sorted(set(np.linspace(alpha_min, alpha_max, points).round(6).tolist()) | {0.0})
    rows = []
    for a in alphas:
        e = SteeringExperiment(alpha=float(a), layer=best.layer, first_step=best.first_step, window=best.window)
        m = problem.measures(problem.predict(e))
        rows.append({"alpha": float(a), **{k: float(m[k].mean()) for k in MEASURES}})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- figures
def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def dose_response_figure(dose: pd.DataFrame, reference: dict[str, float], title: str) -> bytes:
    """Distance to the target reference and three effect measures against α (dashed: the reference)."""
    fig, axes = plt.subplots(1, 4, figsize=(14, 3))
    for ax, key in zip(axes, ("distance", "centroid_x", "spread", "mass")):
        ax.plot(dose["alpha"], dose[key], "o-")
        if key in reference:
            ax.axhline(reference[key], ls="--", color="k", lw=1, label="target reference")
            ax.legend(loc="best", fontsize=7)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel("α")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    fig.suptitle(title, y=1.06)
    return _png(fig)


def before_after_figure(unsteered: torch.Tensor, steered: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor,
                        title: str) -> bytes:
    """Final-time plane: unsteered prediction, steered prediction, the target regime's reference."""
    m = ~mask.cpu().numpy()
    fields = [f.detach().cpu().numpy() for f in (unsteered, steered, reference)]
    vmax = max(max(float(np.abs(f).max()) for f in fields), 1e-30)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    for ax, f, name in zip(axes, fields, ("unsteered", "steered", "target reference")):
        im = ax.imshow(np.ma.masked_array(f, m).T, origin="lower", cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(name)
        ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    fig.suptitle(title, y=1.06)
    return _png(fig)


# ----------------------------------------------------------------------------- results
@dataclass
class SteeringReport:
    """What a steering run produced: the tables, figures (PNG bytes) and a summary."""

    concept: str
    experiments: pd.DataFrame
    dose: pd.DataFrame
    figures: dict[str, bytes]
    summary: dict[str, Any]
    markdown: str = ""
    paths: dict[str, str] = field(default_factory=dict)


def build_report(campaign: SteeringCampaign, config: SteeringConfig, groups: Groups,
                 directions: list[ConceptDirection], problem: SteeringProblem, search: SteeringSearch,
                 flow_run_id: str | None = None) -> SteeringReport:
    """Tables, figures and summary of a finished search (no file written)."""
    table = experiment_rows(problem, search, config, campaign.checkpoint_id, flow_run_id)
    best = search.best
    dose = dose_response_table(problem, best, config.dose_points, config.alpha_min, config.alpha_max)
    ref_measures = {k: float(v.mean()) for k, v in problem.measures(problem.reference).items() if k != "distance"}
    ref_measures["distance"] = 0.0
    steered = problem.predict(best)
    d_steered, d_unsteered = problem.distance(steered), problem.distance(problem.unsteered)
    layer = problem.layers[best.layer]
    figures = {
        "dose_response": dose_response_figure(dose, ref_measures, f"{config.name}: {layer}, steps "
                                              f"{best.first_step}–{best.steps(problem.n_steps)[-1]}"),
        "before_after": before_after_figure(problem.unsteered[0, -1], steered[0, -1], problem.reference[0, -1],
                                            problem.mask, f"{config.name}, base case {problem.targets[0].base_case}, "
                                            f"α = {best.alpha:.3g}, final time"),
    }
    summary = {
        "concept": config.name, "parameter": groups.parameter, "split": groups.split,
        "query_a": groups.query_a, "query_b": groups.query_b, "n_a": len(groups.a), "n_b": len(groups.b),
        "target_value": groups.target_value, "model": campaign.model_name, "checkpoint_id": campaign.checkpoint_id,
        "base_cases": [t.base_case for t in problem.targets], "target_cases": [t.case_id for t in problem.targets],
        "directions": {d.layer: {"norm": d.norm, "bootstrap_norm_std": d.bootstrap_norm_std,
                                 "bootstrap_cosine": d.bootstrap_cosine} for d in directions},
        "experiments": len(search.experiments),
        "best": {"layer": layer, "alpha": best.alpha, "first_step": best.first_step,
                 "last_step": best.steps(problem.n_steps)[-1], "objective": float(search.values.max())},
        "distance_unsteered": d_unsteered.tolist(), "distance_steered": d_steered.tolist(),
        "fraction_improved": float((d_steered < d_unsteered).double().mean()),
        "created": now_iso(), "flow_run_id": flow_run_id,
    }
    head = [f"# Steering {config.name} on {campaign.model_name}", "",
            f"Groups: A = {groups.query_a} ({len(groups.a)} cases), B = {groups.query_b} ({len(groups.b)} cases); "
            f"target {groups.parameter} = {groups.target_value:.4g}.", "",
            f"{len(search.experiments)} experiments (BoTorch after {config.initial_experiments} Sobol). Best: "
            f"layer `{layer}`, α = {best.alpha:.3g}, steps {best.first_step}–{best.steps(problem.n_steps)[-1]}.", "",
            "| base case | target case | distance unsteered | distance steered |", "|---|---|---|---|"]
    head += [f"| {t.base_case} | {t.case_id} | {du:.4f} | {ds:.4f} |"
             for t, du, ds in zip(problem.targets, d_unsteered.tolist(), d_steered.tolist())]
    return SteeringReport(concept=config.name, experiments=table, dose=dose, figures=figures, summary=summary,
                          markdown="\n".join(head))


def write_results(campaign: SteeringCampaign, report: SteeringReport) -> SteeringReport:
    """Write under ``steering/``: experiments.parquet (rows of other concepts kept), dose_response.parquet,
    figures/<concept>_*.png, <concept>.md and summary.json; every file atomically."""
    root = campaign.steering_dir
    paths: dict[str, str] = {}
    for key, table in (("experiments", report.experiments), ("dose_response", report.dose.assign(concept=report.concept))):
        path = root / f"{key}.parquet"
        old = pd.read_parquet(path) if path.is_file() else pd.DataFrame()
        if len(old) and "concept" in old:
            old = old[old["concept"] != report.concept]
        merged = pd.concat([old, table], ignore_index=True) if len(old) else table
        atomic_write(path, lambda tmp, m=merged: m.to_parquet(tmp, index=False), label="steering")
        paths[key] = str(path)
    md = [report.markdown]
    for name, png in report.figures.items():
        path = root / "figures" / f"{report.concept}_{name}.png"
        atomic_write_bytes(path, png, label="figure")
        paths[name] = str(path)
        md += ["", f"![{name}](figures/{path.name})"]
    report_path = root / f"{report.concept}.md"
    atomic_write_text(report_path, "\n".join(md) + "\n", label="report")
    paths["report"] = str(report_path)
    summary_path = root / "summary.json"
    summaries = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summaries[report.concept] = report.summary
    atomic_write_text(summary_path, json.dumps(summaries, indent=1, sort_keys=True), label="summary")
    paths["summary"] = str(summary_path)
    report.paths = paths
    return report


def markdown_with_images(report: SteeringReport) -> str:
    """The report with figures inlined (for a Prefect markdown artifact)."""
    md = [report.markdown]
    for name, png in report.figures.items():
        md += ["", f"![{name}]({data_url(png)})"]
    return "\n".join(md)


def run_steering(campaign_dir: str | Path, config: SteeringConfig,
                 step: Callable[[str], None] | None = None,
                 progress: Callable[[int], None] | None = None) -> SteeringReport:
    """All steps in order (the CLI's path; the ``steer`` flow runs the same steps as tasks).

    ``step(name)`` is called before each step, ``progress(n)`` after each batch of n experiments.
    """
    say = step or (lambda name: None)
    say("open campaign")
    campaign = open_campaign(campaign_dir)
    layers = check_config(campaign, config)
    groups = select_groups(campaign, config)
    targets = target_scenarios(campaign, groups)
    with hold_steering(campaign):
        say("measure directions")
        directions = measure_directions(campaign, groups, layers, config.n_bootstrap, config.seed, config.reduce)
        save_directions(campaign, directions, config.name)
        say("simulate targets")
        rows = [simulate_target(campaign.steering_dir, t.scenario, config.device, campaign.seed) for t in targets]
        problem = steering_problem(campaign, layers, directions, targets, read_references(targets, rows))
        say("search experiments")
        search = search_experiments(problem, config, progress)
        say("write results")
        return write_results(campaign, build_report(campaign, config, groups, directions, problem, search))
