# Two commands do everything:  `make run` (serve on 127.0.0.1:8000)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install run migrate migration test test-fast soak bench bench-smoke screenshots lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## Apply migrations to AGENT_RUNTIME__DB_URL (default sqlite:///data/agent_runtime.db), then serve.
run: install migrate
	$(PY) -m agent_runtime

## Apply pending migrations to AGENT_RUNTIME__DB_URL (under the migration lock).
migrate: install
	$(VENV)/bin/agent-runtime migrate

## Generate the next migration for SQLite and PostgreSQL: make migration name=add_something
migration: install
	@test -n "$(name)" || (echo "usage: make migration name=<migration_name>" && exit 2)
	$(VENV)/bin/agent-runtime makemigrations $(name)

## The whole test suite, in parallel (PostgreSQL tests are skipped, with the reason, if no
## server is reachable). TEST_WORKERS: pytest-xdist workers (docs/testing.md).
TEST_WORKERS ?= 3
test: install
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

## The loop after every change: SQLite only, no server process, browser or reliability test.
FAST_WORKERS ?= 3
test-fast: install
	AGENT_RUNTIME_TEST_BACKENDS=sqlite $(PY) -m pytest -n $(FAST_WORKERS) --timeout 60 \
		-m "not (uvicorn or browser or reliability or soak or postgres)" $(PYTEST_ARGS)

## Reliability tests in their soak form: 60 s of load per load test (CI runs a short form).
soak: install
	AGENT_RUNTIME_SOAK_SECONDS=60 $(PY) -m pytest tests/reliability

## Benchmarks: ours vs the legacy SQLAlchemy design vs hand-written SQL, SQLite and PostgreSQL.
bench: install
	$(PY) -m benchmarks $(BENCH_ARGS)

bench-smoke: install
	$(PY) -m benchmarks --smoke $(BENCH_ARGS)

## The console's screenshots in docs/screenshots (a demo database, headless Chromium).
screenshots: install
	$(PY) -m scripts.make_screenshots  # Chromium as the console's browser tests start it

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/agent-runtime makemigrations --check

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
