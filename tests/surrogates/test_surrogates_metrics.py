"""Error metrics: relative L2 (whole series and per time), Spearman against SciPy, mass, MSE and peak location."""
from __future__ import annotations

import pytest
import torch

from closedloop.surrogates import relative_l2
from closedloop.surrogates.metrics import mass_error, mse_per_time, peak_location_error, relative_l2_per_time, spearman


def test_relative_l2_zero_for_identical_and_scale_invariant():
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(3, 4, 5, 6, generator=gen, dtype=torch.float64)
    pred = ref + 0.1 * torch.randn(3, 4, 5, 6, generator=gen, dtype=torch.float64)
    assert torch.equal(relative_l2(ref, ref), torch.zeros(3, dtype=torch.float64))
    e = relative_l2(pred, ref)
    assert e.shape == (3,) and (e > 0).all()
    for k in (1e-6, 7.0, 1e5):
        assert torch.allclose(relative_l2(k * pred, k * ref), e, rtol=1e-12, atol=0)
    # definition: ‖pred − ref‖ / ‖ref‖ per case
    manual = (pred[1] - ref[1]).norm() / ref[1].norm()
    assert e[1].item() == pytest.approx(manual.item(), rel=1e-12)
    assert torch.allclose(relative_l2(2 * ref, ref), torch.ones(3, dtype=torch.float64))


def test_relative_l2_per_time():
    ref = torch.ones(2, 3, 4, 4, dtype=torch.float64)
    pred = ref.clone()
    pred[0, 1] *= 1.5
    e = relative_l2_per_time(pred, ref)
    assert e.shape == (2, 3)
    assert torch.allclose(e, torch.tensor([[0.0, 0.5, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64))
    # an all-zero reference does not divide by zero
    assert torch.isfinite(relative_l2(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2))).all()


def test_spearman_matches_scipy_and_metrics_behave():
    scipy_stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 7, 5, generator=g, dtype=torch.float64)
    b = a + 0.3 * torch.rand(3, 7, 5, generator=g, dtype=torch.float64)
    a[:, :3] = 0  # ties, as in the empty part of a plume
    mask = torch.ones(7, 5, dtype=torch.bool)
    mask[3, 3] = False
    ours = spearman(a, b, mask)
    ref = [scipy_stats.spearmanr(a[i][mask], b[i][mask]).statistic for i in range(3)]
    assert torch.allclose(ours, torch.tensor(ref, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(spearman(a, 2 * a + 1), torch.ones(3, dtype=torch.float64))
    series = torch.rand(2, 4, 6, 5, generator=g, dtype=torch.float64) + 0.1
    assert torch.allclose(mass_error(series * 1.1, series), torch.full((2, 4), 0.1, dtype=torch.float64))
    assert (mse_per_time(series, series) == 0).all()
    p = torch.zeros(1, 6, 5, dtype=torch.float64)
    r = torch.zeros(1, 6, 5, dtype=torch.float64)
    p[0, 1, 1], r[0, 4, 5 - 1] = 1.0, 1.0
    assert peak_location_error(p, r, (0.5, 0.5)).item() == pytest.approx(0.5 * (3 ** 2 + 3 ** 2) ** 0.5)
