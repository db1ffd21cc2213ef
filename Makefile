# omneo-bulk — every target installs what it needs into .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
AS_OF ?= 2026-11-22T09:00:00+11:00
# Test processes: one per core (the suite spends much of its time in subprocesses and waits).
TEST_WORKERS ?= auto

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,spark]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with its test tools and the Spark extra

run: $(STAMP) ## Run the whole pipeline on sample_data/ into runs/sample/
	$(BIN)/omneo-bulk run --input sample_data --campaigns sample_data/campaigns.toml --out runs/sample --as-of "$(AS_OF)"

test: $(STAMP) browser java ## Run the test suite (installs Chromium and Java for their tests when missing)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not spark"
	$(MAKE) --no-print-directory test-spark

# The Spark tests share one Spark session (a JVM that takes seconds to start) per pytest
# process, so they run in one process of their own: xdist's `--dist loadgroup` would keep
# them on one worker, but with pytest 9.2 it silently stops grouping (pytest-xdist#1386).
test-spark: $(STAMP) java ## Run only the Spark engine's tests (one Spark session, local mode)
	$(BIN)/python -m pytest -m spark tests/spark

# The report test opens report.html in Debian's Chromium; Playwright drives that binary and
# never downloads a browser of its own.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser: ## Install Debian's chromium when it is missing (needs root or sudo)
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for tests/test_report_browser.py"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# The Spark engine's tests need Java 17; PySpark itself comes from PyPI with the `spark` extra.
java: ## Install Debian's Java 17 runtime when java is missing (needs root or sudo)
	@command -v java >/dev/null 2>&1 || { \
	  echo "installing Debian's openjdk-17-jre-headless for the Spark tests (tests/spark/)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

# What the benchmarks time: the package as a user installs it (no extras), editable so it is
# this tree. .venv also holds the spark extra, whose pandas makes every command start 0.65 s
# slower (pandera then imports pandas and probes pyspark.pandas); see benchmarks/_results.py.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e .
	touch $(BENCH_STAMP)

bench: export OMNEO_BULK = $(CURDIR)/$(BENCH_VENV)/bin/omneo-bulk
bench: $(STAMP) $(BENCH_STAMP) java ## Run the benchmarks (tens of minutes) and record figures in benchmarks/RESULTS.md
	$(BIN)/python benchmarks/bench_validate.py --rows 1000000
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_jsonlogic.py
	$(BIN)/python benchmarks/bench_jsonlogic_compile.py
	$(BIN)/python benchmarks/bench_issue.py --profiles 1000000
	$(BIN)/python benchmarks/bench_issue.py --profiles 10000000
	$(BIN)/python benchmarks/bench_issue.py --profiles 10000000 --memory-limit 5GB
	$(BIN)/python benchmarks/bench_reconcile.py --benefits 5000000
	$(BIN)/python benchmarks/bench_reconcile.py --benefits 5000000 --memory-limit 4GB
	$(BIN)/python benchmarks/bench_run.py --profiles 1000000 --repeat 3
	$(BIN)/python benchmarks/bench_run.py --profiles 10000000 --repeat 3
	$(BIN)/python benchmarks/bench_run.py --profiles 10000000 --memory-limit 4GB
	$(BIN)/python benchmarks/bench_run.py --profiles 10000000 --memory-limit 12GB
	$(BIN)/python benchmarks/bench_limit.py --profiles 1000000 --repeat 3
	$(BIN)/python benchmarks/bench_limit.py --profiles 10000000 --repeat 2
	$(BIN)/python benchmarks/bench_limit.py --profiles 10000000 --repeat 1 --memory-limit 4GB
	$(MAKE) --no-print-directory bench-spark

# The Spark engine beside the default one, both from .venv (the install with the spark extra).
bench-spark: $(STAMP) java ## Benchmark --engine spark at 1M profiles on local[2] with 1, 2 and 8 shards
	OMNEO_BULK=$(CURDIR)/$(BIN)/omneo-bulk $(BIN)/python benchmarks/bench_spark.py --profiles 1000000 --shards 1 2 8

clean: ## Remove run outputs and the virtual environment
	rm -rf runs $(VENV) $(BENCH_VENV) .pytest_cache *.egg-info

.PHONY: help install run test test-spark browser java bench bench-spark clean
