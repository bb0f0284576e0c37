"""``closedloop steer``: runs the ``steer`` flow; its options are the fields of ``SteeringConfig``."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import ValidationError
from rich.table import Table

from closedloop.cli.console import console, fail
from closedloop.lab.steering.config import SteeringConfig


def default(name: str) -> Any:
    """The field's default, declared once in :class:`SteeringConfig`."""
    return SteeringConfig.model_fields[name].default


def helps(name: str) -> str:
    return SteeringConfig.model_fields[name].description or ""


def steer(campaign_dir: Annotated[Path, typer.Argument(help="Campaign directory with a trained model.")],
          concept: Annotated[str, typer.Option(help=helps("concept"))] = default("concept"),
          toward: Annotated[str, typer.Option(help=helps("toward"))] = default("toward"),
          split: Annotated[Optional[float], typer.Option(help=helps("split"))] = default("split"),
          layers: Annotated[Optional[list[str]], typer.Option(
              "--layers", "--layer", help=helps("layers") + "; repeat the option for several")] = default("layers"),
          base_cases: Annotated[int, typer.Option(help=helps("base_cases"))] = default("base_cases"),
          alpha_min: Annotated[float, typer.Option(help=helps("alpha_min"))] = default("alpha_min"),
          alpha_max: Annotated[float, typer.Option(help=helps("alpha_max"))] = default("alpha_max"),
          initial_experiments: Annotated[int, typer.Option(
              "--initial-experiments", "--initial", help=helps("initial_experiments"))] = default("initial_experiments"),
          rounds: Annotated[int, typer.Option(help=helps("rounds"))] = default("rounds"),
          batch_size: Annotated[int, typer.Option(help=helps("batch_size"))] = default("batch_size"),
          dose_points: Annotated[int, typer.Option(help=helps("dose_points"))] = default("dose_points"),
          n_bootstrap: Annotated[int, typer.Option(help=helps("n_bootstrap"))] = default("n_bootstrap"),
          reduce: Annotated[str, typer.Option(help=helps("reduce"))] = default("reduce"),
          seed: Annotated[int, typer.Option(help=helps("seed"))] = default("seed"),
          device: Annotated[str, typer.Option(help=helps("device"))] = default("device")) -> None:
    """Steering experiments chosen by BoTorch on a campaign's latest model, validated by simulation."""
    from closedloop.lab.config import format_validation_error
    from closedloop.lab.lock import CampaignLocked

    if not campaign_dir.is_dir():
        fail(f"campaign_dir: {campaign_dir}: no such directory")
    fields = {k: v for k, v in locals().items() if k in SteeringConfig.model_fields}
    try:
        config = SteeringConfig(**{**fields, "layers": fields["layers"] or None})
    except ValidationError as err:
        fail(format_validation_error(err, "steer"))
    from closedloop.lab.steering.prepared import prepare

    try:  # a request that cannot be steered is refused here, before a flow run starts
        prepare(campaign_dir, config)
    except ValueError as err:
        fail(str(err))
    from closedloop.flows.steer import steer as steer_flow

    with console.status(f"steer {config.name}: running the steer flow on Prefect"):
        try:
            summary = steer_flow(campaign_dir=str(campaign_dir), **config.model_dump())
        except (ValueError, CampaignLocked) as err:
            fail(str(err))
    print_summary(config, summary)


def print_summary(config: SteeringConfig, s: dict[str, Any]) -> None:
    table = Table(title=f"steering {config.name} on {s['model']}: best {s['best']['layer']} "
                        f"α={s['best']['alpha']:.3g}, steps {s['best']['first_step']}–{s['best']['last_step']}")
    for col in ("base case", "target case", "distance unsteered", "distance steered"):
        table.add_column(col)
    for b, t, du, ds in zip(s["base_cases"], s["target_cases"], s["distance_unsteered"], s["distance_steered"]):
        table.add_row(b, t, f"{du:.4f}", f"{ds:.4f}")
    console.print(table)
    console.print(f"{s['experiments']} experiments; steering brought {s['fraction_improved']:.0%} of the base cases "
                  f"closer to the target reference")
    paths = s["paths"]
    console.print(f"[green]wrote[/] {paths['experiments']}, {paths['report']} and figures")
