# CLUE: one entry point.  `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PG_HOST ?= 127.0.0.1
PG_PORT ?= 5432
PYTEST_ARGS ?=
# Two workers (this machine has two cores); each gets its own PostgreSQL database.
PYTEST_WORKERS ?= 2

.PHONY: help install run demo test lint bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)  ## create .venv and install CLUE with its dev tools

run: $(STAMP)  ## start the server on 127.0.0.1:8080 (SQLite, dev keys made on first run)
	$(BIN)/clue-server init
	$(BIN)/gunicorn -c clue_server/gunicorn.conf.py clue_server.wsgi:app

demo: $(STAMP)  ## two members, one reports, the other looks up (own temporary server)
	$(BIN)/clue-server demo

test: $(STAMP)  ## run the tests (on SQLite, and on PostgreSQL when it answers)
	@url="$$CLUE_TEST_DATABASE_URL"; \
	if [ -z "$$url" ]; then url=$$($(BIN)/python -m tests.pgdb $(PG_HOST) $(PG_PORT)); fi; \
	if [ -n "$$url" ]; then echo "PostgreSQL tests on $$url"; else echo "PostgreSQL not answering: SQLite only"; fi; \
	CLUE_TEST_DATABASE_URL="$$url" $(BIN)/pytest -n $(PYTEST_WORKERS) --durations=10 $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff on everything, mypy on keys and clue_client
	$(BIN)/ruff check .
	$(BIN)/mypy keys clue_client

bench: $(STAMP)  ## lookup/registration throughput against gunicorn + PostgreSQL
	$(BIN)/python bench/lookup.py

clean:  ## remove the venv and local state (keys and databases under var/)
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
