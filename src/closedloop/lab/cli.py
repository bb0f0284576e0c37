"""The ``closedloop`` command line (typer + rich)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="closedloop: a self-driving lab for physics surrogates.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
campaign_app = typer.Typer(help="Run and inspect campaigns.", no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")
# Wide enough for the ledger table when output goes to a file or `make` (no terminal to measure).
console = Console(width=None if sys.stdout.isatty() else 160)


def fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


def load_scenario_or_fail(path: Path):
    from closedloop.lab.config import format_validation_error
    from closedloop.simulators.scenario import load_scenario

    if not path.is_file():
        fail(f"{path}: scenario file not found")
    try:
        return load_scenario(path)
    except ValidationError as err:
        fail(format_validation_error(err, str(path)))
    except ValueError as err:  # TOML syntax
        fail(f"{path}: {err}")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                    TimeElapsedColumn(), console=console, transient=False)


@app.command()
def simulate(scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
             out: Annotated[Path, typer.Option("--out", help="Directory for the case file.")],
             device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
             float32: Annotated[bool, typer.Option("--float32", help="Single precision (faster).")] = False) -> None:
    """Run the 3D reference simulation of SCENARIO; write OUT/<case id>.parquet."""
    import torch

    from closedloop.lab.store import reference_case, write_case
    from closedloop.simulators import simulate as run

    sc = load_scenario_or_fail(scenario)
    with _progress() as progress:
        task = progress.add_task(f"simulate {sc.name}", total=sc.time.horizon, status="")
        try:
            res = run(sc, device=device, dtype=torch.float32 if float32 else torch.float64,
                      progress=lambda t, T: progress.update(task, completed=t, status=f"t={t:.0f} s"))
        except ValueError as err:
            fail(str(err))
    case = reference_case(sc, res)
    path = out / f"{sc.case_id()}.parquet"
    write_case(path, case)
    from closedloop.lab.atomic import atomic_path, atomic_write
    from closedloop.lab.figures import plane_series_figure

    figure = out / f"{sc.case_id()}.png"
    png = plane_series_figure(res.times, res.plane, res.plane_mask, title=f"{sc.name}: plane {sc.plane.z_min}–{sc.plane.z_max} m")
    atomic_write(figure, lambda p: p.write_bytes(png))
    written = [str(path), str(figure)]
    if res.snapshots:
        snap = out / f"{sc.case_id()}.snapshots.pt"
        with atomic_path(snap) as tmp:
            torch.save({"times": sorted(res.snapshots), "fields": [res.snapshots[t] for t in sorted(res.snapshots)],
                        "spacing": list(sc.room.spacing)}, tmp)
        written.append(str(snap))
    emitted = float(res.mass_emitted[-1])
    balance = float((res.mass_emitted[-1] - res.mass_in_domain[-1] - res.mass_exhausted[-1]).abs())
    console.print(f"[green]wrote[/] {', '.join(written)}")
    console.print(f"{res.steps} steps (dt {res.dt:.3g} s), transport {res.wall_seconds:.1f} s, flow "
                  f"{res.flow_seconds:.1f} s ({res.extra['flow_model']}{', cached' if res.extra['flow_cached'] else ''}); "
                  f"mass: emitted {emitted:.4g}, in room {float(res.mass_in_domain[-1]):.4g}, exhausted "
                  f"{float(res.mass_exhausted[-1]):.4g}, balance error {balance / max(emitted, 1e-300):.1e} relative")


@app.command()
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
    import torch

    from closedloop.lab.atomic import atomic_path
    from closedloop.lab.forcing import batch_problems, spec_for
    from closedloop.lab.store import now_iso, read_case_dir
    from closedloop.surrogates import HybridSurrogate, TrainConfig, train as fit

    if not data.exists():
        fail(f"{data}: no such file or directory")
    try:
        cases = read_case_dir(data)
        forcing, problem = batch_problems([c.scenario for c in cases])
    except ValueError as err:
        fail(str(err))
    import dataclasses

    torch.manual_seed(seed)
    try:
        spec = dataclasses.replace(spec_for(problem, hidden_channels=hidden), variant=variant, closure=closure,
                                   advection=advection)
    except ValueError as err:
        fail(str(err))
    model = HybridSurrogate(spec, problem.mask).double()
    target = torch.stack([c.plane for c in cases]).to(torch.float64)
    with _progress() as progress:
        task = progress.add_task(f"train on {len(cases)} cases", total=epochs, status="")
        report = fit(model, forcing, target, TrainConfig(epochs=epochs, learning_rate=learning_rate, seed=seed),
                     progress=lambda e, loss: progress.update(task, completed=e + 1, status=f"loss {loss:.4f}"))
    with atomic_path(out) as tmp:
        torch.save({"spec": model.spec.to_dict(), "state_dict": model.state_dict(),
                    "trained_on": [c.case_id for c in cases], "losses": report.losses,
                    "initial_loss": report.initial_loss, "best_loss": report.best_loss, "created": now_iso()}, tmp)
    console.print(f"[green]wrote[/] {out}  (loss {report.initial_loss:.4f} → {report.best_loss:.4f}, "
                  f"{report.seconds:.1f} s)")


@app.command()
def predict(model: Annotated[Path, typer.Argument(help="Checkpoint written by `train` or a campaign.")],
            scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
            out: Annotated[Path, typer.Option("--out", help="Directory for the case file.")]) -> None:
    """Predict SCENARIO's plane series with the surrogate; same file format as `simulate`."""
    import torch

    from closedloop.lab.campaign import load_model
    from closedloop.lab.forcing import batch_problems
    from closedloop.lab.store import Case, make_provenance, write_case

    if not model.is_file():
        fail(f"{model}: checkpoint not found")
    sc = load_scenario_or_fail(scenario)
    try:
        ckpt = torch.load(model, weights_only=True, map_location="cpu")
        net = load_model(ckpt)
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint is reported the same way
        first_line = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        fail(f"{model}: not a readable closedloop checkpoint ({type(err).__name__}: {first_line})")
    try:
        forcing, problem = batch_problems([sc])
    except ValueError as err:
        fail(str(err))
    if tuple(problem.mask.shape) != tuple(net.spec.shape) or not torch.equal(problem.mask.float(), net.mask.float()):
        fail(f"{scenario}: its plane grid/mask differs from the geometry the model was trained on")
    if abs(problem.output_interval - net.spec.output_interval) > 1e-12:
        fail(f"{scenario}: time.output_interval {problem.output_interval} differs from the model's "
             f"{net.spec.output_interval}")
    with torch.no_grad():
        pred = net.rollout(forcing, problem.n_steps)[0]
    case = Case(scenario=sc, times=torch.tensor(sc.time.output_times(), dtype=torch.float64), plane=pred,
                plane_mask=problem.mask, provenance=make_provenance(producer="surrogate", device="cpu",
                                                                    model=str(model)),
                grid={"shape": list(sc.room.shape), "spacing": list(sc.room.spacing), "plane": sc.plane.model_dump()})
    path = out / f"{sc.case_id()}.parquet"
    write_case(path, case)
    console.print(f"[green]wrote[/] {path}")


@campaign_app.command("run")
def campaign_run(config: Annotated[Path, typer.Argument(help="Campaign TOML file.")],
                 dir: Annotated[Optional[Path], typer.Option("--dir", help="Campaign directory (default runs/NAME).")] = None,
                 rounds: Annotated[Optional[int], typer.Option(min=1, help="Override budget.rounds.")] = None) -> None:
    """Run or continue a campaign on Prefect (ephemeral local server unless PREFECT_API_URL is set)."""
    import os

    from closedloop.lab.config import ConfigError, load_campaign_config

    try:
        cfg = load_campaign_config(config)
    except ConfigError as err:
        fail(str(err))
    from closedloop.flows.campaign import campaign
    from closedloop.lab.lock import CampaignLocked
    from closedloop.lab.store import IntegrityError

    try:
        state = campaign(config_path=str(config), campaign_dir=str(dir) if dir else None, rounds=rounds)
    except (CampaignLocked, IntegrityError) as err:
        fail(str(err))
    console.rule(f"campaign {cfg.name}: {state['stop_reason']}")
    _print_status(Path(state["ledger"]).parent)
    console.print(f"ledger:  {state['ledger']}\nfigures: {state['figures']}\nmodel:   {state['latest_model']}")
    if os.environ.get("PREFECT_API_URL"):
        console.print(f"UI: the runs are in the Prefect UI at {os.environ['PREFECT_API_URL'].removesuffix('/api')}")
    else:
        console.print("UI: this ran on Prefect's ephemeral server. To browse runs, start `make ui` "
                      "(http://127.0.0.1:4200) and run again with PREFECT_API_URL=http://127.0.0.1:4200/api.")


def _print_status(directory: Path) -> None:
    from closedloop.lab.store import CampaignStore

    store = CampaignStore(directory)
    ledger = store.read_ledger()
    table = Table(title=f"ledger {store.ledger_path}")
    for col in ("round", "case_id", "status", "strategy", "parameters", "rel_l2", "sim_s"):
        table.add_column(col)
    for _, row in ledger.iterrows():
        params = ", ".join(f"{k}={v:.3g}" for k, v in json.loads(row["parameters"]).items())
        rel = "" if row["rel_l2"] != row["rel_l2"] else f"{row['rel_l2']:.4f}"
        sim = "" if row["sim_seconds"] != row["sim_seconds"] else f"{row['sim_seconds']:.2f}"
        table.add_row(str(row["round"]), row["case_id"], row["status"], str(row["strategy"]), params, rel, sim)
    console.print(table)


@campaign_app.command("status")
def campaign_status(dir: Annotated[Path, typer.Argument(help="Campaign directory.")]) -> None:
    """Show a campaign's ledger and state."""
    if not (dir / "ledger.parquet").is_file():
        fail(f"{dir}: no ledger.parquet here; not a campaign directory")
    _print_status(dir)
    state_path = dir / "campaign.json"
    if state_path.is_file():
        state = json.loads(state_path.read_text())
        err = state.get("last_round_mean_rel_l2")
        console.print(f"status: {state['status']}; rounds {state['rounds_done']}/{state['rounds_budget']}; "
                      f"cases done {state['cases_done']}, failed {state['cases_failed']}; "
                      f"last round mean rel L2 {'-' if err is None or math.isnan(err) else f'{err:.4f}'}; "
                      f"stop: {state['stop_reason']}")
        for line in state.get("repairs", [])[-5:]:
            console.print(f"[yellow]repaired:[/] {line}", highlight=False)


@app.command()
def steer(campaign_dir: Annotated[Path, typer.Argument(help="Campaign directory with a trained model.")],
          concept: Annotated[str, typer.Option(help="Design parameter whose regimes define the concept.")] = "inlet_speed",
          toward: Annotated[str, typer.Option(help="Steer toward its high or low regime.")] = "high",
          split: Annotated[Optional[float], typer.Option(help="Group boundary (default: the median).")] = None,
          layer: Annotated[Optional[list[str]], typer.Option(help="Candidate layer (repeat; default: the closure's convolutions).")] = None,
          base_cases: Annotated[int, typer.Option(help="Held-out cases of the other regime to steer.")] = 2,
          initial: Annotated[int, typer.Option(help="Sobol experiments before BoTorch.")] = 6,
          rounds: Annotated[int, typer.Option(help="BoTorch rounds.")] = 3,
          batch_size: Annotated[int, typer.Option(help="Experiments per BoTorch round.")] = 2,
          alpha_min: float = -2.0, alpha_max: float = 2.0, seed: int = 0,
          reduce: Annotated[str, typer.Option(help="space_mean (Δ per channel) or field (Δ per channel and cell).")] = "space_mean") -> None:
    """Steering experiments chosen by BoTorch on a campaign's latest model, validated by simulation."""
    from closedloop.lab import steering as lab
    from closedloop.lab.config import format_validation_error
    from closedloop.lab.lock import CampaignLocked

    if not campaign_dir.is_dir():
        fail(f"campaign_dir: {campaign_dir}: no such directory")
    try:
        config = lab.SteeringConfig(concept=concept, toward=toward, split=split, layers=layer or None,
                                    base_cases=base_cases, initial_experiments=initial, rounds=rounds,
                                    batch_size=batch_size, alpha_min=alpha_min, alpha_max=alpha_max, seed=seed,
                                    reduce=reduce)
    except ValidationError as err:
        fail(format_validation_error(err, "steer"))
    total = config.initial_experiments + config.rounds * config.batch_size
    with _progress() as progress:
        task = progress.add_task(f"steer {config.name}", total=total, status="")
        try:
            report = lab.run_steering(campaign_dir, config, step=lambda name: progress.update(task, status=name),
                                      progress=lambda n: progress.advance(task, n))
        except (ValueError, CampaignLocked) as err:
            fail(str(err))
        progress.update(task, completed=total, status="done")
    s = report.summary
    table = Table(title=f"steering {config.name} on {s['model']}: best {s['best']['layer']} "
                        f"α={s['best']['alpha']:.3g}, steps {s['best']['first_step']}–{s['best']['last_step']}")
    for col in ("base case", "target case", "distance unsteered", "distance steered"):
        table.add_column(col)
    for b, t, du, ds in zip(s["base_cases"], s["target_cases"], s["distance_unsteered"], s["distance_steered"]):
        table.add_row(b, t, f"{du:.4f}", f"{ds:.4f}")
    console.print(table)
    console.print(f"{s['experiments']} experiments; steering brought {s['fraction_improved']:.0%} of the base cases "
                  f"closer to the target reference")
    console.print(f"[green]wrote[/] {report.paths['experiments']}, {report.paths['report']} and figures")


@app.command()
def serve(config: Annotated[Path, typer.Option(help="Campaign config the deployment runs.")] = Path("configs/smoke.toml"),
          cron: Annotated[str, typer.Option(help="Cron schedule (UTC).")] = "0 3 * * *") -> None:
    """Serve the campaign flow as a deployment with a cron schedule (needs a Prefect server)."""
    from closedloop.deployments.serve import serve_deployments

    serve_deployments(config_path=str(config), cron=cron)


if __name__ == "__main__":  # pragma: no cover
    app()
