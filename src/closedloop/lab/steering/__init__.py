"""The steering experiment's steps as plain functions (no Prefect), one module per step.

On a campaign directory's latest model:

1. ``opened.open_campaign``: the model, its checkpoint id (sha256) and the ledger's design;
   ``prepared.prepare`` checks the request against it before any compute.
2. ``groups.select_groups``: groups A and B of done cases by a query on one design parameter,
   and the held-out base cases.
3. ``directions.measure_directions``: Δ = mean activation(A) − mean(B) per candidate layer.
4. ``targets.target_scenarios`` / ``simulate_target``: each base case moved to the target regime
   and its reference simulation.
5. ``search.search_experiments``: BoTorch chooses (layer, α, step window).
6. ``report.build_report`` and ``write_results``: the tables, figures and summary under ``steering/``.

``config.SteeringConfig`` declares the parameters once; tasks/steer.py wraps each step in a
Prefect task and flows/steer.py composes them (the CLI runs that flow). The names below are
re-exported for ``from closedloop.lab import steering``, each imported on first use (so that
the CLI reads :class:`SteeringConfig` without loading torch).
"""
from __future__ import annotations

import importlib
from typing import Any

_OWNERS = {
    "MEASURES": "config",
    "SteeringConfig": "config",
    "hold_steering": "directions",
    "layer_activations": "directions",
    "measure_directions": "directions",
    "save_directions": "directions",
    "Groups": "groups",
    "case_parameters": "groups",
    "group_scenarios": "groups",
    "select_groups": "groups",
    "Prepared": "prepared",
    "prepare": "prepared",
    "SteeringCampaign": "opened",
    "candidate_layers": "opened",
    "check_config": "opened",
    "open_campaign": "opened",
    "SteeringReport": "report",
    "build_report": "report",
    "dose_response_table": "report",
    "experiment_rows": "report",
    "markdown_with_images": "report",
    "experiments_table": "report",
    "write_results": "report",
    "SteeringProblem": "search",
    "agreement": "search",
    "search_experiments": "search",
    "steering_problem": "search",
    "Target": "targets",
    "read_references": "targets",
    "simulate_target": "targets",
    "target_scenarios": "targets",
}
__all__ = list(_OWNERS)


def __getattr__(name: str) -> Any:
    if name not in _OWNERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_OWNERS[name]}"), name)
