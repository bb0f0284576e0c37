"""Tasks of the campaign flow; each wraps one plain function of ``closedloop.lab.campaign``."""
from __future__ import annotations

import json
from typing import Any

import torch
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from closedloop.lab import campaign as lab
from closedloop.lab import figures
from closedloop.lab.config import CampaignConfig
from closedloop.lab.store import CampaignStore


def current_flow_run_id() -> str | None:
    rid = flow_run.get_id()
    return str(rid) if rid else None


def collect_outcomes(config: CampaignConfig, batch: list[dict[str, float]], futures: Any) -> list[dict[str, Any]]:
    """Ledger rows for a mapped simulation: done rows, or failed rows with the error text."""
    rows = []
    run_id = current_flow_run_id()
    for params, future in zip(batch, futures):
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            rows.append({"case_id": lab.scenario_for(config, params).case_id(), "status": "failed",
                         "error": f"{type(outcome).__name__}: {outcome}"[:2000], "flow_run_id": run_id,
                         "finished_at": lab.now_iso()})
        else:
            rows.append({**outcome, "flow_run_id": run_id})
    return rows


@task(name="propose", cache_policy=NO_CACHE)
def propose(config: CampaignConfig, campaign_dir: str, round_index: int) -> list[dict[str, float]]:
    """The round's cases: stored proposals if the round was started before, else new ones."""
    store = CampaignStore(campaign_dir)
    ledger = store.read_ledger()
    mine = ledger[ledger["round"] == round_index]
    if len(mine) == 0:
        proposal = lab.propose_round(config, ledger, round_index)
        store.upsert(lab.proposal_rows(config, proposal, current_flow_run_id()))
        get_run_logger().info("round %d: proposed %d cases by %s", round_index,
                              len(proposal.parameters), proposal.strategy)
        mine = store.read_ledger().query("round == @round_index")
    pending = mine[mine["status"] != "failed"]
    return [json.loads(p) for p in pending["parameters"]]


@task(name="simulate-case", cache_policy=NO_CACHE, retry_delay_seconds=1)
def simulate_case(config: CampaignConfig, campaign_dir: str, params: dict[str, float]) -> dict[str, Any]:
    """One reference simulation (skipped when its case file already exists)."""
    row = lab.run_case(config, CampaignStore(campaign_dir), params)
    get_run_logger().info("case %s: %s", row["case_id"], "reused" if row["reused"] else
                          f"simulated in {row['sim_seconds']:.2f} s")
    return row


@task(name="record", cache_policy=NO_CACHE)
def record(campaign_dir: str, rows: list[dict[str, Any]]) -> None:
    """Write simulation outcomes into the ledger (one atomic write)."""
    clean = [{k: v for k, v in r.items() if k != "reused"} for r in rows]
    CampaignStore(campaign_dir).upsert(clean)


@task(name="validate", cache_policy=NO_CACHE)
def validate(config: CampaignConfig, campaign_dir: str, round_index: int) -> list[dict[str, Any]]:
    """Predict the round's new cases with the previous model, before training on them."""
    store = CampaignStore(campaign_dir)
    ledger = store.read_ledger()
    todo = ledger[(ledger["round"] == round_index) & (ledger["status"] == "done") & ledger["rel_l2"].isna()]
    rows, _ = lab.validate_round(config, store, round_index, todo["case_id"].tolist())
    if rows:
        store.upsert(rows)
    return rows


@task(name="retrain", cache_policy=NO_CACHE)
def retrain(config: CampaignConfig, campaign_dir: str, round_index: int) -> dict[str, Any]:
    """Train on every done case (warm start from the previous round) and save the checkpoint."""
    store = CampaignStore(campaign_dir)
    ledger = store.read_ledger()
    done = ledger[(ledger["status"] == "done") & (ledger["round"] <= round_index)]
    report = lab.retrain_round(config, store, round_index, done["case_id"].tolist())
    get_run_logger().info("round %d: trained on %d cases, loss %.4f -> %.4f in %.1f s", round_index,
                          len(done), report.initial_loss, report.best_loss, report.seconds)
    return {"cases": len(done), "initial_loss": report.initial_loss, "best_loss": report.best_loss,
            "seconds": report.seconds}


@task(name="publish-round", cache_policy=NO_CACHE)
def publish_round(config: CampaignConfig, campaign_dir: str, round_index: int) -> None:
    """Artifacts of the round: a table of its cases and errors; learning curve and plane image."""
    store = CampaignStore(campaign_dir)
    ledger = store.read_ledger()
    mine = ledger[ledger["round"] == round_index]
    table = []
    for _, row in mine.iterrows():
        entry = {"case_id": row["case_id"], "status": row["status"], "strategy": row["strategy"],
                 **json.loads(row["parameters"]),
                 "rel_l2": None if row["rel_l2"] != row["rel_l2"] else round(float(row["rel_l2"]), 5),
                 "sim_seconds": None if row["sim_seconds"] != row["sim_seconds"] else round(float(row["sim_seconds"]), 3)}
        table.append(entry)
    key = f"{config.name}-round-{round_index}".lower().replace("_", "-")
    create_table_artifact(table=table, key=f"{key}-cases",
                          description=f"Campaign {config.name}, round {round_index}: cases and validation errors")

    curve = figures.learning_curve(ledger)
    (store.figures_dir / "learning_curve.png").write_bytes(curve)
    md = [f"# {config.name}: round {round_index}", "",
          f"Mean validation relative L2 (predicted before training): "
          f"{mine['rel_l2'].mean():.4f}; worst {mine['rel_l2'].max():.4f}", "",
          f"![learning curve]({figures.data_url(curve)})"]
    validated = mine[mine["rel_l2"].notna()]
    if len(validated):
        worst = validated.loc[validated["rel_l2"].idxmax(), "case_id"]
        _, preds = lab.validate_round(config, store, round_index, [worst])
        case = store.read_case(worst)
        png = figures.plane_comparison(preds[worst][-1], case.plane[-1].to(torch.float64), case.plane_mask,
                                       float(case.times[-1]), title=f"worst case {worst}")
        (store.figures_dir / f"round_{round_index:03d}_worst.png").write_bytes(png)
        md += ["", f"Worst case `{worst}`, final time:", "", f"![plane]({figures.data_url(png)})"]
    create_markdown_artifact(markdown="\n".join(md), key=f"{key}-report",
                             description=f"Campaign {config.name}, round {round_index}")
