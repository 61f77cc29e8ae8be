PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-history test lint bench serve clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/coachloop demo

# Eight simulated weeks, kept in demo-history.db, with the report as HTML and CSV beside it.
demo-history: $(STAMP)
	rm -f demo-history.db
	$(BIN)/coachloop demo --weeks 8 --db demo-history.db
	DATABASE_URL=sqlite:///demo-history.db $(BIN)/coachloop report --format html --out demo-history.html
	DATABASE_URL=sqlite:///demo-history.db $(BIN)/coachloop report --format csv --by week --out demo-history.csv

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2

bench: $(STAMP)
	PYTHONPATH=. $(BIN)/python -m bench.suite $(BENCH)
	PYTHONPATH=. $(BIN)/python bench/intake_writer.py $(BENCH)
	PYTHONPATH=. $(BIN)/python bench/import_backfill.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache test-artifacts
