"""A stand-in for a lab's external simulation code, driven by the ``command`` simulator in the tests.

Reads ``scenario.json`` from the working directory and writes a plane series per ``FAKE_MODE``:

- ``ours`` (default): runs closedloop's own solver and writes the NPZ contract (the round-trip check);
- ``csv``: the same solution as ``plane.csv`` + ``series.csv``;
- ``synthetic``: a plane of the right shape from ``derived`` alone (numpy only: no torch import, fast);
- ``exit``: prints a message and exits 3; ``sleep``: sleeps 60 s; ``garbled``: a plane of the wrong shape;
  ``nan``: a plane holding NaN; ``none``: writes nothing (the last three synthetic); ``flaky``: fails the
  first time (marker file in ``FAKE_STATE``), then works.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def ours(scenario: dict) -> dict[str, np.ndarray]:
    from closedloop.simulators import Scenario, simulate

    data = {k: v for k, v in scenario.items() if k != "derived"}
    res = simulate(Scenario.model_validate(data), device="cpu")
    out = {"times": res.times.numpy(), "plane": res.plane.numpy(), "plane_mask": res.plane_mask.numpy().astype(np.int8),
           "mass_in_domain": res.mass_in_domain.numpy(), "mass_emitted": res.mass_emitted.numpy(),
           "mass_exhausted": res.mass_exhausted.numpy()}
    out.update({f"probe:{k}": v.numpy() for k, v in res.probes.items()})
    return out


def synthetic(scenario: dict) -> dict[str, np.ndarray]:
    d = scenario["derived"]
    times = np.asarray(d["output_times"])
    nx, ny = d["plane_shape"]
    plane = np.outer(times, np.ones(nx * ny)).reshape(len(times), nx, ny) * 1e-3
    return {"times": times, "plane": plane, "mass_emitted": times.copy()}


def main() -> int:
    mode = os.environ.get("FAKE_MODE", "ours")
    scenario = json.loads(Path("scenario.json").read_text())
    print(f"fake code: mode {mode}, scenario {scenario['name']}")
    if mode == "flaky":
        try:  # atomic: of simulations started together, exactly one fails
            os.close(os.open(os.environ["FAKE_STATE"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            print("fake code: transient failure")
            return 1
        mode = "ours"
    if mode == "exit":
        print("fake code: solver diverged at step 17")
        return 3
    if mode == "sleep":
        time.sleep(60)
    if mode == "none":
        return 0
    arrays = synthetic(scenario) if mode in ("synthetic", "garbled", "nan") else ours(scenario)
    if mode == "garbled":
        arrays["plane"] = arrays["plane"][:, :-1]
    if mode == "nan":
        arrays["plane"][-1, 0, 0] = np.nan
    if mode == "csv":
        t, nx, ny = arrays["plane"].shape
        ti, i, j = np.meshgrid(np.arange(t), np.arange(nx), np.arange(ny), indexing="ij")
        rows = np.column_stack([arrays["times"][ti.ravel()], i.ravel(), j.ravel(), arrays["plane"].ravel()])
        np.savetxt("plane.csv", rows, delimiter=",", header="time,i,j,c", comments="", fmt="%.17g")
        names = [k for k in arrays if k.startswith(("probe:", "mass_"))]
        cols = np.column_stack([arrays["times"]] + [arrays[k] for k in names])
        np.savetxt("series.csv", cols, delimiter=",", header=",".join(["time", *names]), comments="", fmt="%.17g")
        return 0
    np.savez("plane_series.npz", **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
