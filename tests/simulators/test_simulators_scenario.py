"""Scenario validation (errors name the offending field), parameter paths, case identity and the shipped
hall scenario."""
from __future__ import annotations

import math
from collections.abc import Callable

import pydantic
import pytest

from closedloop.simulators import Scenario, load_scenario
from closedloop.simulators.geometry import room_geometry
from sim_test_scenarios import ROOM_TOML, room, room_data
from tests.conftest import REPO


def _set(path: str, value) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return edit


def _append(key: str, item: dict) -> Callable[[dict], None]:
    return lambda data: data[key].append(item)


# (id, edit of the room's TOML data, substrings the error message must contain)
MALFORMED = [
    ("obstacle_min_above_max", _set("obstacles.0.min", [6.0, 2.5, 0.0]), ["obstacles.0", "min.x"]),
    ("obstacle_outside_room", _append("obstacles", {"min": [9.0, 5.0, 0.0], "max": [11.0, 6.0, 1.0]}),
     ["obstacles.2", "outside the room along x"]),
    ("source_outside_room", _set("source.x", 10.5), ["source.x"]),
    ("source_on_the_floor", _set("source.z", 0.0), ["source.z"]),
    ("source_inside_obstacle", _set("source", {"x": 5.0, "y": 3.0, "z": 1.5, "rate": 1.0}),
     ["source", "obstacle 0", "pillar"]),
    ("source_stop_zero", _set("source.stop", 0.0), ["source.stop"]),
    ("source_window_reversed", lambda d: d["source"].update(start=50.0, stop=20.0), ["source", "stop"]),
    ("negative_rate", _set("source.rate", -1.0), ["source.rate"]),
    ("negative_eddy_diffusivity", _set("eddy_diffusivity", -0.01), ["eddy_diffusivity"]),
    ("nan_eddy_diffusivity", _set("eddy_diffusivity", math.nan), ["eddy_diffusivity"]),
    ("unknown_top_level_key", _set("eddy_diffusion", 0.02), ["eddy_diffusion", "xtra"]),
    ("unknown_nested_key", _set("source.spead", 1.0), ["source.spead", "xtra"]),
    ("plane_min_above_max", _set("plane", {"z_min": 2.0, "z_max": 1.0}), ["plane", "z_min"]),
    ("plane_above_ceiling", _set("plane.z_max", 3.5), ["plane.z_max"]),
    ("horizon_not_multiple", _set("time.horizon", 125.0), ["time", "horizon", "output_interval"]),
    ("room_not_multiple_of_cell", _set("room.size", [10.2, 6.0, 3.0]), ["room", "size along x",
                                                                       "cell_size"]),
    ("room_too_thin", _set("room.size", [10.0, 6.0, 0.5]), ["room", "size along z"]),
    ("inlet_leaves_face", _set("inlets.0.center", [5.8, 2.25]), ["inlets.0", "leaves the x- face",
                                                                 "along y"]),
    ("exhaust_leaves_face", _set("exhausts.0.center", [4.5, 2.9]), ["exhausts.0", "along z"]),
    ("vent_smaller_than_cell", _set("inlets.0.size", [0.25, 0.5]), ["inlets.0.size"]),
    ("bad_face", _set("inlets.0.face", "w+"), ["inlets.0.face"]),
    ("no_inlets", _set("inlets", []), ["inlets"]),
    ("missing_exhausts", lambda d: d.pop("exhausts"), ["exhausts"]),
    ("negative_speed", _set("inlets.0.speed", 0.0), ["inlets.0.speed"]),
    ("duplicate_probe_names", _set("probes.1.name", "desk"), ["probes", "unique"]),
    ("probe_outside_room", _set("probes.0.position", [7.75, 6.5, 1.25]), ["probes.0", "y"]),
    ("bad_probe_name", _set("probes.0.name", "desk 1"), ["probes.0.name"]),
    ("one_stage_ssp_rk2", _set("numerics", {"time_stepping": "ssp_rk2", "stages": 1}), ["numerics", "stages", "s >= 2"]),
    ("multi_stage_euler", _set("numerics", {"time_stepping": "euler", "stages": 3}), ["numerics", "stages", "1 stage"]),
    ("too_many_stages", _set("numerics", {"stages": 64}), ["numerics.stages"]),
]


@pytest.mark.parametrize("edit, fields", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_scenario_names_the_field(edit, fields):
    data = room_data()
    Scenario.model_validate(data)  # the unedited room is valid
    edit(data)
    with pytest.raises((pydantic.ValidationError, ValueError)) as info:
        Scenario.model_validate(data)
    err = info.value
    if isinstance(err, pydantic.ValidationError):
        # only the locations and messages: the echoed input would name every field anyway
        msg = "\n".join(".".join(map(str, e["loc"])) + ": " + e["msg"] for e in err.errors())
    else:
        msg = str(err)
    for f in fields:
        assert f in msg, f"{f!r} not in error message:\n{msg}"


def test_load_scenario_reads_the_room():
    s = load_scenario(ROOM_TOML)
    assert s.name == "room" and s.room.shape == (20, 12, 6)
    assert [o.name for o in s.obstacles] == ["pillar", "desk"]
    assert s.time.output_times() == [10.0 * k for k in range(13)]
    assert s.source.stop is None and s.eddy_diffusivity == 0.02


def test_load_scenario_error_for_malformed_file(tmp_path):
    text = ROOM_TOML.read_text().replace("eddy_diffusivity = 0.02", "eddy_diffusivity = -0.02")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(pydantic.ValidationError, match="eddy_diffusivity"):
        load_scenario(path)


@pytest.mark.parametrize("path", ["source.q", "nosuch.x", "inlets.5.speed", "inlets.x.speed",
                                  "source.x.y", "room"])
def test_with_parameters_bad_path_raises_key_error_naming_it(path):
    s = room()
    if path == "room":  # a valid path, but a whole sub-model replaced by a number is invalid
        with pytest.raises(pydantic.ValidationError, match="room"):
            s.with_parameters({path: 1.0})
        return
    with pytest.raises(KeyError, match=path.replace(".", r"\.")):
        s.with_parameters({path: 1.0})
    with pytest.raises(KeyError, match=path.replace(".", r"\.")):
        s.get_parameter(path)


def test_with_parameters_replaces_revalidates_and_leaves_original():
    s = room()
    t = s.with_parameters({"source.x": 3.0, "inlets.0.speed": 1.2, "eddy_diffusivity": 0.05})
    assert (t.source.x, t.inlets[0].speed, t.eddy_diffusivity) == (3.0, 1.2, 0.05)
    assert (s.source.x, s.inlets[0].speed, s.eddy_diffusivity) == (2.5, 0.5, 0.02)
    assert t.get_parameter("inlets.0.speed") == 1.2
    with pytest.raises(pydantic.ValidationError, match="source.x"):
        s.with_parameters({"source.x": 12.0})
    with pytest.raises(pydantic.ValidationError, match="obstacle 0"):
        s.with_parameters({"source.x": 5.0, "source.y": 3.0})  # into the pillar
    with pytest.raises(pydantic.ValidationError):
        s.source.x = 3.0  # frozen


def test_with_parameters_reaches_tuple_fields():
    s = room()
    t = s.with_parameters({"inlets.0.center.0": 2.0, "obstacles.1.max.2": 1.5})
    assert t.inlets[0].center == (2.0, 2.25) and t.obstacles[1].max == (8.5, 1.5, 1.5)
    assert s.get_parameter("probes.0.position.0") == 7.75


def test_case_id_stable_and_content_based(tmp_path):
    a = load_scenario(ROOM_TOML)
    b = load_scenario(ROOM_TOML)
    assert a.case_id() == b.case_id()
    assert len(a.case_id()) == 16 and int(a.case_id(), 16) >= 0
    # equal content from other routes: a dict, a dump round trip, a TOML with ints and reordered tables
    assert Scenario.model_validate(room_data()).case_id() == a.case_id()
    assert Scenario.model_validate(a.model_dump()).case_id() == a.case_id()
    assert Scenario.model_validate_json(a.model_dump_json()).case_id() == a.case_id()
    text = ROOM_TOML.read_text().replace("size = [10.0, 6.0, 3.0]", "size = [10, 6, 3]")
    assert "size = [10, 6, 3]" in text
    (tmp_path / "ints.toml").write_text(text)
    assert load_scenario(tmp_path / "ints.toml").case_id() == a.case_id()
    # a no-op parameter change keeps the id; every real change moves it
    assert a.with_parameters({"source.x": 2.5}).case_id() == a.case_id()
    ids = {a.case_id()}
    for change in ({"source.x": 3.0}, {"eddy_diffusivity": 0.021}, {"inlets.0.speed": 0.6},
                   {"time.horizon": 130.0}, {"source.stop": 60.0}, {"plane.z_max": 1.9}):
        ids.add(a.with_parameters(change).case_id())
    assert len(ids) == 7
    # tiny changes are not rounded away
    assert a.with_parameters({"source.x": 2.5 + 1e-12}).case_id() != a.case_id()


def test_overlapping_inlet_and_exhaust_are_rejected_at_validation():
    data = room_data()
    data["exhausts"].append({"face": "x-", "center": [1.5, 2.25], "size": [1.0, 0.5]})
    with pytest.raises((pydantic.ValidationError, ValueError)) as info:
        Scenario.model_validate(data)
    assert "exhausts.1" in str(info.value) or "inlets.0" in str(info.value)


def test_hall_scenario_matches_the_paper_plane_grid():
    hall = load_scenario(REPO / "configs" / "scenarios" / "hall.toml")
    assert hall.room.shape[:2] == (49, 26) and hall.room.spacing[:2] == (0.5, 0.5)
    assert len(hall.inlets) >= 3 and all(i.face == "z+" for i in hall.inlets)
    assert hall.flow.model == "navier_stokes" and hall.diffusivity.model == "eddy_viscosity"
    geo = room_geometry(hall)
    assert 0.9 * geo.fluid.numel() < geo.fluid.sum() < geo.fluid.numel()
