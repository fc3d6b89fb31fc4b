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

# The console's message catalogues: .po in git, .mo compiled here (git-ignored).
PO_FILES := $(wildcard clue_server/console/translations/*/LC_MESSAGES/messages.po)
MO_FILES := $(PO_FILES:.po=.mo)

.PHONY: help install run demo test lint bench clean messages

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(STAMP) $(MO_FILES)  ## create .venv and install CLUE with its dev tools

%.mo: %.po $(STAMP)
	$(BIN)/pybabel compile --statistics -i $< -o $@

messages: $(STAMP)  ## re-extract the console's messages and merge them into the .po files
	$(BIN)/pybabel extract -F clue_server/console/babel.cfg --no-location --sort-output \
		-o clue_server/console/translations/messages.pot clue_server/console
	$(BIN)/pybabel update --no-fuzzy-matching -i clue_server/console/translations/messages.pot \
		-d clue_server/console/translations

run: $(STAMP) $(MO_FILES)  ## start the server on 127.0.0.1:8080 (SQLite, dev keys made on first run)
	$(BIN)/clue-server init
	$(BIN)/gunicorn -c clue_server/gunicorn.conf.py clue_server.wsgi:app

demo: $(STAMP) $(MO_FILES)  ## two members, one reports, the other looks up (own temporary server)
	$(BIN)/clue-server demo

test: $(STAMP) $(MO_FILES)  ## run the tests (on SQLite, and on PostgreSQL when it answers)
	@url="$$CLUE_TEST_DATABASE_URL"; \
	if [ -z "$$url" ]; then url=$$($(BIN)/python -m tests.pgdb $(PG_HOST) $(PG_PORT)); fi; \
	if [ -n "$$url" ]; then echo "PostgreSQL tests on $$url"; else echo "PostgreSQL not answering: SQLite only"; fi; \
	CLUE_TEST_DATABASE_URL="$$url" $(BIN)/pytest -n $(PYTEST_WORKERS) --durations=10 $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff on everything, mypy on keys and clue_client
	$(BIN)/ruff check .
	$(BIN)/mypy keys clue_client

bench: $(STAMP)  ## hot path beside the stack's floor, gunicorn on PostgreSQL/Redis/SQLite (needs wrk; see bench/README.md)
	@command -v wrk >/dev/null || { echo "bench needs wrk: apt-get install wrk" >&2; exit 1; }
	$(BIN)/python bench/hotpath.py

clean:  ## remove the venv and local state (keys and databases under var/)
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
