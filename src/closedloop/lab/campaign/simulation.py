"""The simulate step: one reference simulation per case, written as a case file exactly once.

A case whose file exists is never simulated again (:func:`run_case` reuses it); a result holding
NaN or ±inf is refused before anything is written; a case that failed every attempt becomes a
``failed`` ledger row with the error text (:func:`failed_row`).
"""
from __future__ import annotations

import time
from typing import Any

import torch

from closedloop.lab import faults
from closedloop.lab.campaign.design import case_id_for, scenario_for
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore, file_sha256, now_iso, reference_case, write_case
from closedloop.lab.timing import timed
from closedloop.simulators.concurrency import simulation_slot


def simulation_cache_key(config: CampaignConfig, params: dict[str, float]) -> str:
    """What a simulation's result depends on: the case id (scenario and simulator) and the device.

    Prefect caches finished simulate tasks under this key (tasks/campaign.py); :func:`audit`
    deletes the record with the case file when that file is damaged.
    """
    device = config.simulation.device.replace(":", "-")
    return f"simulate-{case_id_for(config, params)}-{device}"


def check_finite(case_id: str, result: Any) -> None:
    """Refuse a simulation result holding NaN or ±inf (it is never written as a case); a mass series an
    external simulator does not report (``extra["mass_reported"]``) is all NaN by contract and not checked."""
    masses = {"mass_in_domain": result.mass_in_domain, "mass_emitted": result.mass_emitted,
              "mass_exhausted": result.mass_exhausted}
    reported = result.extra.get("mass_reported", list(masses))
    series = {"plane": result.plane, **{f"probe:{k}": v for k, v in result.probes.items()},
              **{k: v for k, v in masses.items() if k in reported}}
    bad = []
    for name, values in series.items():
        values = torch.as_tensor(values)
        if not torch.isfinite(values).all():
            bad.append(f"{name}: {int(values.isnan().sum())} NaN, {int(values.isinf().sum())} inf "
                       f"of {values.numel()}")
    if bad:
        raise FloatingPointError(f"case {case_id}: the simulation returned non-finite values ({'; '.join(bad)}); "
                                 "nothing was written")


def run_case(config: CampaignConfig, store: CampaignStore, params: dict[str, float]) -> dict[str, Any]:
    """Simulate one case unless its file already exists; returns a ledger update."""
    scenario = scenario_for(config, params)
    sim = config.simulation
    simulator = sim.simulator_for()
    identity = simulator.identity()
    case_id = scenario.case_id(identity)
    if store.has_case(case_id):
        # written by an earlier run that stopped before the ledger recorded it (or recorded it already)
        prov = store.case_metadata(case_id).get("provenance", {})
        row = {"case_id": case_id, "status": "done", "reused": True,
               "case_sha256": file_sha256(store.case_path(case_id)), "sim_seconds": prov.get("sim_seconds"),
               "cpu_seconds": prov.get("cpu_seconds"), "simulator": prov.get("simulator"),
               "finished_at": prov.get("created")}
        return {k: v for k, v in row.items() if v is not None}
    # an external code's files and log stay with the case: runs/<case id>/
    workdir = None if simulator.name == "builtin" else store.root / "runs" / case_id
    with timed("simulation"), simulation_slot(sim.max_concurrent):
        faults.point("simulate:start", case_id)
        t0 = time.perf_counter()
        result = simulator.simulate(scenario, device=sim.device, max_memory_gb=sim.max_memory_gb,
                                    max_cells=sim.max_cells, workdir=workdir,
                                    progress=lambda t, horizon: faults.point("simulate:progress", case_id))
        seconds = time.perf_counter() - t0
        check_finite(case_id, result)
        case = reference_case(scenario, result, identity, seed=config.seed, config_hash=config.config_hash(),
                              sim_seconds=seconds)
        sha = write_case(store.case_path(case_id), case)
        faults.point("simulate:end", case_id)
    return {"case_id": case_id, "status": "done", "sim_seconds": seconds, "case_sha256": sha,
            "cpu_seconds": result.cpu_seconds, "simulator": result.simulator,
            "finished_at": case.provenance["created"], "reused": False}


def is_permanent(error: BaseException) -> bool:
    """Whether a failed simulation would fail again the same way: bad input (an invalid or too large
    scenario, a ValueError) or memory exhausted. Those are not retried; retries are for transient
    faults (a crashed worker, a timeout, a diverged solve)."""
    if isinstance(error, (ValueError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error) for m in ("can't allocate memory", "out of memory"))


def failure_text(config: CampaignConfig, error: BaseException) -> str:
    """The ledger's ``error`` for a case that failed (every attempt; a permanent error once)."""
    if isinstance(error, TimeoutError):
        what = f"TimeoutError: longer than simulation.timeout_seconds = {config.simulation.timeout_seconds} s"
    else:
        what = f"{type(error).__name__}: {error}"
    if is_permanent(error):
        return f"{what} (permanent: not retried)"[:2000]
    attempts = config.simulation.retries + 1
    return f"{what} (failed {attempts} attempt{'s' if attempts > 1 else ''})"[:2000]


def failed_row(config: CampaignConfig, params: dict[str, float], error: BaseException,
               flow_run_id: str | None) -> dict[str, Any]:
    """The ledger update of a case whose simulation failed (its proposal row stays, now ``failed``)."""
    return {"case_id": case_id_for(config, params), "status": "failed",
            "error": failure_text(config, error), "flow_run_id": flow_run_id, "finished_at": now_iso()}


def record_outcomes(store: CampaignStore, rows: list[dict[str, Any]]) -> None:
    """Write simulation outcomes (done or failed rows) into the ledger in one atomic write; the
    ``reused`` flag is for logs, not the ledger."""
    clean = [{k: v for k, v in r.items() if k != "reused"} for r in rows]
    if clean:
        store.upsert(clean)
