"""Design spaces and scrambled Sobol designs."""
from __future__ import annotations

import pytest
import torch

from closedloop.planners import DesignSpace, sobol_design
from closedloop.planners.design import random_design

pytestmark = pytest.mark.numerics  # bitwise or to-roundoff results: rerun under another instruction set

SPACE = DesignSpace(names=("source_x", "source_y", "inlet_speed"),
                    lower=(1.0, 0.75, 0.3), upper=(9.0, 5.25, 1.5))


def test_sobol_points_inside_bounds_and_spread():
    x = sobol_design(SPACE, 64, seed=7)
    assert x.shape == (64, 3) and x.dtype == torch.float64
    assert SPACE.contains(x).all()
    lo, hi = SPACE.bounds()
    assert (x >= lo).all() and (x <= hi).all()
    # low discrepancy: each half of each axis holds exactly half the points of a 2^k draw
    u = SPACE.to_unit(x)
    assert ((u < 0.5).sum(dim=0) == 32).all()
    assert torch.unique(x, dim=0).shape[0] == 64


def test_sobol_continuation_equals_tail_of_longer_draw():
    full = sobol_design(SPACE, 24, seed=3)
    head = sobol_design(SPACE, 8, seed=3)
    tail = sobol_design(SPACE, 16, seed=3, skip=8)
    assert torch.equal(head, full[:8])
    assert torch.equal(tail, full[8:])
    # a chunked continuation (as the campaign does it) gives the same sequence
    chunks = torch.cat([sobol_design(SPACE, 5, seed=3, skip=s) for s in range(0, 20, 5)])
    assert torch.equal(chunks, sobol_design(SPACE, 20, seed=3))


def test_sobol_seed_determines_design():
    assert torch.equal(sobol_design(SPACE, 8, seed=1), sobol_design(SPACE, 8, seed=1))
    assert not torch.equal(sobol_design(SPACE, 8, seed=1), sobol_design(SPACE, 8, seed=2))


def test_sobol_rejects_negative_n():
    with pytest.raises(ValueError, match="non-negative"):
        sobol_design(SPACE, -1, seed=0)
    assert sobol_design(SPACE, 0, seed=0, skip=4).shape == (0, 3)


def test_sobol_zero_points_from_start():
    assert sobol_design(SPACE, 0, seed=0).shape == (0, 3)


def test_unit_maps_invert_and_dict_round_trip():
    x = sobol_design(SPACE, 5, seed=0)
    assert torch.allclose(SPACE.from_unit(SPACE.to_unit(x)), x, rtol=0, atol=1e-12)
    assert torch.equal(SPACE.to_unit(SPACE.bounds()), torch.tensor([[0.0] * 3, [1.0] * 3],
                                                                   dtype=torch.float64))
    rows = SPACE.as_dicts(x)
    assert list(rows[0]) == list(SPACE.names)
    assert torch.equal(SPACE.as_tensor(rows), x)


def test_contains_flags_points_outside():
    x = torch.tensor([[1.0, 0.75, 0.3], [9.0, 5.25, 1.5], [0.99, 1.0, 1.0], [5.0, 5.3, 1.0]],
                     dtype=torch.float64)
    assert SPACE.contains(x).tolist() == [True, True, False, False]


@pytest.mark.parametrize("kwargs, needle", [
    (dict(names=(), lower=(), upper=()), "at least one"),
    (dict(names=("a", "b"), lower=(0.0,), upper=(1.0, 2.0)), "equal lengths"),
    (dict(names=("a",), lower=(1.0,), upper=(1.0,)), "'a'"),
    (dict(names=("a", "b"), lower=(0.0, 3.0), upper=(1.0, 2.0)), "'b'"),
])
def test_design_space_rejects_bad_bounds(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        DesignSpace(**kwargs)


def test_integer_axes_are_whole_and_balanced():
    space = DesignSpace(names=("x", "k"), lower=(0.0, 0.0), upper=(1.0, 3.0), integer=(False, True))
    for x in (sobol_design(space, 64, seed=1), random_design(space, 400, seed=1)):
        assert space.contains(x).all()
        assert torch.equal(x[:, 1], x[:, 1].round())
        counts = x[:, 1].long().bincount(minlength=4)
        assert counts.min() >= 0.15 * len(x)  # end values get their share, not half of it
    assert sobol_design(space, 64, seed=1)[:, 1].long().bincount().tolist() == [16, 16, 16, 16]
    assert torch.equal(space.snap(torch.tensor([[1.7, 2.6], [-0.2, 7.0]], dtype=torch.float64)),
                       torch.tensor([[1.0, 3.0], [0.0, 3.0]], dtype=torch.float64))
    assert space.contains(torch.tensor([[0.5, 1.5]], dtype=torch.float64)).tolist() == [False]
    with pytest.raises(ValueError, match="'k'.*whole bounds"):
        DesignSpace(names=("x", "k"), lower=(0.0, 0.5), upper=(1.0, 3.0), integer=(False, True))


def test_quantize_forgets_the_last_bits_of_a_point():
    """Two optimisers that return the same point up to rounding (a few ulps, as another CPU's
    kernels give) land on one grid point: bitwise equal, so one scenario and one case id."""
    x = sobol_design(SPACE, 32, seed=5)
    ulps = torch.randint(-4, 5, x.shape, generator=torch.Generator().manual_seed(0)).double()
    nudged = x + ulps * torch.finfo(torch.float64).eps * x.abs()
    assert not torch.equal(nudged, x)
    assert torch.equal(SPACE.quantize(nudged), SPACE.quantize(x))
    # on the grid l + k·δ, within half a step of the input, and a fixed point
    q = SPACE.quantize(x)
    lo, hi = SPACE.bounds()
    step = (hi - lo) * SPACE.resolution
    k = (q - lo) / step
    assert torch.allclose(k, k.round(), rtol=0, atol=1e-6)
    assert ((q - x).abs() <= 0.5 * step * (1 + 1e-9)).all()
    assert torch.equal(SPACE.quantize(q), q)


def test_quantized_points_stay_in_the_box_and_on_the_integer_lattice():
    space = DesignSpace(names=("x", "k"), lower=(0.1, 0.0), upper=(0.7, 3.0), integer=(False, True))
    x = torch.tensor([[0.1, 0.4], [0.7, 2.6], [0.7 - 1e-12, 3.0], [0.1 + 1e-12, 0.0], [-5.0, 9.0]],
                     dtype=torch.float64)
    q = space.quantize(x)
    assert (q >= space.bounds()[0]).all() and (q <= space.bounds()[1]).all()
    assert q[:, 0].tolist() == [0.1, 0.7, 0.7, 0.1, 0.1]  # the bounds themselves are grid points
    assert q[:, 1].tolist() == [0.0, 3.0, 3.0, 0.0, 3.0]
    with pytest.raises(ValueError, match="float64"):
        space.quantize(x.float())
    with pytest.raises(ValueError, match="resolution"):
        DesignSpace(names=("x",), lower=(0.0,), upper=(1.0,), resolution=0.0)


def test_round_seeds_are_distinct_across_rounds_and_campaign_seeds():
    from closedloop.planners.design import round_seed

    seeds = {round_seed(s, r) for s in range(3) for r in range(1000)}
    assert len(seeds) == 3000  # no two (seed, round) pairs share a random stream
    assert round_seed(2, 5) == 2005  # the formula every stored campaign was seeded with
