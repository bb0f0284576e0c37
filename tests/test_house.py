"""The rules of the house (DESIGN.md): who may import whom, and modules a reader can take in."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "closedloop"
SCIENCE = ("physics", "simulators", "surrogates", "planners")
# what each layer must never import (closedloop.<name> or a third-party top-level package)
FORBIDDEN = {
    **{pkg: ("prefect", "prefect_dask", "closedloop.lab", "closedloop.tasks", "closedloop.flows",
             "closedloop.deployments", "closedloop.cli") for pkg in SCIENCE},
    "lab": ("prefect", "prefect_dask", "closedloop.tasks", "closedloop.flows", "closedloop.deployments",
            "closedloop.cli"),
    "tasks": ("closedloop.flows", "closedloop.deployments", "closedloop.cli"),
    "flows": ("closedloop.deployments", "closedloop.cli"),
    "deployments": ("closedloop.cli",),
}
MAX_LINES = 400


def imported(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file (function bodies included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((SRC / package).rglob("*.py")):
        for name in imported(path):
            for banned in FORBIDDEN[package]:
                if name == banned or name.startswith(banned + "."):
                    bad.append(f"{path.relative_to(SRC)} imports {name}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_imports(package: str):
    assert violations(package) == []


def test_the_rule_sees_an_upward_import(tmp_path: Path):
    (tmp_path / "m.py").write_text("def f():\n    from closedloop.flows.campaign import campaign\n")
    assert imported(tmp_path / "m.py") == {"closedloop.flows.campaign"}


def test_modules_stay_short():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
