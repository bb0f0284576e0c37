"""``closedloop campaign run`` and ``closedloop campaign status``."""
from __future__ import annotations

import enum
import json
import math
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from closedloop.cli.console import console, fail


class Mode(str, enum.Enum):
    """``--mode``: the values of ``[campaign] mode``."""

    sync = "sync"
    async_ = "async"


def campaign_run(config: Annotated[Path, typer.Argument(help="Campaign TOML file.")],
                 dir: Annotated[Optional[Path], typer.Option("--dir", help="Campaign directory (default runs/NAME).")] = None,
                 rounds: Annotated[Optional[int], typer.Option(min=1, help="Override budget.rounds.")] = None,
                 mode: Annotated[Optional[Mode], typer.Option(
                     help="Override campaign.mode: sync rounds, or async (workers kept full).")] = None) -> None:
    """Run or continue a campaign on Prefect (ephemeral local server unless PREFECT_API_URL is set).

    ``[campaign] mode = "async"`` (or ``--mode async``) keeps the simulation workers full and
    retrains beside them (docs/operations.md, *Asynchronous campaigns*)."""
    from closedloop.lab.campaign.state import campaign_directory
    from closedloop.lab.config import load_with_overrides

    overrides = {"budget.rounds": rounds, "campaign.mode": mode.value if mode else None}
    try:  # the config the flow will build (the same file, the same overrides) is refused here, before a run starts
        cfg = load_with_overrides(config, **overrides)
        campaign_directory(cfg, str(dir) if dir else None)
    except ValueError as err:
        fail(str(err))
    from closedloop.flows.campaign import campaign
    from closedloop.lab.lock import CampaignLocked
    from closedloop.lab.store import CampaignStore

    try:
        state = campaign(config_path=str(config), campaign_dir=str(dir) if dir else None, rounds=rounds,
                         mode=mode.value if mode else None)
    except (CampaignLocked, ValueError) as err:  # IntegrityError and ConfigError are ValueErrors
        fail(str(err))
    console.rule(f"campaign {cfg.name}: {state['stop_reason']}")
    print_ledger(CampaignStore.existing(Path(state["ledger"]).parent))
    print_seconds(state.get("seconds_by_round", {}))
    console.print(f"ledger:  {state['ledger']}\nfigures: {state['figures']}\nmodel:   {state['latest_model']}")
    if os.environ.get("PREFECT_API_URL"):
        console.print(f"UI: the runs are in the Prefect UI at {os.environ['PREFECT_API_URL'].removesuffix('/api')}")
    else:
        console.print("UI: this ran on Prefect's ephemeral server. To browse runs, start `make ui` "
                      "(http://127.0.0.1:4200) and run again with PREFECT_API_URL=http://127.0.0.1:4200/api.")


def print_ledger(store) -> None:  # noqa: ANN001 - a CampaignStore (imported lazily: a fast --help)
    table = Table(title=f"ledger {store.ledger_path}")
    for col in ("round", "case_id", "status", "strategy", "parameters", "rel_l2", "sim_s"):
        table.add_column(col)
    for _, row in store.read_ledger().iterrows():
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float | int) else f"{k}={v}"
                           for k, v in json.loads(row["parameters"]).items())
        rel = "" if row["rel_l2"] != row["rel_l2"] else f"{row['rel_l2']:.4f}"
        sim = "" if row["sim_seconds"] != row["sim_seconds"] else f"{row['sim_seconds']:.2f}"
        table.add_row(str(row["round"]), row["case_id"], row["status"], str(row["strategy"]), params, rel, sim)
    console.print(table)


def campaign_status(dir: Annotated[Path, typer.Argument(help="Campaign directory.")]) -> None:
    """Show a campaign's ledger and state."""
    from closedloop.lab.store import CampaignStore

    try:
        store = CampaignStore.existing(dir)
    except ValueError as err:
        fail(str(err))
    print_ledger(store)
    from closedloop.lab.lock import is_held

    state = store.read_state()
    if state:
        err = state.get("last_round_mean_rel_l2")
        status = state["status"]
        if status == "running" and not is_held(store.root):
            status = "crashed (campaign.json says running, but no live process holds the directory; rerun to continue)"
        console.print(f"status: {status}; rounds {state['rounds_done']}/{state['rounds_budget']}; "
                      f"cases done {state['cases_done']}, failed {state['cases_failed']}; "
                      f"last round mean rel L2 {'-' if err is None or math.isnan(err) else f'{err:.4f}'}; "
                      f"stop: {state['stop_reason']}")
        for line in state.get("repairs", [])[-5:]:
            console.print(f"[yellow]repaired:[/] {line}", highlight=False)
        print_training(store, state["rounds_done"])
        print_seconds(state.get("seconds_by_round", {}))


def print_seconds(seconds: dict[str, dict[str, float]]) -> None:
    """Wall seconds by round and step (lab/campaign/clock.py), and the campaign's total."""
    from closedloop.lab.campaign.clock import STEPS, totals

    if not seconds:
        return
    columns = ["wall", *STEPS, "orchestration"]
    table = Table(title="wall seconds by round and step (steps overlap in async mode)")
    for col in ("round", *columns):
        table.add_column(col, justify="right")
    for r, row in seconds.items():
        table.add_row(r, *(f"{row.get(c, 0.0):.1f}" for c in columns))
    total = totals(seconds)
    table.add_row("all", *(f"{total.get(c, 0.0):.1f}" for c in columns), style="bold")
    console.print(table)


def print_training(store, rounds: int) -> None:  # noqa: ANN001 - a CampaignStore
    """Each round's training: the loss at its start, best and last epoch, the best epoch, the
    largest spike, seconds, and a warning for a round that did not learn."""
    from closedloop.lab.campaign import training_history

    history = training_history(store, rounds)
    if not history:
        return
    table = Table(title="training by round")
    for col in ("round", "cases", "start loss", "best loss", "last loss", "best epoch", "largest spike", "seconds"):
        table.add_column(col)
    for t in history:
        best = "kept start" if t["kept_start"] else f"{t['best_epoch']}/{t['epochs']}"
        table.add_row(str(t["round"]), str(t["cases"]), f"{t['initial_loss']:.4g}", f"{t['best_loss']:.4g}",
                      f"{t['last_loss']:.4g}", best, f"{t['largest_spike']:.2f}x", f"{t['seconds']:.1f}")
    console.print(table)
    for t in history:
        for warning in t["warnings"]:
            console.print(f"[yellow]round {t['round']}: training did not learn:[/] {warning}", highlight=False)


def campaign_repair(dir: Annotated[Path, typer.Argument(help="Campaign directory.")]) -> None:
    """Rebuild a missing, truncated or corrupted ledger.parquet from its journal (ledger.journal)."""
    from closedloop.lab.campaign.audit import repair_ledger
    from closedloop.lab.lock import CampaignLocked, campaign_lock
    from closedloop.lab.store import CampaignStore

    if not (dir / "ledger.journal").is_file():
        fail(f"{dir}: no ledger.journal here; nothing to rebuild the ledger from")
    try:
        with campaign_lock(dir):
            console.print(repair_ledger(CampaignStore(dir, create=False)), highlight=False)
    except (CampaignLocked, ValueError) as err:
        fail(str(err))
