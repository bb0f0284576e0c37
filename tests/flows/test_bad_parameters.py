"""Bad deployment and flow parameters: each refused before any compute, with a message naming the field.

Three gates, in the order a triggered run meets them:

1. the server checks a run's parameters against the deployment's schema (REST, ``run_deployment``, UI);
2. the flow checks them against its signature when the run starts (worker / ``serve`` process);
3. the flow body refuses values the schema allows but a campaign cannot use, before it simulates.

Plus the deployment's own settings (its cron schedule) and the CLI's options. Malformed configs and
scenarios have their own tables (tests/lab/test_lab_config.py, tests/simulators/test_simulators_scenario.py).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prefect.exceptions import ParameterTypeError, SignatureMismatchError
from prefect.utilities.schema_tools.validation import ValidationError as SchemaError
from prefect.utilities.schema_tools.validation import validate
from typer.testing import CliRunner

from closedloop.deployments.serve import campaign_deployment
from closedloop.flows.campaign import campaign
from closedloop.cli import app
from closedloop.lab.config import ConfigError

# (id, parameters, field the message must name)
SCHEMA_REJECTS = [
    ("rounds-word", {"rounds": "many"}, "rounds"),
    ("rounds-numeric-string", {"rounds": "3"}, "rounds"),
    ("rounds-fraction", {"rounds": 1.5}, "rounds"),
    ("rounds-list", {"rounds": [1]}, "rounds"),
    ("rounds-bool", {"rounds": True}, "rounds"),
    ("rounds-object", {"rounds": {"n": 1}}, "rounds"),
    ("config-int", {"config_path": 3}, "config_path"),
    ("config-null", {"config_path": None}, "config_path"),
    ("config-object", {"config_path": {"path": "x.toml"}}, "config_path"),
    ("config-list", {"config_path": ["a.toml", "b.toml"]}, "config_path"),
    ("dir-int", {"campaign_dir": 5}, "campaign_dir"),
    ("dir-list", {"campaign_dir": ["runs/a"]}, "campaign_dir"),
    ("dir-bool", {"campaign_dir": False}, "campaign_dir"),
]

SIGNATURE_REJECTS = [
    ("rounds-word", {"rounds": "many"}, ParameterTypeError, "rounds"),
    ("rounds-fraction", {"rounds": 2.5}, ParameterTypeError, "rounds"),
    ("config-int", {"config_path": 7}, ParameterTypeError, "config_path"),
    ("dir-list", {"campaign_dir": ["x"]}, ParameterTypeError, "campaign_dir"),
    ("unknown-parameter", {"epochs": 3}, SignatureMismatchError, "epochs"),
]


@pytest.fixture(scope="module")
def schema() -> dict:
    return campaign_deployment()._parameter_openapi_schema.model_dump()


@pytest.mark.parametrize("parameters, field", [c[1:] for c in SCHEMA_REJECTS], ids=[c[0] for c in SCHEMA_REJECTS])
def test_server_schema_rejects_badly_typed_parameters(schema, parameters, field):
    with pytest.raises(SchemaError, match=rf"Validation failed for field '{field}'"):
        validate(parameters, schema, raise_on_error=True)


def test_server_schema_accepts_the_good_ones(schema):
    # the control: the rejections above come from the values, not from a schema that refuses everything
    for good in ({}, {"rounds": 2}, {"rounds": None}, {"config_path": "configs/smoke.toml", "campaign_dir": "runs/x"}):
        validate(good, schema, raise_on_error=True)


@pytest.mark.parametrize("parameters, error, field", [c[1:] for c in SIGNATURE_REJECTS],
                         ids=[c[0] for c in SIGNATURE_REJECTS])
def test_flow_signature_rejects_bad_parameters(parameters, error, field):
    with pytest.raises(error, match=field):
        campaign.validate_parameters(parameters)


def _value_cases(tmp: Path, fast: Path) -> dict[str, tuple[dict, type[BaseException], str]]:
    """(parameters, error, text the message must contain) for values the schema lets through."""
    (tmp / "broken.toml").write_text("name = [\n")
    (tmp / "empty.toml").write_text("")
    (tmp / "a-file").write_text("not a directory\n")
    other = tmp / "other-campaign"
    other.mkdir()
    (other / "campaign.json").write_text(json.dumps({"name": "other", "identity": {"seed": 99}}))
    garbled = tmp / "garbled-state"
    garbled.mkdir()
    (garbled / "campaign.json").write_text("{ not json")
    return {
        "config-missing": ({"config_path": str(tmp / "no-such.toml")}, ConfigError, "no-such.toml: config file not found"),
        "config-is-directory": ({"config_path": str(tmp)}, ConfigError, f"{tmp}: config file not found"),
        "config-not-toml": ({"config_path": str(tmp / "broken.toml")}, ConfigError, "broken.toml: not valid TOML"),
        "config-empty": ({"config_path": str(tmp / "empty.toml")}, ConfigError, "name: Field required"),
        "rounds-zero": ({"config_path": str(fast), "rounds": 0}, ValueError, "budget.rounds"),
        "rounds-negative": ({"config_path": str(fast), "rounds": -2}, ValueError, "budget.rounds"),
        "rounds-huge": ({"config_path": str(fast), "rounds": 10**9}, ValueError, "budget.rounds"),
        "dir-is-file": ({"config_path": str(fast), "campaign_dir": str(tmp / "a-file")}, ValueError,
                        "campaign_dir: "),
        "dir-under-file": ({"config_path": str(fast), "campaign_dir": str(tmp / "a-file" / "sub")}, ValueError,
                           "campaign_dir: "),
        "dir-other-campaign": ({"config_path": str(fast), "campaign_dir": str(other)}, ValueError,
                               "holds a campaign with another scenario, design or seed"),
        "dir-garbled-state": ({"config_path": str(fast), "campaign_dir": str(garbled)}, Exception,
                              "unreadable campaign state"),
    }


VALUE_IDS = ["config-missing", "config-is-directory", "config-not-toml", "config-empty", "rounds-zero",
             "rounds-negative", "rounds-huge", "dir-is-file", "dir-under-file", "dir-other-campaign",
             "dir-garbled-state"]


@pytest.mark.parametrize("case", VALUE_IDS)
def test_flow_refuses_unusable_values_before_compute(case, tmp_path, fast_config, monkeypatch):
    from closedloop.lab import campaign as steps
    from closedloop.lab.campaign import propose

    def no_compute(*args, **kwargs):
        raise AssertionError("a simulation, training or proposal started despite the bad input")

    for module, step in ((steps, "run_case"), (steps, "retrain_round"), (propose, "propose_round"),
                         (steps, "validate_cases")):
        monkeypatch.setattr(module, step, no_compute)
    parameters, error, text = _value_cases(tmp_path, fast_config)[case]
    parameters.setdefault("campaign_dir", str(tmp_path / "fresh"))
    with pytest.raises(error, match=re.escape(text)):
        campaign.fn(**parameters)
    # nothing written: no ledger, no case, no model anywhere below the campaign directory
    written = [p.name for p in tmp_path.rglob("*") if p.suffix in (".parquet", ".pt")]
    assert written == []


@pytest.mark.parametrize("cron", ["every night", "61 * * * *", "0 25 * * *"])
def test_deployment_refuses_bad_cron(cron):
    with pytest.raises(ValueError, match=r"(?s)cron.*Invalid cron string"):
        campaign_deployment(cron=cron)


@pytest.mark.parametrize("args, needle", [
    (["campaign", "run", "configs/smoke.toml", "--rounds", "0"], "--rounds"),
    (["campaign", "run", "configs/smoke.toml", "--rounds", "two"], "--rounds"),
    (["campaign", "run", "no-such.toml"], "no-such.toml: config file not found"),
])
def test_cli_refuses_bad_options(args, needle):
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert needle in result.output
