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
          alpha_min: float = -2.0, alpha_max: float = 2.0, initial_experiments: int = 6, rounds: int = 3,
          batch_size: int = 2, dose_points: int = 9, n_bootstrap: int = 100, reduce: str = "space_mean",
          seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """Steer the campaign's latest model toward a regime of ``concept`` and validate by simulation.

    The parameters after ``campaign_dir`` are the fields of :class:`SteeringConfig`, which checks
    them (a test holds the signature and the model together).
    """
    fields = dict(locals())
    config = SteeringConfig(**{k: v for k, v in fields.items() if k != "campaign_dir"})
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
