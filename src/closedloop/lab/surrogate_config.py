"""``[surrogate]`` of a campaign config: the hybrid model (surrogates/model.py) and how each round
trains it (surrogates/training.py).

The defaults are the learner measured in ``bench/learning_curve.py``: the room below and above the
band, TVD advection, a learned sink and the bounded multiplicative closure c̄·(1 + g tanh M), g = 0.05.
Round 0 is a staged fit: ``physics_stage_epochs`` of the physics fields alone (closure frozen, all
cases at once, ``physics_stage_learning_rate``), then ``epochs`` of physics and closure in
mini-batches of ``batch_size`` cases at ``learning_rate``. Each later round warm-starts from the
round before: ``warm_start_epochs`` at ``warm_start_learning_rate``, over the whole horizon (the
curriculum is not restarted unless ``warm_start_curriculum``), AdamW's moments kept or not
(``warm_start_optimizer``).

One declaration per default: a field handed to the model or the trainer takes the library's default
(``SurrogateSpec.hidden_channels``, ``TrainConfig.tbptt_steps``, ...) unless the learner above chose
otherwise. Those choices are written here alone, and differ from the library's on purpose:
``advection``, ``learn_sink``, ``room_layers``, ``closure_form``, ``closure_gain`` (the spec's
defaults are the bare model, and the meaning of a checkpoint written before the field existed:
:meth:`SurrogateSpec.from_dict` fills a missing key from them, so they cannot move) and
``batch_size`` = 2 (the trainer's none means all cases at once). ``epochs`` and ``learning_rate``
have no library default (:class:`TrainConfig` requires them).
"""
from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from closedloop.schema import Strict
from closedloop.surrogates.spec import SurrogateSpec
from closedloop.surrogates.training import TrainConfig

Finite = Annotated[float, Field(allow_inf_nan=False)]

SPEC_FIELDS = {"hidden_channels", "use_closure", "learn_sink", "vertical_exchange", "room_layers", "variant",
               "closure", "closure_layers", "advection", "learn_velocity_correction", "closure_form",
               "closure_gain", "closure_scale", "closure_context"}


class SurrogateConfig(Strict):
    """The hybrid surrogate (surrogates/model.py) and how it is trained (surrogates/training.py)."""

    hidden_channels: int = Field(default=SurrogateSpec.hidden_channels, ge=1, le=256)
    use_closure: bool = Field(default=SurrogateSpec.use_closure)
    variant: Literal["hybrid", "markovian", "data_only", "physics_only"] = Field(default=SurrogateSpec.variant)
    closure: Literal["convgru", "encoder_lstm"] = Field(default=SurrogateSpec.closure)
    closure_layers: int = Field(default=SurrogateSpec.closure_layers, ge=1, le=8)
    advection: Literal["upwind", "tvd"] = "tvd"
    learn_velocity_correction: bool = Field(default=SurrogateSpec.learn_velocity_correction)
    learn_sink: bool = Field(default=True, description="Learn the band's exchange rate λ(x, y) and emission retention")
    vertical_exchange: bool = Field(default=SurrogateSpec.vertical_outflow, description="Sink where the 3D flow leaves the band vertically")
    room_layers: bool = Field(default=True, description="Carry the room below and above the band: what the flow "
                              "takes out of the band comes back elsewhere (replaces vertical_exchange)")
    closure_form: Literal["additive", "multiplicative"] = "multiplicative"
    closure_gain: Finite = Field(default=0.05, gt=0, le=1,
                                 description="Largest relative change of the multiplicative closure per output interval")
    closure_scale: Literal["peak", "mixed"] = Field(default=SurrogateSpec.closure_scale, description="Scale of the additive correction: "
                                                    "S̄_max Δt, or the well-mixed band's ⟨S̄⟩ Δt")
    closure_context: bool = Field(default=SurrogateSpec.closure_context, description="ConvGRU gates also see the plane mean of inputs and memory")
    physics_learning_rate: Finite | None = Field(default=TrainConfig.physics_learning_rate, gt=0, le=1,
                                                 description="For D, δu, λ after the physics stage; default: learning_rate")
    physics_warmup_epochs: int = Field(default=TrainConfig.physics_warmup_epochs, ge=0, description="First epochs of the closure stage fit the "
                                       "physics fields alone (same optimiser; see physics_stage_epochs)")
    physics_stage_epochs: int = Field(default=10, ge=0, description="Round 0 first fits the physics fields alone "
                                      "for this many epochs (all cases at once, its own optimiser, best weights kept)")
    physics_stage_learning_rate: Finite = Field(default=1e-2, gt=0, le=1,
                                                description="Learning rate of the physics stage")
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
                        description="Where training runs: auto takes a GPU when present")
    epochs: int = Field(default=20, ge=0, description="Epochs of round 0's closure stage")
    warm_start_epochs: int = Field(default=4, ge=0, description="Epochs of each later round (a warm start)")
    learning_rate: Finite = Field(default=1e-3, gt=0, le=1)
    warm_start_learning_rate: Finite | None = Field(default=None, gt=0, le=1,
                                                    description="Learning rate of warm starts; default: learning_rate")
    warm_start_curriculum: bool = Field(default=False, description="Warm starts run the curriculum again "
                                        "(default: the whole horizon from their first epoch)")
    warm_start_batches: int | None = Field(
        default=TrainConfig.max_batches, ge=1, description="A warm start's epoch takes at most this many mini-batches (a fresh shuffled "
        "order each epoch), so its training time does not grow with the cases; none: every case each epoch")
    warm_start_sample: Finite | None = Field(
        default=TrainConfig.sample_scale, gt=0, description="A warm start's epoch trains on the cases new since the "
        "round before and a fresh random sample of the others, ⌈warm_start_sample·√n⌉ of the n cases in all (never "
        "fewer than the new ones, whole mini-batches), so its optimiser steps grow like √n; none: every case each epoch")
    judge_cases: int | None = Field(default=TrainConfig.judge_cases, ge=1, description="Each epoch's loss, which picks the kept weights, "
                                    "on at most this many cases (a seeded subset, fixed per training); none: all")
    compile: bool = Field(default=True, description="Fuse the physics substep with torch.compile in training and "
                          "prediction (eager where it cannot compile; $CLOSEDLOOP_COMPILE, when set, decides)")
    warm_start_optimizer: Literal["fresh", "kept"] = Field(
        default="fresh", description="A warm start's AdamW: a fresh one, or the moments the round before ended with")
    tbptt_steps: int = Field(default=TrainConfig.tbptt_steps, ge=1)
    loss_floor: Finite = Field(default=TrainConfig.loss_floor, gt=0)
    curriculum: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list,
                                                          description="Rollout lengths in output steps")
    weight_decay: Finite = Field(default=TrainConfig.weight_decay, ge=0)
    smoothness: Finite = Field(default=TrainConfig.smoothness, ge=0)
    batch_size: int | None = Field(default=2, ge=1, description="Cases per optimiser step (seeded mini-batches); "
                                   "none: chosen from training_memory_gb")
    training_memory_gb: Finite | None = Field(
        default=None, gt=0, description="Memory budget that chooses the mini-batch when batch_size is not set: the "
        "fewest equal mini-batches whose estimate (surrogates/memory.py) fits, all cases at once when they fit; "
        "default: 2 GiB (or a quarter of this machine's memory if less) on the CPU, a quarter of the GPU's")
    max_memory_gb: Finite | None = Field(default=None, gt=0, description="Refuse training whose estimated memory "
                                         "is larger (surrogates/memory.py); default: half of this machine's memory")

    @model_validator(mode="after")
    def _variant(self) -> SurrogateConfig:
        if self.variant == "data_only" and not self.use_closure:
            raise ValueError("variant: 'data_only' needs use_closure = true")
        if self.variant == "data_only" and self.closure_form == "multiplicative":
            raise ValueError("closure_form: 'multiplicative' cannot start from zero without physics; "
                             "variant 'data_only' needs 'additive'")
        if self.warm_start_sample is not None and self.warm_start_batches is not None:
            raise ValueError("warm_start_sample: sets a warm start's cases itself; leave warm_start_batches unset")
        return self

    def spec_options(self) -> dict[str, Any]:
        """The model's options for :func:`closedloop.surrogates.coupling.spec_for`, the one builder
        of a :class:`SurrogateSpec` (the plane problem supplies the grid and D₀)."""
        return self.model_dump(include=SPEC_FIELDS)

    def schedule(self, round_index: int, seed: int) -> list[TrainConfig]:
        """How a round trains, as the stages of :func:`closedloop.surrogates.training.train_stages`.

        Round 0: the physics stage (``physics_stage_epochs`` of the physics fields alone, all cases
        at once, at ``physics_stage_learning_rate``; none when 0), then the closure stage (``epochs``,
        the curriculum, ``physics_warmup_epochs``). Later rounds: one warm start of
        ``warm_start_epochs`` at ``warm_start_learning_rate`` (the physics fields too, when it is
        set), over the whole horizon unless ``warm_start_curriculum``, on ⌈c √n⌉ cases an epoch when
        ``warm_start_sample`` = c.
        """
        closure = TrainConfig(epochs=self.epochs, learning_rate=self.learning_rate, tbptt_steps=self.tbptt_steps,
                              loss_floor=self.loss_floor, seed=seed, curriculum=tuple(self.curriculum),
                              weight_decay=self.weight_decay, smoothness=self.smoothness,
                              physics_learning_rate=self.physics_learning_rate,
                              physics_warmup_epochs=self.physics_warmup_epochs, batch_size=self.batch_size,
                              judge_cases=self.judge_cases)
        if round_index > 0:
            rate = self.warm_start_learning_rate or self.learning_rate
            physics_rate = self.physics_learning_rate if self.warm_start_learning_rate is None else rate
            return [dataclasses.replace(closure, epochs=self.warm_start_epochs, learning_rate=rate,
                                        physics_learning_rate=physics_rate, physics_warmup_epochs=0,
                                        max_batches=self.warm_start_batches, sample_scale=self.warm_start_sample,
                                        curriculum=closure.curriculum if self.warm_start_curriculum else ())]
        if not self.physics_stage_epochs:
            return [closure]
        physics = dataclasses.replace(closure, epochs=self.physics_stage_epochs, curriculum=(), batch_size=None,
                                      physics_learning_rate=self.physics_stage_learning_rate,
                                      physics_warmup_epochs=self.physics_stage_epochs)
        return [physics, closure]
