# The two commands a newcomer needs: `make run` and `make test`; `make bench` measures.
# Each creates .venv and installs taskhook with its pinned ranges when needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# A local first session calls back to 127.0.0.1, so `make run` allows private targets
# unless the variable is set; `taskhook serve` itself keeps them refused.
run: $(STAMP)  ## start taskhook on an embedded PostgreSQL (./.taskhook), for local use
	TASKHOOK_ALLOW_PRIVATE_TARGETS=$${TASKHOOK_ALLOW_PRIVATE_TARGETS:-1} $(BIN)/taskhook serve

test: $(STAMP)  ## lint and type-check, then the whole test suite against a real PostgreSQL
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy --strict taskhook/core
	$(BIN)/pytest

# No subprocess, browser, deploy or slow tests (markers in pyproject.toml): under a minute.
test-fast: $(STAMP)  ## lint, then the in-process tests only, for the edit-test loop
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m "not subprocess and not browser and not deploy and not slow"

bench: $(STAMP)  ## every benchmark scenario but the soak (~30 min; ARGS=--quick: ~10 min)
	$(BIN)/python -m bench.run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .taskhook
