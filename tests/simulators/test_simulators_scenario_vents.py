"""A vent covered by obstacles is refused at load (fully) or named with its covered fraction (partly),
by the same rules the grid uses, without allocating the grid."""
from __future__ import annotations

import random
import warnings

import pytest
from pydantic import ValidationError

from closedloop.simulators import Scenario, load_scenario
from closedloop.simulators.geometry import room_geometry, vent_faces
from closedloop.simulators.scenario import PartlyCovered, vent_coverage
from tests.conftest import ROOM


def with_obstacle(lo, hi, **changes) -> dict:
    data = load_scenario(ROOM).model_dump(mode="json")
    data["obstacles"].append({"name": "cabinet", "min": list(lo), "max": list(hi)})
    data.update(changes)
    return data


def test_a_fully_covered_inlet_is_refused_naming_it():
    with pytest.raises(ValidationError, match=r"inlets.0: its opening on x- is covered by obstacles \(all 2 of its "
                                              r"cell faces"):
        Scenario.model_validate(with_obstacle((0.0, 0.5, 1.5), (0.6, 2.5, 3.0)))


def test_a_fully_covered_exhaust_is_refused_naming_it():
    with pytest.raises(ValidationError, match=r"exhausts.0: its opening on x\+ is covered"):
        Scenario.model_validate(with_obstacle((9.6, 3.0, 1.0), (10.0, 6.0, 3.0)))


def test_a_half_covered_inlet_is_accepted_with_its_fraction():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Scenario.model_validate(with_obstacle((0.0, 0.5, 1.5), (0.6, 1.6, 3.0)))
    messages = [str(w.message) for w in caught if issubclass(w.category, PartlyCovered)]
    assert messages == ["inlets.0: 50% of its opening on x- is covered by obstacles (1 of 2 cell faces); "
                        "only the rest passes air"]


def test_coverage_agrees_with_the_grid():
    """For random boxes near the inlet wall: faces − covered = the grid's open vent faces."""
    rng = random.Random(3)
    base = load_scenario(ROOM).with_parameters({"room.cell_size": 0.25})
    checked = 0
    for _ in range(40):
        x1, y0, z0 = rng.choice([0.25, 0.5, 1.0]), rng.uniform(0, 3), rng.uniform(0, 2.5)
        ob = {"name": "box", "min": [0.0, y0, z0], "max": [x1, y0 + rng.uniform(0.2, 2), z0 + rng.uniform(0.2, 1)]}
        data = base.model_dump(mode="json")
        data["obstacles"].append(ob)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scenario = Scenario.model_validate(data)
        except ValidationError:
            continue  # e.g. the source or a probe inside the box, or the inlet fully covered
        faces, covered = vent_coverage(scenario.inlets[0], scenario.room, scenario.obstacles)
        assert int(vent_faces(scenario.inlets[0], room_geometry(scenario)).sum()) == faces - covered
        checked += 1
    assert checked >= 20
