"""``closedloop train`` and ``closedloop predict``: a surrogate outside a campaign."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from closedloop.cli.console import console, fail, load_scenario_or_fail, progress_bar


def train(data: Annotated[Path, typer.Argument(help="A case file, a directory of cases, or a campaign directory.")],
          out: Annotated[Path, typer.Option("--out", help="Checkpoint file to write (.pt).")],
          epochs: Annotated[int | None, typer.Option(min=0, help="Closure-stage epochs [default: 20].")] = None,
          physics_epochs: Annotated[int | None, typer.Option(
              "--physics-epochs", min=0, help="Physics-stage epochs, before the closure [default: 10].")] = None,
          hidden: Annotated[int | None, typer.Option(min=1, help="Closure hidden channels [default: 8].")] = None,
          learning_rate: Annotated[float | None, typer.Option(min=1e-8, help="[default: 1e-3]")] = None,
          variant: Annotated[str | None, typer.Option(help="hybrid, markovian, data_only or physics_only.")] = None,
          closure: Annotated[str | None, typer.Option(help="convgru or encoder_lstm.")] = None,
          advection: Annotated[str | None, typer.Option(help="Plane advection: upwind or tvd [default: tvd].")] = None,
          seed: int = 0) -> None:
    """Train a hybrid surrogate on reference cases, as a campaign's first round does (the physics
    stage, then the closure; the defaults of a campaign's [surrogate]); write a checkpoint."""
    from pydantic import ValidationError

    from closedloop.lab.cases import read_case_dir
    from closedloop.lab.surrogate import save_surrogate, train_surrogate
    from closedloop.lab.surrogate_config import SurrogateConfig
    from closedloop.surrogates.coupling import batch_problems, spec_for

    if not data.exists():
        fail(f"{data}: no such file or directory")
    given = {"epochs": epochs, "physics_stage_epochs": physics_epochs, "hidden_channels": hidden,
             "learning_rate": learning_rate, "variant": variant, "closure": closure, "advection": advection}
    try:  # bad data or options are refused before training starts
        surrogate = SurrogateConfig.model_validate({k: v for k, v in given.items() if v is not None})
        cases = read_case_dir(data)
        spec_for(batch_problems([c.scenario for c in cases], layers=surrogate.room_layers)[1],
                 **surrogate.spec_options())
    except ValidationError as err:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()))
    except ValueError as err:
        fail(str(err))
    total = sum(stage.epochs for stage in surrogate.schedule(0, seed))
    with progress_bar() as progress:
        task = progress.add_task(f"train on {len(cases)} cases", total=total, status="")
        model, report = train_surrogate(
            cases, surrogate, seed=seed,
            progress=lambda e, loss: progress.update(task, completed=e + 1, status=f"loss {loss:.4f}"))
    save_surrogate(out, model, cases, report)
    console.print(f"[green]wrote[/] {out}  (loss {report.initial_loss:.4f} → {report.best_loss:.4f}, "
                  f"{report.seconds:.1f} s)")
    for warning in report.warnings():
        console.print(f"[yellow]training did not learn:[/] {warning}", highlight=False)


def predict(model: Annotated[Path, typer.Argument(help="Checkpoint written by `train` or a campaign.")],
            scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
            out: Annotated[Path, typer.Option("--out", help="Directory for the case file.")]) -> None:
    """Predict SCENARIO's plane series with the surrogate; same file format as `simulate`."""
    from closedloop.lab.cases import write_case
    from closedloop.lab.surrogate import load_surrogate, predict_case

    if not model.is_file():
        fail(f"{model}: checkpoint not found")
    sc = load_scenario_or_fail(scenario)
    try:
        net = load_surrogate(model)
        case = predict_case(net, sc, source=str(scenario), model_name=str(model))
    except ValueError as err:
        fail(str(err))
    path = out / f"{sc.case_id()}.parquet"
    write_case(path, case)
    console.print(f"[green]wrote[/] {path}")
