"""``[budget]``: rounds and cases, the stopping rules' fields, refused by name when they cannot be valid."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from closedloop.lab.budget_config import Budget

BASE = {"rounds": 2, "initial_cases": 4, "batch_size": 4}


def test_the_stopping_rules_are_off_unless_set():
    budget = Budget(**BASE)
    assert (budget.error_target, budget.max_cases, budget.max_error_target, budget.patience,
            budget.max_cpu_seconds) == (None, None, None, None, None)
    assert budget.min_improvement == 0.0


@pytest.mark.parametrize("fields, needle", [
    ({"rounds": 0}, "rounds"),
    ({"initial_cases": 1}, "initial_cases"),
    ({"batch_size": 1}, "batch_size"),
    ({"max_cases": 3}, r"max_cases \(3\) is below initial_cases \(4\)"),
    ({"patience": 0}, "patience"),
    ({"max_error_target": -1.0}, "max_error_target"),
    ({"min_improvement": 1.0}, "min_improvement"),
    ({"max_cpu_seconds": float("inf")}, "max_cpu_seconds"),
    ({"roundz": 3}, "roundz"),
])
def test_a_bad_budget_is_refused_naming_the_field(fields, needle):
    with pytest.raises(ValidationError, match=needle):
        Budget(**{**BASE, **fields})
