"""Is the paper table's reference fine enough? One hall case at 0.5 × 0.5 × 0.25 m and at half that.

    python bench/paper_grid.py          # writes bench/results/paper_grid.json

Both runs solve their own Navier–Stokes flow and transport. The fine plane (98 × 52) is restricted
to the coarse grid by the fluid-weighted mean of each 2 × 2 block of columns, then compared with the
coarse plane at 60/120/300/600 s: relative L2 difference and Spearman. The difference bounds the
discretisation error of the coarse reference from below and, for a scheme converging at order p,
estimates it as diff / (1 − 2^−p); it must be small next to the surrogate errors it is used to judge.
"""
from __future__ import annotations

import time

import torch
from rich.console import Console

from closedloop.simulators import simulate
from closedloop.simulators.geometry import room_geometry
from closedloop.simulators.plane import plane_reduction
from closedloop.surrogates.metrics import spearman

from common import machine, peak_rss_mib, write_result
from paper_cases import scenarios

console = Console()


def restrict(fine: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Fluid-weighted 2 × 2 block means: (T, 2nx, 2ny) → (T, nx, ny)."""
    t, nx2, ny2 = fine.shape
    w = weight.reshape(nx2 // 2, 2, ny2 // 2, 2)
    num = (fine.reshape(t, nx2 // 2, 2, ny2 // 2, 2) * w).sum(dim=(2, 4))
    return num / w.sum(dim=(1, 3)).clamp_min(1e-300)


def main() -> None:
    torch.set_num_threads(1)
    static, _ = scenarios()
    coarse_sc = static[0]
    dx, dy, dz = coarse_sc.room.spacing
    fine_sc = coarse_sc.with_parameters({"room.cell_size": [dx / 2, dy / 2, dz / 2]})
    out = {}
    runs = {}
    for name, sc in (("coarse", coarse_sc), ("fine", fine_sc)):
        t0 = time.perf_counter()
        res = simulate(sc, device="cpu")
        runs[name] = res
        out[name] = {"grid": list(room_geometry(sc).grid.shape), "spacing_m": list(sc.room.spacing),
                     "flow_s": res.flow_seconds, "transport_s": res.wall_seconds, "steps": res.steps,
                     "total_s": time.perf_counter() - t0}
        console.print(name, out[name])
    geom = room_geometry(fine_sc)
    weight = plane_reduction(fine_sc, geom).denominator
    fine_on_coarse = restrict(runs["fine"].plane.double(), weight)
    coarse = runs["coarse"].plane.double()
    mask = runs["coarse"].plane_mask.bool()
    times = [float(t) for t in runs["coarse"].times]
    out["comparison"] = {}
    for t in (60.0, 120.0, 300.0, 600.0):
        n = times.index(t)
        diff = (torch.linalg.vector_norm(coarse[n] - fine_on_coarse[n]) / torch.linalg.vector_norm(fine_on_coarse[n])).item()
        rho = spearman(coarse[n][None], fine_on_coarse[n][None], mask).item()
        out["comparison"][f"{t:g}"] = {"rel_l2_coarse_vs_fine": diff, "spearman": rho}
    out.update({"case": coarse_sc.name, "machine": machine(), "peak_rss_mib": peak_rss_mib()})
    console.print(out["comparison"])
    console.print(f"wrote {write_result('paper_grid', out)}")


if __name__ == "__main__":
    main()
