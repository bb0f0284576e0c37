"""Cases for the lab tests, built from the tiny reference run, and the damage done to files on disk."""
from __future__ import annotations

from closedloop.lab.store import Case, make_provenance


def make_case(scenario, result) -> Case:
    return Case(scenario=scenario, times=result.times, plane=result.plane,
                plane_mask=result.plane_mask, probes=dict(result.probes),
                budget={"mass_in_domain": result.mass_in_domain,
                        "mass_emitted": result.mass_emitted,
                        "mass_exhausted": result.mass_exhausted},
                provenance=make_provenance(producer="reference", device="cpu", seed=11,
                                           config_hash="abc123", steps=result.steps),
                grid={"shape": result.extra["grid_shape"], "cell_size": scenario.room.cell_size})


def tmp_files(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))
