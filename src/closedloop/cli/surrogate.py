"""``closedloop train`` and ``closedloop predict``: a surrogate outside a campaign."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from closedloop.cli.console import console, fail, load_scenario_or_fail, progress_bar


def train(data: Annotated[Path, typer.Argument(help="A case file, a directory of cases, or a campaign directory.")],
          out: Annotated[Path, typer.Option("--out", help="Checkpoint file to write (.pt).")],
          epochs: Annotated[int, typer.Option(min=0)] = 40,
          hidden: Annotated[int, typer.Option(min=1, help="Closure hidden channels.")] = 8,
          learning_rate: Annotated[float, typer.Option(min=1e-8)] = 3e-3,
          variant: Annotated[str, typer.Option(help="hybrid, markovian, data_only or physics_only.")] = "hybrid",
          closure: Annotated[str, typer.Option(help="convgru or encoder_lstm.")] = "convgru",
          advection: Annotated[str, typer.Option(help="Plane advection: upwind or tvd.")] = "upwind",
          seed: int = 0) -> None:
    """Train a hybrid surrogate on reference cases; write a checkpoint."""
    from closedloop.lab.cases import read_case_dir
    from closedloop.lab.surrogate import save_surrogate, train_surrogate
    from closedloop.surrogates import TrainConfig
    from closedloop.surrogates.coupling import batch_problems, spec_for

    if not data.exists():
        fail(f"{data}: no such file or directory")
    options = {"hidden_channels": hidden, "variant": variant, "closure": closure, "advection": advection}
    try:  # bad data or options are refused before training starts
        cases = read_case_dir(data)
        spec_for(batch_problems([c.scenario for c in cases])[1], **options)
    except ValueError as err:
        fail(str(err))
    with progress_bar() as progress:
        task = progress.add_task(f"train on {len(cases)} cases", total=epochs, status="")
        model, report = train_surrogate(
            cases, TrainConfig(epochs=epochs, learning_rate=learning_rate, seed=seed),
            progress=lambda e, loss: progress.update(task, completed=e + 1, status=f"loss {loss:.4f}"), **options)
    save_surrogate(out, model, cases, report)
    console.print(f"[green]wrote[/] {out}  (loss {report.initial_loss:.4f} → {report.best_loss:.4f}, "
                  f"{report.seconds:.1f} s)")


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
