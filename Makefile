# closedloop: two commands for a newcomer, `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# No network here: keep Prefect's server from trying to send telemetry.
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: demo test ui ui-postgres bench docs venv clean

venv: $(STAMP)

# torch first, from its pinned CPU build, so that the project's `torch>=2.5` installs nothing more.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/closedloop campaign run configs/smoke.toml --dir runs/smoke

test: $(STAMP)
	$(BIN)/python -m pytest -q

ui: $(STAMP)
	bash deployments/ui.sh

# The same, on PostgreSQL (Debian's packages; cluster in runs/postgres, bound to 127.0.0.1).
ui-postgres: $(STAMP)
	bash deployments/postgres.sh ui

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# Rewrite the result tables in README.md and docs/*.md from bench/results/*.json (plain Python, no venv).
docs:
	$(PYTHON) docs/build.py

clean:
	rm -rf runs .pytest_cache
