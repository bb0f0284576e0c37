"""docs/build.py: the result tables in README.md and docs/*.md match bench/results/*.json."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "docs" / "build.py"


def build(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BUILD), *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture
def pages(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the pages (root/README.md, root/docs/*.md) and, apart, of the results files."""
    root, results = tmp_path / "root", tmp_path / "results"
    (root / "docs").mkdir(parents=True)
    results.mkdir()
    shutil.copy(REPO / "README.md", root)
    for page in (REPO / "docs").glob("*.md"):
        shutil.copy(page, root / "docs")
    for data in (REPO / "bench" / "results").glob("*.json"):
        shutil.copy(data, results)
    return root, results


def test_the_repository_tables_are_current():
    done = build("--check")
    assert done.returncode == 0, done.stderr


def test_a_changed_result_makes_check_fail_naming_its_table(pages):
    root, results = pages
    assert build("--check", "--root", root, "--results", results).returncode == 0
    path = results / "reference.json"
    data = json.loads(path.read_text())
    data["scaling"][0]["transport_s"] = 99.0
    path.write_text(json.dumps(data))

    stale = build("--check", "--root", root, "--results", results)
    assert stale.returncode == 1
    assert "reference-scaling (docs/reference.md)" in stale.stderr
    assert "paper-table" not in stale.stderr
    assert "| 99.0 |" not in (root / "docs" / "reference.md").read_text(), "--check must not write"

    assert build("--root", root, "--results", results).returncode == 0
    steps = data["scaling"][0]["steps"]
    assert f"| 0.5 m | float64 | 1,440 | {steps} | 99.0 |" in (root / "docs" / "reference.md").read_text()
    assert build("--check", "--root", root, "--results", results).returncode == 0


def test_a_missing_results_file_names_the_table(pages):
    root, results = pages
    (results / "steering.json").unlink()
    done = build("--check", "--root", root, "--results", results)
    assert done.returncode == 1
    assert "table steering: missing" in done.stderr


def test_a_table_typed_by_hand_in_docs_is_refused(pages):
    root, results = pages
    page = root / "docs" / "steering.md"
    page.write_text(page.read_text() + "\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    done = build("--check", "--root", root, "--results", results)
    assert done.returncode == 1
    assert "docs/steering.md" in done.stderr and "outside" in done.stderr


def test_the_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 150
