"""``closedloop simulate``: one reference simulation of a scenario file."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from closedloop.cli.console import console, fail, load_scenario_or_fail, progress_bar


def simulate(scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
             out: Annotated[Path, typer.Option("--out", help="Directory for the case file.")],
             device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
             float32: Annotated[bool, typer.Option("--float32", help="Single precision (faster).")] = False) -> None:
    """Run the 3D reference simulation of SCENARIO; write OUT/<case id>.parquet."""
    import torch

    from closedloop.lab.outputs import mass_summary, write_simulation
    from closedloop.simulators import simulate as run

    sc = load_scenario_or_fail(scenario)
    with progress_bar() as progress:
        task = progress.add_task(f"simulate {sc.name}", total=sc.time.horizon, status="")
        try:
            res = run(sc, device=device, dtype=torch.float32 if float32 else torch.float64,
                      progress=lambda t, T: progress.update(task, completed=t, status=f"t={t:.0f} s"))
        except ValueError as err:
            fail(str(err))
    written = write_simulation(out, sc, res)
    console.print(f"[green]wrote[/] {', '.join(str(p) for p in written)}")
    console.print(f"{res.steps} steps (dt {res.dt:.3g} s), transport {res.wall_seconds:.1f} s, flow "
                  f"{res.flow_seconds:.1f} s ({res.extra['flow_model']}{', cached' if res.extra['flow_cached'] else ''}); "
                  f"{mass_summary(res)}")
