"""A tiny campaign directory for the steering tests, built without simulating or training.

The smoke design (source_x, source_y, inlet_speed) on the room cut to three 10 s outputs; six
done cases in the ledger (only their parameters matter: activations come from the forcing) and a
round_000 checkpoint whose closure has random weights, so that its activations and output vary
with the inlet speed like a trained one's would.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from closedloop.lab import campaign as steps
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore, now_iso
from tests.conftest import fast_config_text

PARAMS = [  # inlet_speed: three low (< 0.8), three high
    {"source_x": 2.5, "source_y": 4.0, "inlet_speed": 0.3},
    {"source_x": 3.0, "source_y": 1.5, "inlet_speed": 0.4},
    {"source_x": 7.0, "source_y": 4.5, "inlet_speed": 0.6},
    {"source_x": 2.0, "source_y": 2.0, "inlet_speed": 1.1},
    {"source_x": 6.5, "source_y": 1.5, "inlet_speed": 1.3},
    {"source_x": 8.0, "source_y": 4.0, "inlet_speed": 1.5},
]


def tiny_config(tmp_path: Path) -> CampaignConfig:
    from closedloop.lab.config import load_campaign_config

    path = tmp_path / "tiny.toml"
    path.write_text(fast_config_text())
    return load_campaign_config(path).with_overrides(**{"scenario.time.horizon": 30.0})


def make_campaign(tmp_path: Path, closure: bool = True) -> Path:
    """Write the tiny campaign to ``tmp_path/camp`` and return that directory."""
    config = tiny_config(tmp_path)
    root = tmp_path / "camp"
    store = CampaignStore(root)
    store.upsert([{"case_id": steps.scenario_for(config, p).case_id(), "round": 0, "status": "done",
                   "strategy": "sobol", "parameters": json.dumps(p, sort_keys=True), "finished_at": now_iso()}
                  for p in PARAMS])
    if not closure:
        config = config.with_overrides(**{"surrogate.use_closure": False})
    model = steps.initial_model(config, [steps.scenario_for(config, PARAMS[0])])
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.closure.parameters() if closure else []:
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    store.save_checkpoint(steps.model_name(0), {"spec": model.spec.to_dict(), "state_dict": model.state_dict(),
                                              "trained_on": [], "round": 0, "created": now_iso()})
    store.write_state(steps.campaign_state(config, store, status="finished"))
    return root
