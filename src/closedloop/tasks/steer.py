"""Tasks of the ``steer`` flow; each wraps one plain step of ``closedloop.lab.steering``."""
from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from closedloop.lab import steering
from closedloop.lab.steering.prepared import Prepared, prepare
from closedloop.planners.steering import SteeringSearch
from closedloop.simulators import Scenario
from closedloop.surrogates.steering import ConceptDirection
from closedloop.tasks.campaign import current_flow_run_id


@task(name="select-groups", cache_policy=NO_CACHE)
def select_groups(campaign_dir: str, config: steering.SteeringConfig) -> Prepared:
    """Open the latest model, check the request, split the ledger's cases by the concept's query."""
    prepared = prepare(campaign_dir, config)
    groups = prepared.groups
    get_run_logger().info("%s on %s: A = %s (%d cases), B = %s (%d), %d base cases held out",
                          config.name, prepared.campaign.model_name, groups.query_a, len(groups.a), groups.query_b,
                          len(groups.b), len(groups.base))
    return prepared


@task(name="measure-directions", cache_policy=NO_CACHE)
def measure_directions(prepared: Prepared, config: steering.SteeringConfig) -> list[ConceptDirection]:
    """Δ per layer, saved with the checkpoint id to steering/directions/<concept>.pt."""
    directions = steering.measure_directions(prepared.campaign, prepared.groups, prepared.layers, config.n_bootstrap,
                                        config.seed, config.reduce)
    path = steering.save_directions(prepared.campaign, directions, config.name)
    for d in directions:
        get_run_logger().info("%s: |Δ| = %.4g ± %.2g, bootstrap cosine %.3f", d.layer, d.norm,
                              d.bootstrap_norm_std, d.bootstrap_cosine)
    get_run_logger().info("directions saved to %s", path)
    return directions


def target_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """A target reference depends only on its scenario (its hash is the case id) and the device."""
    return f"steer-target-{parameters['scenario'].case_id()}-{parameters['device'].replace(':', '-')}"


@task(name="simulate-target", cache_key_fn=target_cache_key, persist_result=True, retries=1)
def simulate_target(steering_dir: str, scenario: Scenario, device: str, seed: int) -> dict[str, Any]:
    """The target regime's reference simulation for one base case (skipped when its file exists)."""
    row = steering.simulate_target(steering_dir, scenario, device, seed)
    get_run_logger().info("target %s: %s", row["case_id"], "reused" if row["reused"] else "simulated")
    return row


@task(name="search-experiments", cache_policy=NO_CACHE)
def search_experiments(prepared: Prepared, directions: list[ConceptDirection], rows: list[dict[str, Any]],
                       config: steering.SteeringConfig) -> tuple[steering.SteeringProblem, SteeringSearch]:
    """BoTorch's steering experiments on the surrogate, scored against the target references."""
    problem = steering.steering_problem(prepared.campaign, prepared.layers, directions, prepared.targets,
                                        steering.read_references(prepared.targets, rows))
    search = steering.search_experiments(problem, config)
    best = search.best
    get_run_logger().info("%d experiments; best %s α=%.3g steps %d..%d, objective %.4f", len(search.experiments),
                          problem.layers[best.layer], best.alpha, best.first_step,
                          best.steps(problem.n_steps)[-1], float(search.values.max()))
    return problem, search


@task(name="publish-steering", cache_policy=NO_CACHE)
def publish(prepared: Prepared, config: steering.SteeringConfig, directions: list[ConceptDirection],
            problem: steering.SteeringProblem, search: SteeringSearch) -> dict[str, Any]:
    """Write results under steering/ and publish the experiments table and the report as artifacts."""
    report = steering.build_report(prepared.campaign, config, prepared.groups, directions, problem, search,
                              flow_run_id=current_flow_run_id())
    steering.write_results(prepared.campaign, report)
    store = prepared.campaign.store
    table = steering.experiments_table(report)
    create_table_artifact(table=table, key=store.artifact_key("steer", config.name, "experiments"),
                          description=f"Steering {config.name}: experiments, steered vs unsteered distance")
    create_markdown_artifact(markdown=steering.markdown_with_images(report),
                             key=store.artifact_key("steer", config.name, "report"),
                             description=f"Steering {config.name}: dose-response and before/after planes")
    return {**report.summary, "paths": report.paths}
