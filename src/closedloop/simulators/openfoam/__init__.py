"""OpenFOAM as a simulator: a scenario becomes an OpenFOAM case on the reference's own grid.

Modules, one step each: ``settings`` (what changes the numbers), ``runner`` (one tool, its log and
CPU time), ``foamfile`` (the ASCII format), ``mesh`` (blockMesh, obstacles, vents, the cell map),
``fields`` (0/ files), ``flow`` (potentialFoam / simpleFoam, cached per geometry), ``transport`` (the
scalar on the frozen flux, the source windows), ``reader`` (output → plane, probes, mass budget) and
``simulator`` (the ``Simulator`` interface).
"""
from closedloop.simulators.openfoam.runner import OpenFOAMError, OpenFOAMMissing
from closedloop.simulators.openfoam.settings import OpenFOAMSettings
from closedloop.simulators.openfoam.simulator import OpenFOAMSimulator

__all__ = ["OpenFOAMError", "OpenFOAMMissing", "OpenFOAMSettings", "OpenFOAMSimulator"]
