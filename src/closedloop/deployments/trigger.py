"""Trigger the served campaign deployment programmatically and wait for its result.

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m closedloop.deployments.trigger --rounds 1

Equivalent from the shell: ``prefect deployment run campaign/smoke-nightly --param rounds=1``.
"""
from __future__ import annotations

import argparse

from prefect.deployments import run_deployment

from closedloop.deployments.serve import DEPLOYMENT_NAME


def trigger(rounds: int | None = None, campaign_dir: str | None = None, timeout: float = 600):
    params = {k: v for k, v in {"rounds": rounds, "campaign_dir": campaign_dir}.items() if v is not None}
    return run_deployment(name=f"campaign/{DEPLOYMENT_NAME}", parameters=params, timeout=timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--campaign-dir")
    args = parser.parse_args()
    run = trigger(args.rounds, args.campaign_dir)
    print(f"flow run {run.name} ({run.id}): {run.state.name if run.state else 'unknown'}")


if __name__ == "__main__":
    main()
