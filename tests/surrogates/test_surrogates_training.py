"""Training through rollouts (TBPTT): loss, mini-batches, the schedule, early stopping and the rollout loss."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from closedloop.surrogates.coupling import batch_problems, spec_for
from closedloop.simulators import simulate
from closedloop.surrogates import HybridSurrogate, TrainConfig, train
from closedloop.surrogates.sampling import judge_chunk, judged_subset, mini_batches
from closedloop.surrogates.training import EarlyStopping, Optimiser, rollout_loss, rollout_loss_terms


@pytest.fixture(scope="module")
def two_cases(room_scenario):
    """Two reference cases (40 s, 4 output intervals) of one geometry: forcing, problem, target."""
    base = room_scenario.with_parameters({"time.horizon": 40.0})
    scenarios = [base, base.with_parameters({"source.x": 7.0, "source.y": 2.0,
                                             "inlets.0.speed": 0.8})]
    forcing, problem = batch_problems(scenarios)
    target = torch.stack([simulate(s, device="cpu").plane for s in scenarios]).to(torch.float64)
    return forcing, problem, target


def fresh_model(problem, seed=0):
    torch.manual_seed(seed)
    return HybridSurrogate(spec_for(problem, hidden_channels=4), problem.mask).double()


def test_training_lowers_rollout_loss(two_cases):
    forcing, problem, target = two_cases
    assert target.shape == (2, 5, *problem.mask.shape)
    model = fresh_model(problem)
    before = rollout_loss(model, forcing, target)
    seen = []
    report = train(model, forcing, target,
                   TrainConfig(epochs=10, learning_rate=1e-3, tbptt_steps=4, seed=0),
                   progress=lambda epoch, loss: seen.append((epoch, loss)))
    assert report.initial_loss == pytest.approx(before, rel=1e-12)
    assert len(report.losses) == 10 and [e for e, _ in seen] == list(range(10))
    assert report.best_loss == min(report.losses)
    assert report.best_loss < 0.6 * report.initial_loss, report.losses
    assert 0 <= report.best_epoch < 10
    # the model keeps the best weights: its loss now is the best loss
    assert rollout_loss(model, forcing, target) == pytest.approx(report.best_loss, rel=1e-12)
    # learned something beyond physics: the closure head is no longer zero
    assert model.closure.head.weight.abs().max() > 0
    assert report.seconds > 0


def test_mini_batches_take_one_step_per_batch_and_are_reproducible(two_cases):
    """batch_size = 1 on two cases: two optimiser steps per segment per epoch, in a seeded order."""
    forcing, problem, target = two_cases
    cfg = TrainConfig(epochs=3, learning_rate=1e-3, tbptt_steps=4, seed=3, batch_size=1)
    steps = []
    model = fresh_model(problem)
    hook = register_optimizer_step_post_hook(lambda opt, args, kwargs: steps.append(1))
    try:
        a = train(model, forcing, target, cfg)
    finally:
        hook.remove()
    assert len(steps) == 3 * 2  # 3 epochs × 2 mini-batches × 1 segment (4 intervals)
    b = train(fresh_model(problem), forcing, target, cfg)
    assert a.losses == b.losses  # the shuffle is seeded
    whole = train(fresh_model(problem), forcing, target, TrainConfig(epochs=3, learning_rate=1e-3, tbptt_steps=4, seed=3))
    assert whole.losses != a.losses
    with pytest.raises(ValueError, match="batch_size: must be ≥ 1"):
        train(fresh_model(problem), forcing, target, TrainConfig(epochs=1, learning_rate=3e-3, batch_size=0))


def test_zero_epochs_leaves_model_untouched(two_cases):
    forcing, problem, target = two_cases
    model = fresh_model(problem)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    report = train(model, forcing, target, TrainConfig(epochs=0, learning_rate=3e-3))
    assert report.losses == [] and report.best_epoch == -1
    assert report.initial_loss > 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])


def test_frozen_model_is_not_trained(two_cases):
    """No trainable parameter: the initial loss is reported and nothing else happens."""
    forcing, problem, target = two_cases
    model = fresh_model(problem).requires_grad_(False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    report = train(model, forcing, target, TrainConfig(epochs=2, learning_rate=3e-3, physics_warmup_epochs=1))
    assert report.losses == [] and report.best_epoch == -1 and report.initial_loss > 0
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_schedule_holds_the_closure_through_the_physics_warm_up(two_cases):
    """Closure lr 0 for the warm-up epochs, then its linear warm-up from its first active step;
    the physics group warms up from the first step at its own rate."""
    _, problem, _ = two_cases
    cfg = TrainConfig(epochs=4, learning_rate=1e-3, physics_learning_rate=4e-3, physics_warmup_epochs=2,
                      warmup_steps=2, curriculum=(1, 4))
    opt = Optimiser(fresh_model(problem), cfg, n_steps=4)
    lrs = lambda: [g["lr"] for g in opt.adamw.param_groups]  # noqa: E731
    assert lrs() == [0.0, 2e-3]
    seen = []
    for epoch in range(4):
        seen.append(opt.schedule.begin_epoch(epoch))
        opt.adamw.step()  # no gradients: nothing moves, only the schedule's order is kept
        opt.schedule.lr.step()
        seen.append(lrs())
    assert seen == [1, [0.0, 4e-3], 1, [0.0, 4e-3], 4, [0.5e-3, 4e-3], 4, [1e-3, 4e-3]]


def test_mini_batches_cover_every_case_once_and_early_stopping_keeps_the_best(two_cases):
    forcing, problem, target = two_cases
    floor2 = torch.ones(2, dtype=torch.float64)
    batches = list(mini_batches(forcing, target, floor2, 1, torch.Generator().manual_seed(0)))
    assert len(batches) == 2 and sorted(round(y.sum().item(), 9) for _, y, _ in batches) == sorted(
        round(y.sum().item(), 9) for y in target)
    whole = list(mini_batches(forcing, target, floor2, 5, torch.Generator()))
    assert len(whole) == 1 and whole[0][0] is forcing
    model = fresh_model(problem)
    stop = EarlyStopping(model, judged=1.0, patience=2)
    assert stop.update(model, 0.5) and stop.best == 0.5 and not stop.should_stop
    with torch.no_grad():
        model.closure.head.weight.add_(1.0)
    assert not stop.update(model, 0.7) and not stop.should_stop
    assert not stop.update(model, 0.6) and stop.should_stop
    assert not torch.equal(stop.state["closure.head.weight"], model.closure.head.weight)  # the best weights


def test_a_capped_epoch_takes_its_first_batches_and_a_cap_it_never_reaches_changes_nothing(two_cases):
    """max_batches = 1 on two cases of batch 1: one step per segment per epoch, each epoch a fresh
    seeded draw, so both cases are visited over a few epochs; a cap of 2 batches is every batch, and
    the training is bitwise the uncapped one."""
    forcing, problem, target = two_cases
    floor2 = torch.ones(2, dtype=torch.float64)
    shuffle = torch.Generator().manual_seed(0)
    firsts = [list(mini_batches(forcing, target, floor2, 1, shuffle, limit=1)) for _ in range(8)]
    assert all(len(b) == 1 for b in firsts)
    assert len({round(b[0][1].sum().item(), 9) for b in firsts}) == 2  # both cases drawn over 8 epochs
    steps = []
    cfg = TrainConfig(epochs=3, learning_rate=1e-3, tbptt_steps=4, seed=3, batch_size=1, max_batches=1)
    hook = register_optimizer_step_post_hook(lambda opt, args, kwargs: steps.append(1))
    try:
        train(fresh_model(problem), forcing, target, cfg)
    finally:
        hook.remove()
    assert len(steps) == 3  # 3 epochs × 1 mini-batch × 1 segment
    uncapped = TrainConfig(epochs=3, learning_rate=1e-3, tbptt_steps=4, seed=3, batch_size=1)
    a = train(fresh_model(problem), forcing, target, uncapped)
    b = train(fresh_model(problem), forcing, target, dataclasses.replace(uncapped, max_batches=2))
    assert a.losses == b.losses
    with pytest.raises(ValueError, match="max_batches: must be ≥ 1"):
        train(fresh_model(problem), forcing, target, TrainConfig(epochs=1, learning_rate=3e-3, max_batches=0))


def test_judged_subset_is_fixed_by_the_seed_and_the_losses_are_its_own(two_cases):
    """judge_cases = 1: the report's losses are the rollout loss of that one case (the same case for
    the initial loss and every epoch); judge_cases ≥ B judges every case."""
    forcing, problem, target = two_cases
    f1, t1 = judged_subset(forcing, target, 1, seed=5)
    f2, t2 = judged_subset(forcing, target, 1, seed=5)
    assert f1.batch_size == 1 and torch.equal(t1, t2)
    assert judged_subset(forcing, target, 2, seed=5)[0] is forcing
    model = fresh_model(problem)
    cfg = TrainConfig(epochs=2, learning_rate=1e-3, tbptt_steps=4, seed=5, judge_cases=1)
    start = rollout_loss(model, f1, t1)
    report = train(model, forcing, target, cfg)
    assert report.initial_loss == pytest.approx(start, rel=1e-12)
    assert rollout_loss(model, f1, t1) == pytest.approx(report.best_loss, rel=1e-12)
    assert report.initial_loss != pytest.approx(rollout_loss(fresh_model(problem), forcing, target), rel=1e-6)
    with pytest.raises(ValueError, match="judge_cases: must be ≥ 1"):
        train(fresh_model(problem), forcing, target, TrainConfig(epochs=1, learning_rate=3e-3, judge_cases=0))


def test_sample_scale_trains_on_the_new_cases_and_judges_every_case(two_cases):
    """sample_scale = 0.5 on two cases (s = ⌈0.5 √2⌉ = 1) with case 1 new: each epoch one step per
    segment, on case 1; the judged losses are still over both cases; a scale that reaches every case
    is the plain training; bad indices and a scale beside max_batches are refused before training."""
    forcing, problem, target = two_cases
    floor2 = torch.ones(2, dtype=torch.float64)
    only = list(mini_batches(forcing, target, floor2, 2, torch.Generator().manual_seed(0), sample=1,
                             new=torch.tensor([1])))
    assert len(only) == 1 and torch.equal(only[0][1], target[1:2])
    cfg = TrainConfig(epochs=2, learning_rate=1e-3, tbptt_steps=4, seed=5, batch_size=1, sample_scale=0.5)
    steps = []
    hook = register_optimizer_step_post_hook(lambda opt, args, kwargs: steps.append(1))
    model = fresh_model(problem)
    start = rollout_loss(model, forcing, target)
    try:
        report = train(model, forcing, target, cfg, new_cases=[1])
    finally:
        hook.remove()
    assert len(steps) == 2  # 2 epochs × 1 case × 1 segment
    assert report.initial_loss == pytest.approx(start, rel=1e-12)
    assert rollout_loss(model, forcing, target) == pytest.approx(report.best_loss, rel=1e-12)
    everything = train(fresh_model(problem), forcing, target, dataclasses.replace(cfg, sample_scale=2.0), new_cases=[1])
    assert everything.losses == train(fresh_model(problem), forcing, target,
                                      dataclasses.replace(cfg, sample_scale=None)).losses  # s = B: every case
    with pytest.raises(ValueError, match=r"new_cases: indices must lie in \[0, 2\)"):
        train(fresh_model(problem), forcing, target, cfg, new_cases=[2])
    with pytest.raises(ValueError, match="sample_scale: sets an epoch's cases itself"):
        train(fresh_model(problem), forcing, target, dataclasses.replace(cfg, max_batches=1))
    with pytest.raises(ValueError, match="sample_scale: must be > 0"):
        train(fresh_model(problem), forcing, target, dataclasses.replace(cfg, sample_scale=0.0))


def test_a_judged_loss_rolls_out_the_mini_batch_times_the_segment_at_once(two_cases, monkeypatch):
    """Mini-batches of 1, segments of 4: judge_chunk = 4 ≥ 2 cases, so the start and each of 2 epochs
    are judged in one rollout of both cases (3 rollouts, not 6)."""

    forcing, problem, target = two_cases
    assert judge_chunk(1, 4) == 4
    model = fresh_model(problem)
    sizes = []
    real = model.rollout
    monkeypatch.setattr(model, "rollout", lambda f, *a, **k: (sizes.append(f.batch_size), real(f, *a, **k))[1])
    train(model, forcing, target, TrainConfig(epochs=2, learning_rate=1e-3, tbptt_steps=4, seed=0, batch_size=1))
    assert sizes == [2, 2, 2]


def test_train_rejects_mismatched_batch(two_cases):
    forcing, problem, target = two_cases
    with pytest.raises(ValueError, match="target has 1 cases but forcing has 2"):
        train(fresh_model(problem), forcing, target[:1], TrainConfig(epochs=1, learning_rate=3e-3))


def test_rollout_loss_zero_for_perfect_prediction_and_floor_bounds_it(two_cases):
    _, _, target = two_cases
    t = target[:, 1:]
    floor2 = (0.05 ** 2) * (t ** 2).sum(dim=(-2, -1)).amax(dim=1)
    assert rollout_loss_terms(t, t, floor2).item() == 0.0
    # predicting zero everywhere costs at most 1 per time (relative error of one)
    zero = rollout_loss_terms(torch.zeros_like(t), t, floor2).item()
    assert 0.5 < zero <= 1.0


def test_rollout_loss_in_chunks_is_the_same_objective(two_cases):
    """Evaluated one case at a time (the mini-batch's working set, with the whole batch's substep count),
    the loss equals the all-at-once one to rounding; a chunk as large as the batch is the same computation."""
    forcing, problem, target = two_cases
    model = fresh_model(problem)
    whole = rollout_loss(model, forcing, target)
    assert rollout_loss(model, forcing, target, chunk=1) == pytest.approx(whole, rel=1e-12)
    assert rollout_loss(model, forcing, target, chunk=2) == whole
    # alone, the slower case would take fewer substeps (the count follows the batch's fastest flow): the
    # chunks keep the whole batch's, or the chunked loss would be another discretisation's
    alone = [rollout_loss(model, forcing.select(torch.tensor([i])), target[i:i + 1]) for i in range(2)]
    assert abs(sum(alone) / 2 - whole) > 1e-4
