"""Nothing a user types can crash the lab: a table of bad inputs across every entry point.

Each is refused before any compute (no simulation starts, no case file or checkpoint is written),
exits 2 (or, for a deployment trigger, is refused by the server) with the field or file named in
the message and no traceback, and leaves everything already written unchanged (checksums of the
campaign directory before and after).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from closedloop.cli import app
from tests.cli.cli_runner import flat, runner
from tests.conftest import ROOM, SMOKE

ROOM_TEXT = ROOM.read_text()
CONFIG_TEXT = SMOKE.read_text().replace('scenario = "scenarios/room.toml"', f'scenario = "{ROOM.as_posix()}"')


@dataclass(frozen=True)
class Bad:
    """One bad input: the command (``{scenario}``, ``{config}``, ``{camp}``, ``{model}``, ``{tmp}``
    are filled in), what the file it names holds, and what the message must say."""

    name: str
    args: tuple[str, ...]
    says: str
    text: str | bytes | None = None  # the scenario or config file written to {tmp}/input.toml


def scenario(old: str, new: str) -> str:
    assert old in ROOM_TEXT, old
    return ROOM_TEXT.replace(old, new, 1)


def config(old: str, new: str) -> str:
    assert old in CONFIG_TEXT, old
    return CONFIG_TEXT.replace(old, new, 1)


SIM = ("simulate", "{tmp}/input.toml", "--out", "{tmp}/out")
RUN = ("campaign", "run", "{tmp}/input.toml", "--dir", "{tmp}/out")
STEER = ("steer", "{camp}")
BAD = [
    # ---------------------------------------------------------------- simulate: the file
    Bad("sim-missing", ("simulate", "{tmp}/nope.toml", "--out", "{tmp}/out"), "nope.toml: scenario file not found"),
    Bad("sim-not-toml", SIM, "input.toml: not valid TOML", "a = = 1"),
    Bad("sim-binary", SIM, "input.toml: not UTF-8 text", bytes(range(256))),
    Bad("sim-latin1", SIM, "not UTF-8 text (byte 0xe9", ROOM_TEXT.replace('name = "room"', 'name = "café"').encode("latin-1")),
    Bad("sim-nul", SIM, "binary content", ROOM_TEXT + "\x00"),
    # ---------------------------------------------------------------- simulate: the fields
    Bad("sim-unknown-field", SIM, "colour", scenario('name = "room"', 'name = "room"\ncolour = "blue"')),
    Bad("sim-diffusivity", SIM, "eddy_diffusivity", scenario("eddy_diffusivity = 0.02", "eddy_diffusivity = -1.0")),
    Bad("sim-cells-whole", SIM, "not a whole number of cell_size", scenario("cell_size = 0.5", "cell_size = 0.7")),
    Bad("sim-cells-few", SIM, "size along y holds fewer than 2 cells", scenario("cell_size = 0.5", "cell_size = [5.0, 6.0, 1.5]")),
    Bad("sim-cells-too-many", SIM, "room.cell_size: 1,000,000,000 cells",
        scenario("size = [10.0, 6.0, 3.0]", "size = [10.0, 10.0, 10.0]").replace("cell_size = 0.5", "cell_size = 0.01")),
    Bad("sim-obstacle-out", SIM, "obstacles.0: extends outside the room", scenario("max = [5.5, 3.5, 3.0]", "max = [5.5, 3.5, 4.0]")),
    Bad("sim-inlet-leaves", SIM, "inlets.0: opening leaves the x- face", scenario("center = [1.5, 2.25]", "center = [5.9, 2.25]")),
    Bad("sim-inlet-small", SIM, "inlets.0.size: smaller than one cell", scenario("size = [1.0, 0.5]\nspeed", "size = [0.2, 0.5]\nspeed")),
    Bad("sim-inlet-speed", SIM, "speed", scenario("speed = 0.5", "speed = 0.0")),
    Bad("sim-inlet-face", SIM, "face", scenario('face = "x-"', 'face = "w-"')),
    Bad("sim-inlet-covered", SIM, "inlets.0: its opening on x- is covered by obstacles",
        scenario("[[inlets]]", '[[obstacles]]\nname = "cabinet"\nmin = [0.0, 0.5, 1.5]\nmax = [0.6, 2.5, 3.0]\n\n[[inlets]]')),
    Bad("sim-exhaust-overlap", SIM, "exhausts.0: opening overlaps inlets.0",
        scenario('face = "x+"', 'face = "x-"').replace("center = [4.5, 2.25]", "center = [1.5, 2.25]")),
    Bad("sim-source-out", SIM, "source.x", scenario("x = 2.5", "x = 12.5")),
    Bad("sim-source-solid", SIM, "lies inside obstacle 0 ('pillar')", scenario("x = 2.5\ny = 4.0", "x = 5.0\ny = 3.0")),
    Bad("sim-source-window", SIM, "stop (1.0) must be after start (5.0)", scenario("start = 0.0", "start = 5.0\nstop = 1.0")),
    Bad("sim-source-rate", SIM, "rate", scenario("rate = 1.0", "rate = -1.0")),
    Bad("sim-gaussian", SIM, "sigma: required", scenario("rate = 1.0", 'rate = 1.0\nshape = "gaussian"')),
    Bad("sim-trajectory-short", SIM, "trajectory: needs at least 2 waypoints",
        scenario("x = 2.5\ny = 4.0\nz = 1.25", "trajectory = [{t = 0.0, x = 2.5, y = 4.0, z = 1.25}]")),
    Bad("sim-trajectory-order", SIM, "waypoint times must increase",
        scenario("x = 2.5\ny = 4.0\nz = 1.25", "trajectory = [{t = 5.0, x = 2.5, y = 4.0, z = 1.25}, "
                                                "{t = 1.0, x = 3.0, y = 4.0, z = 1.25}]")),
    Bad("sim-source-both", SIM, "not both",
        scenario("x = 2.5\ny = 4.0\nz = 1.25", "x = 2.5\ny = 4.0\nz = 1.25\ntrajectory = [{t = 0.0, x = 2.5, y = 4.0, z = 1.25}, "
                                                "{t = 1.0, x = 3.0, y = 4.0, z = 1.25}]")),
    Bad("sim-plane-ceiling", SIM, "plane.z_max (4.0) is above the ceiling", scenario("z_max = 2.0", "z_max = 4.0")),
    Bad("sim-plane-order", SIM, "plane", scenario("z_min = 1.0", "z_min = 2.5")),
    Bad("sim-probe-out", SIM, "probes.0 (desk): x = 17.75 outside the room", scenario("[7.75, 2.0, 1.25]", "[17.75, 2.0, 1.25]")),
    Bad("sim-probe-twice", SIM, "probes", scenario('name = "exhaust"', 'name = "desk"')),
    Bad("sim-horizon", SIM, "horizon (125.0) must be a whole multiple of output_interval", scenario("horizon = 120.0", "horizon = 125.0")),
    Bad("sim-snapshot", SIM, "snapshots: 15.0 s is not an output time", scenario("output_interval = 10.0", "output_interval = 10.0\nsnapshots = [15.0]")),
    Bad("sim-eddy-potential", SIM, "diffusivity.model: 'eddy_viscosity' needs flow.model",
        scenario("[source]", '[diffusivity]\nmodel = "eddy_viscosity"\n\n[source]')),
    Bad("sim-safety", SIM, "safety", scenario("[source]", "[numerics]\nsafety = 1.5\n\n[source]")),
    Bad("sim-advection", SIM, "advection", scenario("[source]", '[numerics]\nadvection = "weno"\n\n[source]')),
    Bad("sim-flow-model", SIM, "flow.model", scenario("[source]", '[flow]\nmodel = "les"\n\n[source]')),
    # ---------------------------------------------------------------- train and predict
    Bad("train-missing", ("train", "{tmp}/nothing", "--out", "{tmp}/out/m.pt"), "nothing: no such file or directory"),
    Bad("train-empty", ("train", "{tmp}", "--out", "{tmp}/out/m.pt"), "no case files (*.parquet) found"),
    Bad("train-epochs", ("train", "{tmp}", "--out", "{tmp}/out/m.pt", "--epochs", "-1"), "epochs"),
    Bad("train-hidden", ("train", "{tmp}", "--out", "{tmp}/out/m.pt", "--hidden", "0"), "hidden"),
    Bad("train-rate", ("train", "{tmp}", "--out", "{tmp}/out/m.pt", "--learning-rate", "0"), "learning-rate"),
    Bad("predict-missing", ("predict", "{tmp}/none.pt", str(ROOM), "--out", "{tmp}/out"), "none.pt: checkpoint not found"),
    Bad("predict-junk", ("predict", "{tmp}/input.toml", str(ROOM), "--out", "{tmp}/out"),
        "input.toml: not a readable closedloop checkpoint", "junk"),
    Bad("predict-bad-scenario", ("predict", "{model}", "{tmp}/input.toml", "--out", "{tmp}/out"), "eddy_diffusivity",
        scenario("eddy_diffusivity = 0.02", "eddy_diffusivity = 0.0")),
    Bad("predict-other-grid", ("predict", "{model}", "{tmp}/input.toml", "--out", "{tmp}/out"),
        "input.toml: its plane grid/mask differs", scenario("cell_size = 0.5", "cell_size = 0.25")),
    Bad("predict-other-interval", ("predict", "{model}", "{tmp}/input.toml", "--out", "{tmp}/out"),
        "time.output_interval 20.0 differs from the model's 10.0", scenario("output_interval = 10.0", "output_interval = 20.0")),
    # ---------------------------------------------------------------- campaign run
    Bad("run-missing", ("campaign", "run", "{tmp}/nope.toml"), "nope.toml: config file not found"),
    Bad("run-not-toml", RUN, "input.toml: not valid TOML", "name = "),
    Bad("run-binary", RUN, "input.toml: not UTF-8 text", b"\x89PNG\r\n\x1a\n"),
    Bad("run-unknown-field", RUN, "budget.round", config("rounds = 2", "round = 2")),
    Bad("run-name", RUN, "name", config('name = "smoke"', 'name = "smoke campaign!"')),
    Bad("run-batch", RUN, "budget.batch_size", config("batch_size = 4", "batch_size = 1")),
    Bad("run-rounds", RUN, "budget.rounds", config("rounds = 2", "rounds = 0")),
    Bad("run-initial", RUN, "budget.initial_cases", config("initial_cases = 4", "initial_cases = 1")),
    Bad("run-strategy", RUN, "planner.strategy", config('strategy = "variance"', 'strategy = "genius"')),
    Bad("run-epochs", RUN, "surrogate.epochs", config("\nepochs = 20", "\nepochs = -3")),
    Bad("run-device", RUN, "simulation.device", config('device = "cpu"', 'device = "tpu"')),
    Bad("run-path", RUN, "design.parameters.0.path", config('path = "source.x"', 'path = "source.w"')),
    Bad("run-bound", RUN, "design.parameters.0 (source_x): at its high bound 19.0", config("high = 9.0", "high = 19.0")),
    Bad("run-bounds-order", RUN, "design.parameters.0", config("low = 1.0\nhigh = 9.0", "low = 9.0\nhigh = 1.0")),
    Bad("run-scenario-missing", ("campaign", "run", "{tmp}/input.toml"), "scenario: file 'nowhere.toml' not found",
        CONFIG_TEXT.replace(f'scenario = "{ROOM.as_posix()}"', 'scenario = "nowhere.toml"')),
    Bad("run-too-large", RUN, "over simulation.max_cells = 100", CONFIG_TEXT + "max_cells = 100\n"),
    Bad("run-never-valid", RUN, "design: none of 64 Sobol points",
        config("low = 1.0\nhigh = 9.0", "low = 4.6\nhigh = 5.4").replace("low = 0.75\nhigh = 5.25", "low = 2.6\nhigh = 3.4")),
    Bad("run-dir-is-file", ("campaign", "run", str(SMOKE), "--dir", str(SMOKE)), "campaign_dir: "),
    Bad("run-rounds-option", ("campaign", "run", str(SMOKE), "--rounds", "0"), "rounds"),
    Bad("status-not-campaign", ("campaign", "status", "{tmp}"), "not a campaign directory"),
    Bad("repair-no-journal", ("campaign", "repair", "{tmp}"), "no ledger.journal here"),
    # ---------------------------------------------------------------- steer
    Bad("steer-missing", ("steer", "{tmp}/nowhere"), "campaign_dir"),
    Bad("steer-not-campaign", ("steer", "{tmp}"), "campaign_dir"),
    Bad("steer-concept", (*STEER, "--concept", "wind"), "concept"),
    Bad("steer-toward", (*STEER, "--toward", "up"), "toward"),
    Bad("steer-split", (*STEER, "--split", "9"), "split"),
    Bad("steer-layer", (*STEER, "--layer", "closure.nope"), "layers"),
    Bad("steer-base-cases", (*STEER, "--base-cases", "3"), "base_cases"),
    Bad("steer-alpha", (*STEER, "--alpha-min", "1", "--alpha-max", "0.5"), "alpha_min"),
    Bad("steer-reduce", (*STEER, "--reduce", "sideways"), "reduce"),
    Bad("steer-device", (*STEER, "--device", "tpu"), "device"),
    Bad("steer-initial", (*STEER, "--initial", "1"), "initial_experiments"),
    Bad("steer-batch", (*STEER, "--batch-size", "0"), "batch_size"),
]


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "campaign.lock"}


@pytest.fixture(scope="module")
def camp(tmp_path_factory) -> Path:
    from tests.lab.steering_campaign import make_campaign

    return make_campaign(tmp_path_factory.mktemp("bad-inputs"))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A checkpoint trained (0 epochs) on one reference case of room.toml."""
    from closedloop.lab.cases import read_case_dir  # noqa: F401 - the case format the train command reads
    root = tmp_path_factory.mktemp("model")
    assert runner.invoke(app, ["simulate", str(ROOM), "--out", str(root / "ref"), "--device", "cpu"]).exit_code == 0
    assert runner.invoke(app, ["train", str(root / "ref"), "--out", str(root / "m.pt"), "--epochs", "0"]).exit_code == 0
    return root / "m.pt"


def test_there_are_at_least_sixty_distinct_bad_inputs():
    assert len(BAD) >= 60 and len({b.name for b in BAD}) == len(BAD)


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_bad_input_is_refused_by_name_before_compute(bad: Bad, tmp_path: Path, camp: Path, request, monkeypatch):
    from closedloop.lab.steering import targets
    from closedloop.simulators import reference

    model = request.getfixturevalue("model") if any("{model}" in a for a in bad.args) else None

    def no_compute(*args, **kwargs):
        raise AssertionError("a simulation started despite the bad input")

    monkeypatch.setattr(targets, "simulate", no_compute)
    monkeypatch.setattr(reference, "steady_flow", no_compute)  # every simulator path's first compute
    if bad.text is not None:
        path = tmp_path / "input.toml"
        path.write_bytes(bad.text if isinstance(bad.text, bytes) else bad.text.encode())
    args = [a.format(tmp=tmp_path, camp=camp, model=model) for a in bad.args]
    before = tree_digest(camp)
    result = runner.invoke(app, args)
    text = flat(result)
    assert result.exit_code == 2, result.output
    assert bad.says in text, text
    assert "Traceback" not in text and not isinstance(result.exception, (AssertionError, KeyError, TypeError))
    assert not list((tmp_path / "out").rglob("*.parquet")) and not list((tmp_path / "out").rglob("*.pt"))
    assert tree_digest(camp) == before
