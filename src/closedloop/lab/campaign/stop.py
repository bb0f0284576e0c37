"""Why a campaign stops: the stop rules, one object each, evaluated in this order by both modes.

=================  ==============================================================================
``compute``        CPU-seconds of every simulated case ≥ ``budget.max_cpu_seconds``
``simulations``    cases in the ledger (proposed, done or failed) ≥ ``budget.max_cases``
``error target``   mean validation relative L2 of the round's cases < ``budget.error_target``, once
                   ``batch_size`` of them are validated or none of the round is still in flight
``accuracy``       when a round closes: the error GP's E[max_x error] < ``budget.max_error_target``
``patience``       when a round closes: no round mean beat the best before it by a relative
                   ``min_improvement`` for ``patience`` rounds
``rounds``         trainings done ≥ ``budget.rounds`` (async: ``rounds − 1``, since the last one
                   trains on every case once the simulations in flight end)
=================  ==============================================================================

A :class:`Moment` is where the campaign stands: the ledger, the newest round and whether it has
just closed (its checkpoint written). Sync mode evaluates the rules after each round closes; async
mode as each case arrives (the open round) and as each training ends (the closed round). The math
(E[max], rounds without improvement) is planners/stopping.py's.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from closedloop.lab.campaign.design import feasible_mask
from closedloop.lab.campaign.propose import observed_errors
from closedloop.lab.config import CampaignConfig
from closedloop.planners import fit_error_model, stopping


@dataclass(frozen=True)
class Moment:
    """Where a campaign stands when the rules are evaluated.

    ``round``: the newest round, whose validated cases the error target judges; ``closed``: its
    checkpoint has just been written (the rules on closed rounds apply), else it is still open.
    """

    config: CampaignConfig
    ledger: pd.DataFrame
    round: int
    closed: bool

    @property
    def rounds_done(self) -> int:
        """Trainings done: the closed rounds."""
        return self.round + 1 if self.closed else self.round


def round_mean_errors(ledger: pd.DataFrame, up_to: int) -> list[float]:
    """Mean validation relative L2 of each round 0 … ``up_to`` that has validated cases."""
    rows = ledger.cases.validated()
    rows = rows[rows["round"] <= up_to]
    return [float(g["rel_l2"].mean()) for _, g in rows.groupby("round", sort=True)]


def round_error(ledger: pd.DataFrame, round_index: int) -> tuple[int, float | None, float | None]:
    """(count, mean, worst) validation relative L2 of the cases of ``round_index``."""
    rows = ledger.cases.of_round(round_index).cases.validated()
    if not len(rows):
        return 0, None, None
    return len(rows), float(rows["rel_l2"].mean()), float(rows["rel_l2"].max())


def expected_max_error(config: CampaignConfig, ledger: pd.DataFrame, round_index: int) -> float | None:
    """The error GP's E[max_x relative L2] over the feasible space (None with < 2 validated cases)."""
    x_obs, y_obs = observed_errors(ledger, config)
    if len(y_obs) < 2:
        return None
    space = config.design.space()
    seed = config.round_seed(round_index) + 500
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        gp = fit_error_model(space, x_obs, y_obs)
        return stopping.expected_max_error(gp, space, seed=seed, n_points=256,
                                           feasible=lambda z: feasible_mask(config, z))


def compute_budget(m: Moment) -> str | None:
    limit, used = m.config.budget.max_cpu_seconds, m.ledger.cases.spend()
    if limit is not None and used >= limit:
        return f"compute budget spent: {used:.1f} CPU-seconds ≥ budget.max_cpu_seconds = {limit}"
    return None


def simulation_budget(m: Moment) -> str | None:
    limit, used = m.config.budget.max_cases, len(m.ledger)
    if limit is not None and used >= limit:
        return f"simulation budget spent ({used} of {limit} cases)"
    return None


def error_target(m: Moment) -> str | None:
    b = m.config.budget
    if b.error_target is None:
        return None
    count, mean, _ = round_error(m.ledger, m.round)
    in_flight = len(m.ledger.cases.of_round(m.round).cases.proposed()) > 0
    if mean is None or (count < b.batch_size and in_flight) or mean >= b.error_target:
        return None
    return (f"error target reached: mean validation relative L2 of round {m.round}'s {count} cases "
            f"{mean:.4f} < {b.error_target}")


def accuracy_target(m: Moment) -> str | None:
    target = m.config.budget.max_error_target
    if target is None or not m.closed:
        return None
    expected = expected_max_error(m.config, m.ledger, m.round)
    if expected is not None and expected < target:
        return f"accuracy target reached: GP-expected maximum error over the space {expected:.4f} < {target}"
    return None


def patience(m: Moment) -> str | None:
    b = m.config.budget
    if b.patience is None or not m.closed:
        return None
    history = round_mean_errors(m.ledger, m.round)
    if len(history) > b.patience:
        stale = stopping.rounds_without_improvement(history, b.min_improvement)
        if stale >= b.patience:
            return (f"no improvement for {stale} rounds (best round-mean validation error {min(history):.4f}; "
                    f"patience {b.patience})")
    return None


def round_budget(m: Moment) -> str | None:
    rounds = m.config.budget.rounds
    if m.config.campaign.mode == "async":  # the closing training is the last round
        if m.rounds_done >= rounds - 1:
            return f"round budget spent ({rounds} rounds; the last trains on every case once the simulations end)"
        return None
    return f"round budget spent ({rounds} rounds)" if m.rounds_done >= rounds else None


StopRule = Callable[[Moment], "str | None"]

RULES: dict[str, StopRule] = {"compute": compute_budget, "simulations": simulation_budget,
                              "error target": error_target, "accuracy": accuracy_target, "patience": patience,
                              "rounds": round_budget}


def stop_reason(config: CampaignConfig, ledger: pd.DataFrame, round_index: int, *, closed: bool = True) -> str | None:
    """The first of :data:`RULES` that holds at round ``round_index`` (``closed``: it has just closed),
    or None to go on. Sync mode asks after each round; async mode as cases arrive (``closed=False``,
    the open round) and as trainings end."""
    moment = Moment(config, ledger, round_index, closed)
    for rule in RULES.values():
        reason = rule(moment)
        if reason:
            return reason
    return None
