"""The surrogate spec: it round-trips through a dict (what a checkpoint stores) and names a bad field."""
from __future__ import annotations

import dataclasses
import math

import pytest

from closedloop.surrogates import SurrogateSpec
from closedloop.surrogates.coupling import spec_for


def test_spec_dict_round_trip(problem):
    spec = spec_for(problem, hidden_channels=5, use_closure=False)
    d = spec.to_dict()
    assert isinstance(d["shape"], list)
    assert SurrogateSpec.from_dict(d) == spec
    assert spec.initial_diffusivity == problem.eddy_diffusivity
    assert math.isclose(spec.output_interval, 10.0)


def test_a_bad_choice_is_refused_naming_the_field(problem):
    spec = spec_for(problem)
    for field, value in (("variant", "quantum"), ("closure", "transformer"), ("advection", "spectral"),
                         ("closure_form", "gated"), ("closure_scale", "max"), ("closure_gain", 0.0),
                         ("initial_sink", -1.0)):
        with pytest.raises(ValueError, match=rf"^{field}: "):
            dataclasses.replace(spec, **{field: value})
    with pytest.raises(ValueError, match="^memory_gate: "):
        dataclasses.replace(spec, variant="markovian", memory_gate=True)
    assert dataclasses.replace(spec, use_closure=False).effective_variant == "physics_only"
