"""Cross-check: our reference solver against OpenFOAM (ESI v1912) on the same grids, and their speed.

Room (configs/scenarios/room.toml: potential flow, constant K, both codes solving the same equations on
the same Cartesian grid): at cell sizes 0.5 and 0.25 m, the plane's relative L2 and Spearman between the
codes at every output time, the probes and the mass budget of each. Each code's own grid-convergence
error is the relative L2 between its 0.5 m plane and its 0.25 m plane averaged onto the 0.5 m plane grid;
the target is agreement within that error, and Spearman ≥ 0.99 at the final time.

Speed, one core each (the process is pinned with ``taskset -c 0`` by the Makefile line below; torch runs
one thread; OpenFOAM is serial), on one mesh (the room at 0.25 m, 11 520 cells, 600 s of transport):

- flow: our potential-flow solve vs potentialFoam (the solver alone, and with meshing);
- transport: ours (eager and fused) vs scalarTransportFoam at several fixed Courant numbers. Error of
  each: the final plane's relative L2 against a fine-grid solution of the same problem (ours at 0.125 m,
  its plane averaged onto the 0.25 m plane grid). At our error, OpenFOAM's time is read off its
  error-vs-time curve (log-log interpolation) at our error plus 1 % (``matched_error``: the spatial error
  dominates and all runs lie within a few per cent of each other); ``transport_ratio_at_equal_error`` =
  OpenFOAM time / ours on the default path (``simulate()`` with no argument and no environment
  variable: the fused step on this mesh, ``compile_by_default``), with the other step and a 0.1 %
  tolerance beside it.

    taskset -c 0 .venv/bin/python bench/openfoam_check.py   # → bench/results/openfoam_check.json
    .venv/bin/python bench/openfoam_check.py --summarise   # recompute the derived numbers of that file
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from common import machine, write_result  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from closedloop.simulators import load_scenario, simulate  # noqa: E402
from closedloop.simulators.flow import potential_flow  # noqa: E402
from closedloop.simulators.geometry import room_geometry  # noqa: E402
from closedloop.simulators.interface import BuiltinSimulator  # noqa: E402
from closedloop.simulators.openfoam import OpenFOAMSettings, OpenFOAMSimulator  # noqa: E402
from closedloop.simulators.openfoam.mesh import build_mesh  # noqa: E402
from closedloop.simulators.openfoam.runner import Tools  # noqa: E402
from closedloop.simulators.plane import plane_reduction  # noqa: E402
from closedloop.simulators.reference import compile_by_default  # noqa: E402

ROOM = HERE.parent / "configs" / "scenarios" / "room.toml"
CELLS = (0.5, 0.25)
SPEED_CELL, FINE_CELL = 0.25, 0.125
COURANTS = (8.0, 4.0, 2.0, 1.0, 0.5, 0.25)


def room(cell: float, **params):
    scenario = load_scenario(ROOM)
    data = scenario.model_dump(mode="json")
    data["room"]["cell_size"] = cell
    out = type(scenario).model_validate(data)
    return out.with_parameters(params) if params else out


def rel_l2(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    return float(torch.linalg.norm(a[mask] - b[mask]) / torch.linalg.norm(b[mask]))


def spearman(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    return float(spearmanr(a[mask].numpy(), b[mask].numpy()).statistic)


def coarsen(plane: torch.Tensor, fine, coarse) -> torch.Tensor:
    """A fine plane (…, nx·r, ny·r) band-averaged onto the coarse plane grid, weighted by the fluid band
    volume of each fine column (what the coarse band average of the same field would be)."""
    weight = plane_reduction(fine, room_geometry(fine)).denominator
    r = round(coarse.room.spacing[0] / fine.room.spacing[0])
    nx, ny = coarse.room.shape[:2]
    w = weight.reshape(nx, r, ny, r)
    num = (plane * weight).reshape(*plane.shape[:-2], nx, r, ny, r).sum(dim=(-3, -1))
    return torch.where(w.sum(dim=(1, 3)) > 0, num / w.sum(dim=(1, 3)).clamp_min(1e-300), torch.zeros_like(num))


def budget(r) -> dict:
    e, m, x = r.mass_emitted[-1].item(), r.mass_in_domain[-1].item(), r.mass_exhausted[-1].item()
    return {"emitted": e, "in_domain": m, "exhausted": x,
            "closure": float((r.mass_emitted - r.mass_in_domain - r.mass_exhausted).abs().max() / e)}


def cross_check(work: Path) -> dict:
    runs = {}
    for cell in CELLS:
        scenario = room(cell)
        ours = simulate(scenario)
        theirs = OpenFOAMSimulator().simulate(scenario, workdir=work / f"room_{cell}")
        mask = ours.plane_mask
        runs[cell] = (scenario, ours, theirs)
        print(f"room at {cell} m: rel L2 final {rel_l2(theirs.plane[-1], ours.plane[-1], mask):.4f}, "
              f"Spearman {spearman(theirs.plane[-1], ours.plane[-1], mask):.5f}", flush=True)
    out: dict = {"cells": {}}
    for cell, (scenario, ours, theirs) in runs.items():
        mask = ours.plane_mask
        out["cells"][str(cell)] = {
            "grid_shape": list(scenario.room.shape), "times": ours.times.tolist(),
            "rel_l2": [rel_l2(theirs.plane[k], ours.plane[k], mask) for k in range(1, len(ours.times))],
            "spearman": [spearman(theirs.plane[k], ours.plane[k], mask) for k in range(1, len(ours.times))],
            "probes": {n: {"ours": ours.probes[n].tolist(), "openfoam": theirs.probes[n].tolist()} for n in ours.probes},
            "budget": {"ours": budget(ours), "openfoam": budget(theirs)},
            "openfoam_dt": theirs.dt, "ours_dt": ours.dt}
    (coarse, o5, f5), (fine, o25, f25) = runs[0.5], runs[0.25]
    mask = o5.plane_mask
    own = {"ours": rel_l2(o5.plane[-1], coarsen(o25.plane, fine, coarse)[-1], mask),
           "openfoam": rel_l2(f5.plane[-1], coarsen(f25.plane, fine, coarse)[-1], mask)}
    out["grid_convergence_final"] = own  # each code: 0.5 m vs its own 0.25 m, on the 0.5 m plane grid
    out["rel_l2_final"] = out["cells"]["0.5"]["rel_l2"][-1]
    out["spearman_final"] = out["cells"]["0.5"]["spearman"][-1]
    out["within_grid_convergence"] = out["rel_l2_final"] <= min(own.values())
    return out


def timed_flow(work: Path) -> dict:
    scenario = room(SPEED_CELL)
    geometry = room_geometry(scenario)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        potential_flow(scenario, geometry)
        best = min(best, time.perf_counter() - t0)
    foam, meshing = math.inf, math.inf
    from closedloop.simulators.openfoam.flow import potential_foam
    from closedloop.simulators.openfoam.fields import write_flow_fields

    for i in range(3):
        case = work / f"flow_{i}"
        tools = Tools(600)
        cells = build_mesh(scenario, case, tools)
        write_flow_fields(scenario, cells, OpenFOAMSettings(), case, turbulent=False)
        info = potential_foam(case, OpenFOAMSettings(), tools)
        foam = min(foam, info["seconds"])
        meshing = min(meshing, tools.seconds() - info["seconds"])
    return {"ours_seconds": best, "openfoam_seconds": foam, "openfoam_meshing_seconds": meshing,
            "flow_ratio": foam / best, "flow_ratio_with_meshing": (foam + meshing) / best}


def transport_speed(work: Path) -> dict:
    horizon = {"time.horizon": 600.0, "time.output_interval": 60.0}
    fine = room(FINE_CELL, **horizon)
    scenario = room(SPEED_CELL, **horizon)
    cached = Path(os.environ.get("OPENFOAM_CHECK_FINE", str(work / "fine.pt")))  # the fine solution, reusable
    if cached.exists():
        truth_plane = torch.load(cached, weights_only=True)
    else:
        t0 = time.perf_counter()
        truth = simulate(fine, compile=True)  # the fused step: the same scheme, 5x faster here
        print(f"fine solution ({FINE_CELL} m, {truth.steps} steps) in {time.perf_counter() - t0:.1f} s", flush=True)
        truth_plane = truth.plane
        torch.save(truth_plane, cached)
    target = coarsen(truth_plane, fine, scenario)[1:]
    mask = plane_reduction(scenario, room_geometry(scenario)).mask

    def error(plane: torch.Tensor) -> float:
        """Space-time relative L2 over the outputs t > 0 (the transient is where time error shows)."""
        return rel_l2(plane[1:], target, mask.expand(len(target), *mask.shape))
    points: dict = {"ours": [], "openfoam": []}
    for compile in (False, True):
        runs = [BuiltinSimulator(compile=compile).simulate(scenario) for _ in range(2)]
        r = min(runs, key=lambda x: x.wall_seconds)
        points["ours"].append({"variant": "fused" if compile else "eager", "stages": r.extra["stages"], "seconds": r.wall_seconds,
                               "cpu_seconds": r.cpu_seconds, "steps": r.steps, "dt": r.dt,
                               "error": error(r.plane), "error_final": rel_l2(r.plane[-1], target[-1], mask),
                               "compile_seconds": r.extra.get("compile_seconds")})
        print(f"ours {points['ours'][-1]['variant']}: {r.wall_seconds:.2f} s, error {points['ours'][-1]['error']:.4f}",
              flush=True)
    for co in COURANTS:
        sim = OpenFOAMSimulator(OpenFOAMSettings(max_courant=co))
        r = sim.simulate(scenario, workdir=work / f"speed_{co}")
        points["openfoam"].append({"max_courant": co, "seconds": r.wall_seconds, "cpu_seconds": r.cpu_seconds,
                                   "steps": r.steps, "dt": r.dt, "error": error(r.plane),
                                   "error_final": rel_l2(r.plane[-1], target[-1], mask)})
        print(f"openfoam Co {co}: {r.wall_seconds:.2f} s, error {points['openfoam'][-1]['error']:.4f}", flush=True)
    return {"mesh_cells": math.prod(scenario.room.shape), "horizon_s": 600.0, "fine_cell": FINE_CELL,
            "points": points, **matched_error(points, math.prod(scenario.room.shape))}


EXCESS = 0.01  # "equal error": OpenFOAM's error at most 1 % above ours (0.1 % reported beside it)


def matched_error(points: dict, cells: int) -> dict:
    """OpenFOAM's time at our error (within ``EXCESS`` above it, log-log interpolation along its
    error-vs-time curve) over ours, for our fused and eager steps. Here the spatial error (0.25 vs
    0.125 m) dominates and every run's error lies within a few per cent of the others, so a tolerance
    is needed: exactly our error may be reached only at the smallest Courant number, or never."""
    out: dict = {}
    for excess in (EXCESS, 0.001):
        for ours in points["ours"]:
            at = time_at_error(points["openfoam"], ours["error"] * (1 + excess))
            key = f"{ours['variant']}_excess_{excess:g}"
            out[key] = {"openfoam_seconds": at, "ours_seconds": ours["seconds"],
                        "ratio": at / ours["seconds"] if at is not None else None}
    fused = next(p for p in points["ours"] if p["variant"] == "fused")
    default = "fused" if compile_by_default(cells, fused["steps"], stages=fused.get("stages", 2)) else "eager"
    headline = out[f"{default}_excess_{EXCESS:g}"]
    return {"matched": out, "ours_best": fused, "excess": EXCESS, "default_variant": default,
            "openfoam_seconds_at_our_error": headline["openfoam_seconds"],
            "transport_ratio_at_equal_error": headline["ratio"],
            "openfoam_min_error": min(p["error"] for p in points["openfoam"])}


def time_at_error(points: list[dict], error: float) -> float | None:
    """OpenFOAM's wall time at ``error``, interpolated log-log along its error-vs-time curve (None when it
    never gets that accurate)."""
    pts = sorted((p["seconds"], p["error"]) for p in points)
    if error < min(e for _, e in pts):
        return None
    for (t0, e0), (t1, e1) in zip(pts, pts[1:]):
        if (e0 - error) * (e1 - error) <= 0 and e0 != e1:
            s = (math.log(error) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return math.exp(math.log(t0) + s * (math.log(t1) - math.log(t0)))
    return min(t for t, e in pts if e <= error)


HALL = HERE.parent / "configs" / "scenarios" / "hall.toml"
HALL_ITERATIONS = 6000  # simpleFoam's cap; it stops earlier when every initial residual is below 1e-5


def cell_velocity(velocity) -> torch.Tensor:
    """Face velocities (3 × face shape) → cell-centre velocity (nx, ny, nz, 3), the mean of opposite faces."""
    return torch.stack([0.5 * (u.narrow(a, 0, u.shape[a] - 1) + u.narrow(a, 1, u.shape[a] - 1))
                        for a, u in enumerate(velocity)], -1)


def hall_check(work: Path) -> dict:
    """configs/scenarios/hall.toml (Navier–Stokes, eddy-viscosity K): ours (mixing-length RANS) vs
    simpleFoam k–ε, a measurement. The flow at the probes and on the plane, the jet under each diffuser,
    the plane series; a figure side by side."""
    from closedloop.simulators.flow_cache import steady_flow
    from closedloop.simulators.openfoam.foamfile import read_internal_field

    scenario = load_scenario(HALL)
    geometry = room_geometry(scenario)
    t0 = time.perf_counter()
    cached = steady_flow(scenario, geometry)  # solved here (a fresh cache), read by the simulation below
    ours_flow, nu_t = cached.flow, cached.eddy_viscosity
    ours_flow_seconds = time.perf_counter() - t0
    print(f"hall: our Navier–Stokes flow in {ours_flow_seconds:.1f} s ({ours_flow.iterations} iterations)", flush=True)
    ours = BuiltinSimulator().simulate(scenario)
    sim = OpenFOAMSimulator(OpenFOAMSettings(flow_iterations=HALL_ITERATIONS))
    theirs = sim.simulate(scenario, workdir=work / "hall")
    print(f"hall: simpleFoam in {theirs.flow_seconds:.1f} s ({theirs.extra['flow_iterations']} iterations, "
          f"converged {theirs.extra['flow_converged']}), transport {theirs.wall_seconds:.1f} s", flush=True)
    flow_case = Path(theirs.extra["flow_case"])
    from closedloop.simulators.openfoam.flow import _load

    cells = _load(flow_case, "hall").cells
    u_of = torch.stack([cells.to_grid(c) for c in read_internal_field(flow_case / "0" / "U", cells.n_cells).T], -1)
    u_ours = cell_velocity(ours_flow.velocity)
    reduction = plane_reduction(scenario, geometry)
    speed = {name: reduction.average(torch.linalg.vector_norm(u, dim=-1)) for name, u in
             (("ours", u_ours), ("openfoam", u_of))}
    mask = reduction.mask
    probes = {}
    from closedloop.simulators.plane import probe_indices

    for name, idx in probe_indices(scenario, geometry).items():
        probes[name] = {"ours": u_ours[idx].tolist(), "openfoam": u_of[idx].tolist(),
                        "scalar_ours": ours.probes[name].tolist(), "scalar_openfoam": theirs.probes[name].tolist()}
    jets = []
    h = scenario.room.spacing
    for inlet in scenario.inlets:
        i, j = (min(int(c // hh), n - 1) for c, hh, n in zip(inlet.center, h[:2], scenario.room.shape[:2]))
        jets.append({"center": list(inlet.center),
                     "z": [(k + 0.5) * h[2] for k in range(scenario.room.shape[2])],
                     "ours_w": u_ours[i, j, :, 2].tolist(), "openfoam_w": u_of[i, j, :, 2].tolist()})
    m = ours.plane_mask
    series = {"times": ours.times.tolist(),
              "rel_l2": [rel_l2(theirs.plane[k], ours.plane[k], m) for k in range(1, len(ours.times))],
              "spearman": [spearman(theirs.plane[k], ours.plane[k], m) for k in range(1, len(ours.times))]}
    figure = hall_figure(scenario, ours, theirs, speed, jets)
    return {"grid_shape": list(scenario.room.shape), "mesh_cells": theirs.extra["mesh_cells"],
            "flow": {"ours_seconds": ours_flow_seconds, "ours_iterations": ours_flow.iterations,
                     "openfoam_seconds": theirs.flow_seconds, "openfoam_iterations": theirs.extra["flow_iterations"],
                     "openfoam_converged": theirs.extra["flow_converged"],
                     "openfoam_final_p_residual": theirs.extra["flow_residual"], "ours_residual": ours_flow.residual,
                     "plane_speed_rel_l2": rel_l2(speed["openfoam"], speed["ours"], mask),
                     "plane_speed_spearman": spearman(speed["openfoam"], speed["ours"], mask),
                     "plane_speed_mean": {k: float(v[mask].mean()) for k, v in speed.items()},
                     "nu_t_max": {"ours": float(nu_t.max()) if nu_t is not None else None,
                                  "openfoam": float(read_internal_field(flow_case / "0" / "nut", cells.n_cells).max())}},
            "probes": probes, "jets": jets, "scalar": series,
            "rel_l2_final": series["rel_l2"][-1], "spearman_final": series["spearman"][-1],
            "budget": {"ours": budget(ours), "openfoam": budget(theirs)},
            "transport_seconds": {"ours": ours.wall_seconds, "openfoam": theirs.wall_seconds},
            "flow_ratio": theirs.flow_seconds / ours_flow_seconds, "figure": figure}


def hall_figure(scenario, ours, theirs, speed, jets) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lx, ly, _ = scenario.room.size
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    vmax = float(max(ours.plane[-1].max(), theirs.plane[-1].max()))
    t = float(ours.times[-1])
    for ax, (title, field, vm, cmap) in zip(axes[0], (
            (f"ours (mixing length): c on the plane at {t:g} s (mg/m³)", ours.plane[-1], vmax, "viridis"),
            (f"OpenFOAM (k–ε): c at {t:g} s", theirs.plane[-1], vmax, "viridis"),
            ("OpenFOAM − ours", theirs.plane[-1] - ours.plane[-1], None, "RdBu_r"))):
        lim = vm if vm is not None else float((theirs.plane[-1] - ours.plane[-1]).abs().max())
        im = ax.imshow(field.T.numpy(), origin="lower", extent=(0, lx, 0, ly), cmap=cmap,
                       vmin=0 if vm is not None else -lim, vmax=lim)
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    smax = float(max(v.max() for v in speed.values()))
    for ax, (title, field) in zip(axes[1][:2], (("ours: |u| on the plane (m/s)", speed["ours"]),
                                                ("OpenFOAM: |u| on the plane", speed["openfoam"]))):
        im = ax.imshow(field.T.numpy(), origin="lower", extent=(0, lx, 0, ly), vmin=0, vmax=smax, cmap="magma")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes[1][2]
    for k, name in enumerate(ours.probes):
        ax.plot(ours.times, ours.probes[name], color=f"C{k}", label=f"{name} ours")
        ax.plot(theirs.times, theirs.probes[name], color=f"C{k}", ls="--", label=f"{name} OpenFOAM")
    ax.set_xlabel("t (s)")
    ax.set_ylabel("c (mg/m³)")
    ax.legend(fontsize=7)
    ax.set_title("probes", fontsize=9)
    fig.tight_layout()
    path = HERE / "results" / "openfoam_check_hall.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path.relative_to(HERE.parent))


def summarise(path: Path) -> dict:
    """Recompute the derived numbers of a written result from its measured points (no new runs)."""
    import json

    payload = json.loads(path.read_text())
    transport = payload["speed"]["transport"]
    transport.update(matched_error(transport["points"], transport["mesh_cells"]))
    for stale in ("transport_ratio_is_lower_bound",):
        transport.pop(stale, None)
    payload["speed"]["transport_ratio_at_equal_error"] = transport["transport_ratio_at_equal_error"]
    hall = payload.get("hall") or {}
    if "flow" in hall:
        payload["speed"]["flow_ratio_openfoam_converged"] = hall["flow"]["openfoam_converged"]
    return payload


def main() -> None:
    if os.environ.get("CLOSEDLOOP_COMPILE"):
        sys.exit("unset CLOSEDLOOP_COMPILE: the headline is the default path's")
    if "--summarise" in sys.argv:
        path = write_result("openfoam_check", summarise(HERE / "results" / "openfoam_check.json"))
        print(f"rewrote {path}")
        return
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="openfoam-check-") as tmp:
        work = Path(tmp)
        os.environ["CLOSEDLOOP_FLOW_CACHE"] = str(work / "flows")
        version = OpenFOAMSimulator().version()
        room_out = cross_check(work)
        flow = timed_flow(work)
        print(f"flow: ours {flow['ours_seconds']:.3f} s, potentialFoam {flow['openfoam_seconds']:.3f} s", flush=True)
        transport = transport_speed(work)
        write_result("openfoam_check", {"machine": machine(), "openfoam": version, "room": room_out,
                                        "speed": {"flow_potential": flow, "transport": transport}, "hall": None})
        hall = None
        if "--no-hall" not in sys.argv:
            try:
                hall = hall_check(work)
            except Exception as err:  # noqa: BLE001 - the room and speed results are kept; the failure is reported
                hall = {"error": f"{type(err).__name__}: {err}"[:2000]}
                print(f"hall check failed: {hall['error']}", flush=True)
    hall_ok = hall is not None and "error" not in hall
    speed = {"flow_potential": flow, "transport": transport,
             # the steady flow of the target is the Navier–Stokes one (hall: simpleFoam vs ours);
             # the potential solve (room) is kept beside it
             "flow_ratio": hall["flow_ratio"] if hall_ok else flow["flow_ratio"],
             "flow_ratio_model": "navier_stokes (hall)" if hall_ok else "potential (room)",
             "flow_ratio_potential": flow["flow_ratio"],
             # simpleFoam may stop at its iteration cap unconverged: then the ratio is time to the cap
             "flow_ratio_openfoam_converged": hall["flow"]["openfoam_converged"] if hall_ok else True,
             "transport_ratio_at_equal_error": transport["transport_ratio_at_equal_error"],
             "affinity": sorted(os.sched_getaffinity(0))}
    payload = {"machine": machine(), "openfoam": version, "room": room_out, "speed": speed, "hall": hall}
    path = write_result("openfoam_check", payload)
    print(f"\nroom (0.5 m): rel L2 final {room_out['rel_l2_final']:.4f}, Spearman {room_out['spearman_final']:.5f}; "
          f"own grid-convergence error: ours {room_out['grid_convergence_final']['ours']:.4f}, "
          f"OpenFOAM {room_out['grid_convergence_final']['openfoam']:.4f}")
    print(f"speed: flow ratio (OpenFOAM / ours) {speed['flow_ratio']:.2f}; transport ratio at equal error "
          f"{speed['transport_ratio_at_equal_error']}")
    if hall_ok:
        print(f"hall (k–ε vs mixing length): rel L2 final {hall['rel_l2_final']:.3f}, Spearman "
              f"{hall['spearman_final']:.3f}; plane |u| rel L2 {hall['flow']['plane_speed_rel_l2']:.3f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
