"""simulators.recorder.Recorder: the plane is the band reduction, probes read their cells, snapshots
are kept only at their times, and on a stepped open-box run the recorded budget E − M − X closes to
round-off at every output."""
from __future__ import annotations

import torch

from closedloop.physics import Grid, TransportTerms, face_diffusivity, open_faces
from closedloop.physics.integrator import integrate
from closedloop.physics.steppers import STEPPERS
from closedloop.simulators.plane import PlaneReduction
from closedloop.simulators.recorder import Recorder

F64 = torch.float64
GRID = Grid((6, 4, 3), (0.5, 0.5, 0.5))


def _reduction() -> PlaneReduction:
    w = torch.tensor([0.0, 0.5, 0.25], dtype=F64)  # band over layers 1 and half of 2
    fluid = torch.ones(GRID.shape, dtype=F64)
    fluid[2, 1, :] = 0.0  # a solid column
    cw = fluid * w
    den = cw.sum(-1)
    return PlaneReduction(layer_weights=w, column_weights=cw, denominator=den, mask=den > 0)


def _recorder(snapshots=(2.0,)) -> Recorder:
    return Recorder(_reduction(), {"a": (1, 1, 1), "b": (4, 2, 0)}, GRID.cell_volume, snapshots, F64,
                    torch.device("cpu"))


def test_series_shapes_plane_probes_and_snapshots() -> None:
    rec = _recorder()
    fields = [torch.rand(GRID.shape, generator=torch.Generator().manual_seed(k), dtype=F64) for k in range(3)]
    for k, c in enumerate(fields):
        rec.record(float(k), c, emitted=0.5 * k, exhausted=torch.tensor(0.1 * k, dtype=F64))
    plane = rec.plane()
    assert plane.shape == (3, 6, 4) and torch.equal(plane[1], _reduction().average(fields[1]))
    assert torch.all(plane[:, 2, 1] == 0)  # solid column
    probes = rec.probes()
    assert set(probes) == {"a", "b"} and torch.equal(probes["b"], torch.stack([c[4, 2, 0] for c in fields]))
    mass, emitted, exhausted = rec.masses()
    assert torch.allclose(mass, torch.stack([c.sum() * GRID.cell_volume for c in fields]), rtol=1e-15)
    assert emitted.tolist() == [0.0, 0.5, 1.0] and exhausted.dtype == F64
    assert list(rec.snapshots) == [2.0] and torch.equal(rec.snapshots[2.0], fields[2])


def test_budget_of_a_stepped_open_box_closes_at_every_output() -> None:
    """Terms + SSP-RK2 + integrator + recorder: an inlet, an exhaust and a source switched on at 0.35 s."""
    fluid = torch.ones(GRID.shape, dtype=torch.bool)
    vel = [torch.zeros(GRID.face_shape(a), dtype=F64) for a in range(3)]
    vel[0][:, 1:3, 1] = 0.4  # a channel through the box, in at x− and out at x+
    terms = TransportTerms(GRID, tuple(vel), face_diffusivity(0.03, fluid, GRID),
                           tuple(open_faces(fluid, GRID, a).to(F64) for a in range(3)))
    source = torch.zeros(GRID.shape, dtype=F64)
    source[1, 1, 1] = 3.0 / GRID.cell_volume  # 3 mg/s
    rk2 = STEPPERS["ssp_rk2"]
    rec = _recorder(())

    def step(state, t, dt):
        c, x, e = state
        on = t + 0.5 * dt >= 0.35
        c, dx = rk2.step(terms.rate, c, dt, (source if on else None,) * 2)
        return c, x + dx, e + (3.0 * dt if on else 0.0)

    state = (torch.zeros(GRID.shape, dtype=F64), torch.zeros((), dtype=F64), 0.0)
    rec.record(0.0, state[0], state[2], state[1])
    outputs = [0.5 * k for k in range(1, 21)]
    integrate(step, state, sorted(outputs + [0.35]), terms.stable_time_step(0.9),
              lambda s, t: rec.record(t, s[0], s[2], s[1]) if t in outputs else None)
    mass, emitted, exhausted = rec.masses()
    assert len(mass) == 21 and exhausted[-1] > 0.05 * emitted[-1]
    assert abs(emitted[-1].item() - 3.0 * (10.0 - 0.35)) < 1e-12
    assert (emitted - mass - exhausted).abs().max().item() < 1e-13 * emitted[-1].item()
