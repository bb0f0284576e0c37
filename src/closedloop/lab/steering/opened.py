"""A campaign directory opened for steering: its design, its latest model and that model's id."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from closedloop.lab.config import Design
from closedloop.lab.steering.config import SteeringConfig
from closedloop.lab.store import CampaignStore
from closedloop.simulators import Scenario
from closedloop.surrogates import HybridSurrogate
from closedloop.surrogates.checkpoint import load_model


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
