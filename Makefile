# Two commands a newcomer needs: `make demo` and `make test`. Both bootstrap .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck unit iac bench clean

$(STAMP): pyproject.toml constraints.txt scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check shared functions tests scripts bench
	$(BIN)/ruff format --check shared functions tests scripts bench

# Every function's entry module is called main.py, so each is checked on its own beside the package.
typecheck: $(STAMP)
	$(BIN)/mypy shared/servo
	for fn in functions/*/main.py; do $(BIN)/mypy $$fn || exit 1; done

# tests/infra check infra/ against the provider schema: fetched once into .venv-iac (pinned by hash).
unit: $(STAMP)
	$(BIN)/python scripts/provider_schema.py
	$(BIN)/pytest -n 2 -q

# Offline infrastructure checks: checkov (own venv, .venv-checkov) and terraform fmt.
iac: $(STAMP)
	bash scripts/iac_check.sh

test: lint typecheck unit iac

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-checkov .venv-iac build .pytest_cache .mypy_cache .ruff_cache
