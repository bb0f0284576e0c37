"""The campaign's steps as plain functions (no Prefect), one module per step.

=============  ===========================================================================
``design``     scenarios of design points, feasibility, the campaign's Sobol design
``propose``    the planner's evidence from the ledger; the next cases (both modes), stored first
``simulation`` one reference simulation per case, written once; failed rows
``learn``      validate (predict each new case before training on it), retrain (warm start)
``fidelity``   a case's level, the surrogate's view of it, the levels of a proposal
``cost``       the per-level cost model; a proposal cut to the compute budget
``audit``      before resuming: checksums, damaged files set aside, cases to simulate again
``state``      rounds complete and published, ``campaign.json``
``stop``       the stop rules, one owner for both modes
``scheduler``  the one loop's decisions, both modes: cadence, pool, what is due to train, the next proposal
``progress``   cases done over the budget, spend, the newest round's error
``clock``      wall seconds by round and step (``campaign.json``, ``campaign status``)
``report``     a round's cases table, planner summary and figures
=============  ===========================================================================

The ledger's views (done, validated, proposed cases, their parameters, the spend) are
``ledger.cases`` (lab/ledger.py).

tasks/ wraps each in a Prefect task; flows/campaign.py composes them. Every step reads what it
needs from the campaign directory and writes its result there atomically, so a campaign stopped at
any point (even by SIGKILL) continues from its ledger: proposals are stored before they are
simulated, a case whose file exists is never simulated again, and a round ends when its checkpoint
is written and indexed. Every step is deterministic given the campaign seed, so a resumed campaign
ends where an uninterrupted one would. The :mod:`closedloop.lab.faults` points mark where the
crash tests kill the process. The names below are re-exported for ``from closedloop.lab import
campaign``; each is owned by its step's module.
"""
from closedloop.lab.campaign.audit import AuditReport, audit, repair_ledger
from closedloop.lab.campaign.design import candidate_problems, feasible_mask, feasible_sobol, scenario_for
from closedloop.lab.campaign.learn import (initial_model, load_cases, model_for_round, predict_cases,
                                           retrain_round, round_schedule, training_history, training_set, validate_cases,
                                           validate_round)
from closedloop.lab.campaign.propose import (Proposal, ensemble_scorer, evidence_for, information_scorer, observed_errors,
                                             proposal_rows, propose_round, round_proposals)
from closedloop.lab.campaign.report import (RoundReport, planner_report, predicted_error_slice, round_report,
                                            write_round_report)
from closedloop.lab.campaign.simulation import (check_finite, failed_row, is_permanent, record_outcomes, run_case,
                                                simulation_cache_key)
from closedloop.lab.campaign.state import (campaign_directory, campaign_state, check_same_campaign, model_name, record_crash,
                                           report_path, round_complete, round_published)
from closedloop.lab.campaign.stop import stop_reason

__all__ = ["AuditReport", "audit", "repair_ledger", "candidate_problems", "feasible_mask", "feasible_sobol", "scenario_for",
           "initial_model", "load_cases", "model_for_round", "predict_cases", "retrain_round", "round_schedule", "training_history",
           "training_set", "validate_cases", "validate_round", "Proposal", "evidence_for",
           "observed_errors", "proposal_rows", "ensemble_scorer", "information_scorer", "planner_report", "propose_round", "round_proposals", "RoundReport",
           "predicted_error_slice", "round_report", "write_round_report", "check_finite", "failed_row", "is_permanent", "record_outcomes", "run_case",
           "simulation_cache_key", "campaign_directory", "campaign_state", "record_crash", "check_same_campaign", "model_name",
           "report_path", "round_complete", "round_published", "stop_reason"]
