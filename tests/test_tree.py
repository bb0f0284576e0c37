"""Tests mirror the package tree (DESIGN.md): every module of src/closedloop with logic has its test file.

    src/closedloop/MODULE.py           ->  tests/test_MODULE.py
    src/closedloop/PKG/MODULE.py       ->  tests/PKG/test_PKG_MODULE.py
    src/closedloop/PKG/SUB/MODULE.py   ->  tests/PKG/SUB/test_SUB_MODULE.py

A module has logic when it defines a function or a class; ``__init__.py`` files are the packages'
re-exports and are not counted. Further files for one module add an aspect to its name
(``test_simulators_reference_compiled.py``); a test of a property that spans several modules of a
package is a suite named for the property, listed in ``SUITES`` with the reason. The flows' end-to-end
suites (tests/flows/, named for the behaviour they drive) and the folders that mirror something else
(tests/bench/ mirrors bench/, tests/deployments/ has its own owner) are outside the second rule.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "closedloop"
TESTS = REPO / "tests"

# Modules with logic and no test file of their own, each with the reason.
EXEMPT = {
    "cli/console.py": "what the commands share (the console, fail with exit 2, a progress bar, read a scenario); "
                      "every command's test runs through it (tests/cli/)",
    "cli/serve.py": "a ten-line command that calls deployments.serve.serve_deployments (needs a Prefect server)",
    "simulators/devices.py": "a ten-line device choice (auto: CUDA when present); run by every simulation",
}
# Modules whose tests live in a file of another name (tests/deployments/ names its files for what they
# drive against a server); the file must exist.
ELSEWHERE = {
    "deployments/serve.py": "tests/deployments/test_deployments.py",
    "deployments/trigger.py": "tests/deployments/test_deployments_live.py",
}
# Test files named for a property that spans several modules, and why.
SUITES = {
    "tests/test_house.py": "the house rules: who may import whom, module length",
    "tests/test_docs.py": "the docs' generated tables are current",
    "tests/test_tree.py": "this file: tests mirror the package tree",
    "tests/cli/test_cli_bad_inputs.py": "bad inputs at every entry point refused by name before any compute",
    "tests/physics/test_physics_conservation.py": "mass conservation of advection, diffusion and the steppers together",
    "tests/physics/test_physics_generic.py": "batching, dtypes, devices, gradients and exactness of every operator",
    "tests/physics/test_physics_positivity.py": "positivity and the maximum principle at the stable step (operators "
                                                "and steppers)",
    "tests/physics/test_physics_peer_pypde.py": "the FV core against an independent solver (py-pde)",
    "tests/surrogates/test_surrogates_band_physics.py": "the band's vertical exchange, the multiplicative closure and "
                                                        "the physics warm-up (model, coupling, training)",
    "tests/surrogates/test_surrogates_variants.py": "the model variants end to end (model, closures, training)",
}
OUTSIDE = ("flows", "bench", "deployments", "golden")  # folders the naming rule does not cover


def has_logic(path: Path) -> bool:
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
               for n in ast.walk(ast.parse(path.read_text())))


def mirrored(module: Path) -> Path:
    """The test file of ``module`` (a path relative to the package root)."""
    parts = module.with_suffix("").parts
    if len(parts) == 1:
        return Path(f"test_{parts[0]}.py")
    return Path(*parts[:-1]) / f"test_{parts[-2]}_{parts[-1]}.py"


def modules_with_logic(src: Path) -> list[Path]:
    return sorted(p.relative_to(src) for p in src.rglob("*.py") if p.name != "__init__.py" and has_logic(p))


def missing_tests(src: Path, tests: Path, exempt: dict[str, str] = EXEMPT,
                  elsewhere: dict[str, str] = ELSEWHERE) -> list[str]:
    """Each module with logic whose mirrored test file is missing (and not exempt or tested elsewhere)."""
    out = []
    for module in modules_with_logic(src):
        key = module.as_posix()
        if key in exempt:
            continue
        if key in elsewhere:
            if not (tests.parent / elsewhere[key]).is_file():
                out.append(f"{key}: {elsewhere[key]} (its named test file) is missing")
            continue
        if not (tests / mirrored(module)).is_file():
            out.append(f"{key}: no {(tests / mirrored(module)).relative_to(tests.parent).as_posix()}")
    return out


def stale_entries(src: Path, tests: Path, exempt: dict[str, str] = EXEMPT,
                  elsewhere: dict[str, str] = ELSEWHERE) -> list[str]:
    """Exemptions for modules that are gone, have no logic, or now have their mirrored test file."""
    logic = {m.as_posix() for m in modules_with_logic(src)}
    out = []
    for key in [*exempt, *elsewhere]:
        if key not in logic:
            out.append(f"{key}: listed, but no such module with logic")
        elif (tests / mirrored(Path(key))).is_file():
            out.append(f"{key}: listed, but {mirrored(Path(key)).as_posix()} exists")
    return out


def unmatched_test_files(src: Path, tests: Path, suites: dict[str, str] = SUITES) -> list[str]:
    """Test files that name no module (``test_PKG_MODULE[_aspect].py``) and are not a listed suite."""
    prefixes: dict[Path, set[str]] = {}  # test folder -> its modules' file names (an aspect may follow)
    packages: dict[Path, str] = {}  # test folder -> test_PKG, the package's own surface (what __init__ assembles)
    for module in sorted(p.relative_to(src) for p in src.rglob("*.py")):
        parts = module.with_suffix("").parts
        folder = Path(*parts[:-1])
        if parts[-1] != "__init__":
            prefixes.setdefault(folder, set()).add(mirrored(module).stem)
        elif len(parts) > 1:
            packages[folder] = f"test_{parts[-2]}"
    out = []
    for path in sorted(tests.rglob("test_*.py")):
        rel = path.relative_to(tests)
        if rel.parts[0] in OUTSIDE or path.relative_to(tests.parent).as_posix() in suites:
            continue
        stem = path.stem
        if stem != packages.get(rel.parent) and not any(stem == p or stem.startswith(p + "_")
                                                        for p in prefixes.get(rel.parent, ())):
            out.append(f"{path.relative_to(tests.parent).as_posix()}: names no module of "
                       f"src/closedloop/{rel.parent.as_posix()}")
    return out


def test_every_module_with_logic_has_its_test_file():
    assert missing_tests(SRC, TESTS) == []


def test_exemptions_are_current():
    assert stale_entries(SRC, TESTS) == []
    assert [s for s in SUITES if not (REPO / s).is_file()] == []


def test_every_test_file_names_its_module_or_is_a_listed_suite():
    assert unmatched_test_files(SRC, TESTS) == []


@pytest.fixture
def fake_tree(tmp_path: Path) -> tuple[Path, Path]:
    src, tests = tmp_path / "src" / "pkgroot", tmp_path / "tests"
    files = {
        src / "__init__.py": "",
        src / "top.py": "def f():\n    return 1\n",
        src / "lab" / "__init__.py": "from pkgroot.lab.store import Store\n",
        src / "lab" / "store.py": "class Store:\n    pass\n",
        src / "lab" / "names.py": "NAMES = ('a', 'b')\n",  # constants only: no test file needed
        src / "lab" / "campaign" / "__init__.py": "",
        src / "lab" / "campaign" / "audit.py": "def audit():\n    pass\n",
        tests / "test_top.py": "",
        tests / "lab" / "test_lab_store.py": "",
        tests / "lab" / "test_lab_store_damage.py": "",  # an aspect of store
        tests / "lab" / "campaign" / "test_campaign_audit.py": "",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src, tests


def test_the_check_sees_a_missing_test_file(fake_tree):
    src, tests = fake_tree
    assert missing_tests(src, tests, {}, {}) == []
    (tests / "lab" / "campaign" / "test_campaign_audit.py").unlink()
    (src / "lab" / "names.py").write_text("def name():\n    return 'a'\n")  # now it has logic
    assert missing_tests(src, tests, {}, {}) == ["lab/campaign/audit.py: no tests/lab/campaign/test_campaign_audit.py",
                                                 "lab/names.py: no tests/lab/test_lab_names.py"]
    assert missing_tests(src, tests, {"lab/names.py": "why"}, {"lab/campaign/audit.py": "tests/other.py"}) == [
        "lab/campaign/audit.py: tests/other.py (its named test file) is missing"]
    (tests / "other.py").write_text("")
    assert missing_tests(src, tests, {"lab/names.py": "why"}, {"lab/campaign/audit.py": "tests/other.py"}) == []


def test_the_check_sees_stale_exemptions_and_stray_test_files(fake_tree):
    src, tests = fake_tree
    assert stale_entries(src, tests, {"lab/store.py": "why", "lab/names.py": "why", "gone.py": "why"}, {}) == [
        "lab/store.py: listed, but lab/test_lab_store.py exists",
        "lab/names.py: listed, but no such module with logic",
        "gone.py: listed, but no such module with logic"]
    assert unmatched_test_files(src, tests, {}) == []
    (tests / "lab" / "test_lab_stor.py").write_text("")  # a typo, or a module renamed since
    (tests / "lab" / "test_lab.py").write_text("")  # the package's own surface: allowed
    (tests / "lab" / "test_conservation.py").write_text("")
    assert unmatched_test_files(src, tests, {"tests/lab/test_conservation.py": "a property"}) == [
        "tests/lab/test_lab_stor.py: names no module of src/closedloop/lab"]
