"""``closedloop simulate``: one reference simulation of a scenario file, by any simulator."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from closedloop.cli.console import console, fail, load_scenario_or_fail, progress_bar


def simulate(scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
             out: Annotated[Path, typer.Option("--out", help="Directory for the case file.")],
             simulator: Annotated[str, typer.Option(help="builtin, openfoam or command.")] = "builtin",
             settings: Annotated[Path | None, typer.Option(
                 help="TOML file with the simulator's settings: what a campaign config's "
                      "simulation.command or simulation.openfoam table holds.")] = None,
             device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
             float32: Annotated[bool, typer.Option("--float32", help="Single precision (faster).")] = False) -> None:
    """Run the 3D reference simulation of SCENARIO; write OUT/<case id>.parquet (an external code's files
    and log under OUT/runs/<case id>/)."""
    import torch

    from closedloop.lab.config import simulation_settings
    from closedloop.lab.outputs import mass_summary, write_simulation
    from closedloop.simulators.external import SimulatorFailed

    sc = load_scenario_or_fail(scenario)
    try:
        sim = simulation_settings(simulator, settings).simulator_for()
        identity = sim.identity()
    except ValueError as err:
        fail(str(err))
    workdir = None if sim.name == "builtin" else out / "runs" / sc.case_id(identity)
    with progress_bar() as progress:
        task = progress.add_task(f"simulate {sc.name} ({sim.name})", total=sc.time.horizon, status="")
        try:
            res = sim.simulate(sc, device=device, dtype=torch.float32 if float32 else torch.float64, workdir=workdir,
                               progress=lambda t, T: progress.update(task, completed=t, status=f"t={t:.0f} s"))
        except ValueError as err:
            fail(str(err))
        except SimulatorFailed as err:  # the external code failed: nothing was written
            console.print(f"[bold red]simulation failed:[/] {err}", highlight=False)
            raise typer.Exit(code=1) from None
    written = write_simulation(out, sc, res, identity)
    console.print(f"[green]wrote[/] {', '.join(str(p) for p in written)}")
    flow = (f", flow {res.flow_seconds:.1f} s ({res.extra['flow_model']}{', cached' if res.extra['flow_cached'] else ''})"
            if "flow_model" in res.extra else "")
    cpu = f", CPU {res.cpu_seconds:.1f} s" if res.cpu_seconds is not None else ""
    console.print(f"{res.simulator_version or res.simulator}: {res.steps} steps (dt {res.dt:.3g} s), "
                  f"wall {res.wall_seconds:.1f} s{cpu}{flow}; {mass_summary(res)}")
