"""The error model: a GP over design parameters of the surrogate's log validation error.

y = log(‖ĉ − c‖/‖c‖) of each case, measured by predicting the case before training on it.
SingleTaskGP in float64 with inputs normalised to the design box and outcomes standardised;
hyperparameters by maximising the exact marginal log likelihood.
"""
from __future__ import annotations

import warnings

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood

from closedloop.planners.design import DesignSpace


def fit_error_model(space: DesignSpace, x: torch.Tensor, y: torch.Tensor, maxiter: int = 200) -> SingleTaskGP:
    """Fit a GP to ``x`` (n x d, natural units) and ``y`` (n,) or (n x 1); ``maxiter`` caps L-BFGS."""
    x = x.to(torch.float64)
    y = y.to(torch.float64).reshape(-1, 1)
    if x.ndim != 2 or x.shape[1] != space.dim:
        raise ValueError(f"x must be n x {space.dim}, got {tuple(x.shape)}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    if x.shape[0] < 2:
        raise ValueError(f"a GP needs at least 2 observations, got {x.shape[0]}")
    if not torch.isfinite(x).all():
        raise ValueError("x holds NaN or infinite values; every design point must be finite")
    if not torch.isfinite(y).all():
        raise ValueError("y holds non-finite values; drop failed or unvalidated cases first")
    model = SingleTaskGP(x, y, input_transform=Normalize(d=space.dim, bounds=space.bounds()),
                         outcome_transform=Standardize(m=1))
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    with warnings.catch_warnings():
        # Few points: the optimiser may stop early; the fit is still usable and is logged upstream.
        warnings.simplefilter("ignore")
        fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": maxiter}})
    model.eval()
    return model
