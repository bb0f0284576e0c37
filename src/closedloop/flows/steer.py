"""The steer flow: concept direction from the ledger → target references → BoTorch's experiments."""
from __future__ import annotations

from typing import Any

from prefect import flow, unmapped

from closedloop.lab.steering import SteeringConfig, hold_steering
from closedloop.tasks.campaign import current_flow_run_id
from closedloop.tasks.steer import measure_directions, publish, search_experiments, select_groups, simulate_target


@flow(name="steer", log_prints=True)
def steer(campaign_dir: str = "runs/smoke", concept: str = "inlet_speed", toward: str = "high",
          split: float | None = None, layers: list[str] | None = None, base_cases: int = 2,
          initial_experiments: int = 6, rounds: int = 3, batch_size: int = 2, alpha_min: float = -2.0,
          alpha_max: float = 2.0, seed: int = 0, device: str = "cpu", reduce: str = "space_mean") -> dict[str, Any]:
    """Steer the campaign's latest model toward a regime of ``concept`` and validate by simulation."""
    config = SteeringConfig(concept=concept, toward=toward, split=split, layers=layers, base_cases=base_cases,
                            initial_experiments=initial_experiments, rounds=rounds, batch_size=batch_size,
                            alpha_min=alpha_min, alpha_max=alpha_max, seed=seed, device=device, reduce=reduce)
    prepared = select_groups(campaign_dir, config)
    with hold_steering(prepared.campaign, owner=current_flow_run_id()):
        directions = measure_directions(prepared, config)
        steering_dir = str(prepared.campaign.steering_dir)
        cache = (prepared.campaign.steering_dir / "task-cache").resolve()
        futures = simulate_target.with_options(result_storage=cache).map(
            unmapped(steering_dir), [t.scenario for t in prepared.targets], unmapped(config.device),
            unmapped(prepared.campaign.seed))
        problem, search = search_experiments(prepared, directions, [f.result() for f in futures], config)
        return publish(prepared, config, directions, problem, search)
