"""The ``closedloop`` command (typer + rich): parse, call a flow or a lab function, print.

One module per command group: ``simulate``, ``surrogate`` (train, predict), ``campaign`` (run,
status, repair), ``steer``, ``serve``; ``console`` holds what they share. Heavy imports (torch, Prefect)
happen inside the commands, so ``--help`` stays fast.
"""
from __future__ import annotations

import typer

from closedloop.cli.campaign import campaign_repair, campaign_run, campaign_status
from closedloop.cli.serve import serve
from closedloop.cli.simulate import simulate
from closedloop.cli.steer import steer
from closedloop.cli.surrogate import predict, train

app = typer.Typer(help="closedloop: a self-driving lab for physics surrogates.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
campaign_app = typer.Typer(help="Run and inspect campaigns.", no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")
for command in (simulate, train, predict, steer, serve):
    app.command()(command)
campaign_app.command("run")(campaign_run)
campaign_app.command("status")(campaign_status)
campaign_app.command("repair")(campaign_repair)

__all__ = ["app"]
