"""surrogates.sampling: how many cases an epoch visits (√B growth, whole mini-batches, never fewer than
the new ones), which ones (every new case, a fresh sample of the others), and the judged chunk."""
from __future__ import annotations

import torch

from closedloop.surrogates.sampling import judge_chunk, sample_size, with_new_first


def test_a_sampled_epoch_grows_like_the_square_root_of_the_cases_and_always_holds_the_new_ones():
    """s = min(B, max(⌈c √B⌉, new)), rounded up to whole mini-batches: four times the cases, twice the
    sample; never fewer than the new cases; every case without a scale. Each draw holds every new index once and a fresh sample of
    the others, so the old cases are all visited over a few epochs."""
    assert sample_size(12, 3.0) == 11 and sample_size(48, 3.0) == 21  # ⌈10.39⌉, ⌈20.78⌉
    assert sample_size(16, 2.0) == 8 and sample_size(64, 2.0) == 16  # exactly 2× for 4× the cases
    assert sample_size(8, 3.5) == 8 and sample_size(20, 3.0, new=16) == 16 and sample_size(20, None) == 20
    assert [sample_size(n, 3.0, batch=2) for n in (12, 16, 20, 24)] == [12, 12, 14, 16]  # whole mini-batches
    generator = torch.Generator().manual_seed(1)
    new = torch.tensor([17, 18, 19])
    draws = [with_new_first(20, new, 8, generator) for _ in range(12)]
    assert all(len(d) == 8 and len(set(d.tolist())) == 8 and set(new.tolist()) <= set(d.tolist()) for d in draws)
    assert set().union(*(d.tolist() for d in draws)) == set(range(20))  # the old cases each drawn at times
    assert len({tuple(sorted(d.tolist())) for d in draws}) > 1  # a fresh sample each epoch
    assert not all(torch.equal(torch.sort(d[:3]).values, new) for d in draws)  # new ones mixed in, not first


def test_a_judged_rollout_takes_the_mini_batch_times_the_segment():
    assert judge_chunk(4, 6) == 24 and judge_chunk(1, 1) == 1
