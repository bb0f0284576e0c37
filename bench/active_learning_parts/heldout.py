"""Campaign directories with one shared case directory, the held-out test set, and the oracles
(benchmark-only).

Every run of the study is a campaign directory under the work directory whose ``cases/`` links to
``work/cases``: the library's ``run_case`` reuses a case whose file exists, so strategies and seeds
that pick the same point (and the test set) simulate it once.

The test set: uniform random feasible points of the design space (their own seed), never proposed
by a planner. The oracles (``oracle_worst``, ``oracle_spread``) are bounds, not planners: each round
they simulate cases *of the test set itself*, so their test error is partly in-sample: a floor for
what any choice of cases could reach with the learner.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from closedloop.lab import campaign as steps
from closedloop.lab.campaign.propose import remaining_cases
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore
from closedloop.planners.design import DesignSpace
from closedloop.surrogates import Forcing, HybridSurrogate, relative_l2


def shared_store(work: Path, name: str, fresh: bool = False) -> CampaignStore:
    """The campaign directory ``work/name`` (emptied first when ``fresh``), its cases in ``work/cases``."""
    root = work / name
    if fresh and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (work / "cases").mkdir(parents=True, exist_ok=True)
    if not (root / "cases").exists():
        (root / "cases").symlink_to((work / "cases").resolve(), target_is_directory=True)
    return CampaignStore(root)


@dataclass
class HeldOut:
    """The test set: points (n x d), their forcing and reference planes."""

    points: torch.Tensor
    seed: int
    forcing: Forcing
    n_steps: int
    planes: torch.Tensor  # (n, T + 1, nx, ny)

    def predict(self, model: HybridSurrogate) -> torch.Tensor:
        """``model``'s planes of every test case after the initial one, (n, T, nx, ny)."""
        with torch.no_grad():
            return model.rollout(self.forcing, self.n_steps)[:, 1:]

    def errors(self, model: HybridSurrogate, pred: torch.Tensor | None = None) -> torch.Tensor:
        """Relative L2 over time and plane of each test case (n,), of ``pred`` when given."""
        return relative_l2(self.predict(model) if pred is None else pred, self.planes[:, 1:])


def p95(errors: torch.Tensor) -> float:
    """The 95th percentile of the test errors (linear interpolation, as numpy.percentile)."""
    return float(torch.quantile(errors.to(torch.float64), 0.95))


def held_out(config: CampaignConfig, work: Path, n: int, seed: int, name: str = "heldout") -> HeldOut:
    """The first ``n`` feasible of 4n uniform random points (generator seeded ``seed``), simulated; their
    ledger in the campaign directory ``work/name`` (one per design space)."""
    space = config.design.space()
    g = torch.Generator().manual_seed(seed)
    pool = space.from_unit(torch.rand(4 * n, space.dim, generator=g, dtype=torch.float64))
    points = pool[steps.feasible_mask(config, pool)][:n]
    store = shared_store(work, name)
    rows = [steps.run_case(config, store, params) for params in space.as_dicts(points)]
    return of_cases(config, store, points, [r["case_id"] for r in rows], seed)


def of_cases(config: CampaignConfig, store: CampaignStore, points: torch.Tensor, case_ids: list[str],
             seed: int) -> HeldOut:
    """Simulated cases of ``store`` (their design points and ids, in order) as a test set."""
    planes = torch.stack([store.read_case(c).plane for c in case_ids]).to(torch.float64)
    _, forcing, problem = steps.candidate_problems(config, points)
    return HeldOut(points, seed, forcing, problem.n_steps, planes)


def worst(space: DesignSpace, test: torch.Tensor, errors: torch.Tensor, free: list[int], ran: torch.Tensor,
          q: int) -> list[int]:
    """The ideal error-seeking planner: the free test cases with the highest current test error
    (it knows the true error, no GP in between)."""
    return sorted(free, key=lambda i: -float(errors[i]))[:q]


def spread(space: DesignSpace, test: torch.Tensor, errors: torch.Tensor, free: list[int], ran: torch.Tensor,
           q: int) -> list[int]:
    """Greedy farthest-point order over the free test cases in the unit cube, away from the cases
    run: a design drawn from, and spread over, the test distribution itself."""
    u, ran_u = space.to_unit(test), space.to_unit(ran)
    free, chosen = list(free), []
    for _ in range(q):
        ref = torch.cat([ran_u, u[chosen]]) if chosen else ran_u
        dist = torch.cdist(u[free], ref).min(dim=1).values
        chosen.append(free.pop(int(dist.argmax())))
    return chosen


Oracle = Callable[[DesignSpace, torch.Tensor, torch.Tensor, list[int], torch.Tensor, int], list[int]]
ORACLES: dict[str, Oracle] = {"oracle_worst": worst, "oracle_spread": spread, "oracle_pool": worst}
# oracles that choose from a pool of simulated cases disjoint from the test set (the others choose test
# cases, so their final model has trained on the cases it is judged on)
POOL_ORACLES = frozenset({"oracle_pool"})


def oracle_round(label: str, config: CampaignConfig, store: CampaignStore, round_index: int, test: HeldOut,
                 errors: torch.Tensor, used: set[int]) -> list[dict[str, float]]:
    """Round ``round_index``'s batch by oracle ``label``: cases of ``test`` (the test set, or the pool of
    a pool oracle) never used before, with their current ``errors``, stored in the ledger as the round's
    proposal (as ``round_proposals`` stores a planner's)."""
    ledger = store.read_ledger()
    space = config.design.space()
    left = remaining_cases(config, ledger)
    q = config.budget.batch_size if left is None else min(config.budget.batch_size, left)
    free = [i for i in range(len(test.points)) if i not in used]
    ran = steps.evidence_for(config, ledger).existing
    picked = ORACLES[label](space, test.points, errors, free, ran, q)
    used.update(picked)
    params = space.as_dicts(test.points[picked])
    store.upsert(steps.proposal_rows(config, steps.Proposal(round_index, label, params), None))
    return params
