"""The GP error model: near-interpolation of noise-free data, input forms, and bad inputs named."""
from __future__ import annotations

import pytest
import torch

from closedloop.planners import DesignSpace, fit_error_model, sobol_design

SPACE = DesignSpace(names=("a", "b"), lower=(0.0, 0.0), upper=(1.0, 1.0))


def test_gp_interpolates_four_noise_free_points():
    space = DesignSpace(names=("p", "q"), lower=(0.0, 10.0), upper=(1.0, 20.0))
    torch.manual_seed(0)
    x = sobol_design(space, 4, seed=1)
    y = torch.sin(3 * x[:, 0]) + 0.1 * x[:, 1]
    gp = fit_error_model(space, x, y)
    with torch.no_grad():
        post = gp.posterior(x)
    mean = post.mean.squeeze(-1)
    spread = (y.max() - y.min()).item()
    assert mean.shape == (4,)
    # near-interpolation of noise-free data: errors an order of magnitude below the data spread
    assert (mean - y).abs().max().item() < 0.1 * spread
    # far from the data the GP is less certain than at the data
    with torch.no_grad():
        far = gp.posterior(space.from_unit(torch.tensor([[0.5, 0.5]], dtype=torch.float64)))
    assert post.variance.max() < far.variance.squeeze()


def test_gp_accepts_column_y_and_float32():
    x = sobol_design(SPACE, 4, seed=2).float()
    y = (x[:, 0] - x[:, 1]).reshape(-1, 1)
    gp = fit_error_model(SPACE, x, y)
    assert gp.train_inputs[0].dtype == torch.float64
    with torch.no_grad():
        mean = gp.posterior(x.double()).mean.squeeze(-1)
    assert (mean - y.squeeze(-1).double()).abs().max() < 0.1 * (y.max() - y.min()).item()


@pytest.mark.parametrize("x, y, needle", [
    (torch.rand(4, 3), torch.rand(4), r"x must be n x 2, got \(4, 3\)"),
    (torch.rand(4), torch.rand(4), r"x must be n x 2"),
    (torch.rand(4, 2), torch.rand(3), r"x has 4 rows but y has 3"),
    (torch.rand(1, 2), torch.rand(1), r"at least 2 observations"),
    (torch.rand(4, 2), torch.tensor([0.1, float("nan"), 0.3, 0.2]), r"non-finite"),
    (torch.rand(4, 2), torch.tensor([0.1, float("inf"), 0.3, 0.2]), r"non-finite"),
])
def test_gp_rejects_bad_inputs_with_clear_message(x, y, needle):
    with pytest.raises(ValueError, match=needle):
        fit_error_model(SPACE, x, y)


def test_gp_rejects_nan_in_x():
    x = torch.rand(4, 2, dtype=torch.float64)
    x[1, 0] = float("nan")
    with pytest.raises(Exception, match="NaN"):
        fit_error_model(SPACE, x, torch.rand(4, dtype=torch.float64))
