# convtx — the two set-up commands are `make bench` and `make test`; both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.convtx-installed
SUITE ?= default
RUN ?= $(shell ls -1d reports/runs/*/ 2>/dev/null | tail -n 1)
PYTEST_ARGS ?=

CONFIGS ?= 500
TUNE_LOWERINGS ?= phase
TUNE_TRIALS ?= 128
TUNE_BUDGET ?= 60

.PHONY: all setup bench test tune report report-check equivalence chaos conformance fuzz clean

all: test

# The virtual environment is (re)built only when pyproject.toml, the one place where versions are pinned,
# is newer than the stamp: a second `make bench` installs nothing.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,openvino]"
	@touch $(STAMP)

setup: $(STAMP)

bench: $(STAMP)
	$(BIN)/convtx bench --suite $(SUITE)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# MetaSchedule-tune the suite's models for this host into tuning/ (commit the result); resumable
tune: $(STAMP)
	$(BIN)/convtx tune --suite $(SUITE) --lowerings $(TUNE_LOWERINGS) --trials $(TUNE_TRIALS) \
		--budget-minutes $(TUNE_BUDGET)

report: $(STAMP)
	@test -n "$(RUN)" || { echo "make report: no run found; give RUN=reports/runs/<run-id>" >&2; exit 2; }
	$(BIN)/convtx report $(RUN)

# the HTML report as a reader sees it: headless Chromium screenshots in $(RUN)/screenshots/
# (needs Debian's chromium: apt-get install chromium)
report-check: report
	$(BIN)/python -m harness.report.screenshot $(RUN)

# ConvTranspose lowerings vs the float64 spec reference on random attribute sets (minutes, not a unit test)
equivalence: $(STAMP)
	$(BIN)/python -m harness.equivalence --configs $(CONFIGS) --out build/equivalence

# kill -9 the quick suite at random moments, resume, and count lost/duplicated records
chaos: $(STAMP)
	$(BIN)/python -m harness.chaos --cycles 20 --out build/chaos

# ONNX node tests (ConvTranspose, DepthToSpace, Col2Im, MaxUnpool, Resize/Upsample) against the ledger
conformance: $(STAMP)
	$(BIN)/convtx conformance --json build/conformance/conformance.json

# differential fuzzing: 2,000 engine cases, divergence classes and reproducers in build/fuzz
fuzz: $(STAMP)
	$(BIN)/convtx fuzz --cases 2000 --out build/fuzz

clean:
	rm -rf build .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
