# Two commands do all the set-up:  `make demo`  and  `make test`  (`make slow`: the long runs).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test slow lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hs-sync demo

# 2 workers (the CI machine's cores); whole files per worker, so a module's fixtures
# (a synced warehouse, a wheel, an S3 server) are built once.
test: $(STAMP)
	$(BIN)/ruff check hs_sync hs_simulator dagster_project tests benchmarks
	$(BIN)/ruff format --check hs_sync hs_simulator dagster_project tests benchmarks
	$(BIN)/pytest -q -n 2 --dist loadfile; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

# The long chaos, soak and fuzz runs (tests marked slow), which `make test` leaves out.
slow: $(STAMP)
	$(BIN)/pytest -q -m slow; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) warehouse/raw warehouse/parquet warehouse/media warehouse/state warehouse/quarantine warehouse/*.duckdb*
