"""Choosing the next simulations: design spaces, Sobol designs, GP error models, batch acquisition.

BoTorch/GPyTorch only; no Prefect. Parameters are handled in their natural units at the
boundary (``DesignSpace``) and normalised inside BoTorch by its input transforms.
"""
from closedloop.planners.design import DesignSpace, sobol_design
from closedloop.planners.gp import fit_error_model
from closedloop.planners.acquisition import propose_batch

__all__ = ["DesignSpace", "sobol_design", "fit_error_model", "propose_batch"]
