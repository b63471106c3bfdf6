# convtx — the two set-up commands are `make bench` and `make test`; both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.convtx-installed
SUITE ?= default
RUN ?= $(shell ls -1d reports/runs/*/ 2>/dev/null | tail -n 1)
PYTEST_ARGS ?=
BENCH_ARGS ?=
BENCH_AA_ROUNDS ?= 10
BENCH_AA_OUT ?= build/bench-aa
# a variable given on the command line, as one shell word (RUN='z;echo …;#' was once run by the shell)
q = '$(subst ','\'',$(1))'

CONFIGS ?= 500
TUNE_TRIALS_PER_TASK ?= 64
TUNE_BUDGET ?= 90
# the performance gate: rounds of the quick suite, compared with the committed baseline
PERF_ROUNDS ?= 5
# one engine thread: a 2-thread engine on a 2-vCPU VM stalls at every barrier when a vCPU is descheduled
# (docs/perf-gate.md measured both); the reference kernel is single-threaded too
PERF_THREADS ?= 1
PERF_BASELINE ?= reports/baseline
PERF_OUT ?= build/perf
PERF_ARGS ?=
# the count gate (bench --counts) runs this suite; PERF_COUNT_ARGS go to its compare
PERF_COUNT_SUITE ?= gate
PERF_COUNT_ARGS ?=
STUDY_OUT ?= build/perf-study
# TVM RPC on loopback (docs/rpc.md)
RPC_OUT ?= build/rpc-demo
RPC_KILL ?=
RPC_SERVERS ?= 2

.PHONY: all setup setup-tools bench benchmarks benchmarks-aa lint test test-heavy tune report report-check equivalence chaos conformance fuzz clean \
	bench-unpool perf-check perf-baseline perf-study perf-study-time setup-cuda bench-cuda build-cuda rpc-demo decisions test-all

all: test

# The virtual environment is (re)built only when pyproject.toml, the one place where versions are pinned,
# is newer than the stamp: a second `make bench` installs nothing.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,openvino,iree]"
	@touch $(STAMP)

setup: $(STAMP)

bench: $(STAMP)
	$(BIN)/convtx bench --suite $(call q,$(SUITE))

# A GPU machine: the cuda extra, with onnxruntime-gpu replacing the CPU onnxruntime (both provide the module
# `onnxruntime`, so the CPU one is removed and the GPU one reinstalled alone); then the cuda suite, which
# refuses to report timings unless the CUDA cases really ran on the GPU.
setup-cuda: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,openvino,iree,cuda]"
	$(BIN)/python -m pip uninstall --quiet -y onnxruntime onnxruntime-gpu
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall \
		"$$($(BIN)/python -c 'import tomllib; print(next(r for r in tomllib.load(open("pyproject.toml","rb"))["project"]["optional-dependencies"]["cuda"] if r.startswith("onnxruntime-gpu")).replace("[cuda,cudnn]",""))')"

# the unpooling variants and their ConvTranspose forms on every CPU engine (docs/lowerings.md, "Unpooling")
bench-unpool: $(STAMP)
	$(BIN)/convtx bench --suite unpool

bench-cuda: setup-cuda
	$(BIN)/convtx bench --suite cuda --require-gpu

# The TVM default schedule's kernel decisions for this machine (harness/backends/tvm/defaults.py): the default
# suite's TVM cases built on a quiet machine (each kernel without a decision measured alone), then committed beside
# the tuning database (tuning/tvm-<version>/<target>/default_schedule.jsonl), so that a fresh clone on this kind
# of machine measures none of them. Run it after changing schedule.py or defaults.py, whose digest keys them.
DECISIONS_OUT ?= build/decisions
decisions: $(STAMP)
	rm -rf $(call q,$(DECISIONS_OUT))
	$(BIN)/convtx bench --suite default --backends tvm-llvm,tvm-llvm-tuned --profile-runs 0 --no-calibrate \
		--build-dir $(call q,$(DECISIONS_OUT)) --out $(call q,$(DECISIONS_OUT))/run
	$(BIN)/python -m harness.backends.tvm.defaults commit $(call q,$(DECISIONS_OUT)) \
		"$$($(BIN)/python -c 'from harness.measure.machine import usable_cpus; print(usable_cpus())')"

# CUDA artefacts for the zoo without a GPU: TVM libraries, kernel sources, nvcc cubins, IREE modules in build/artifacts
build-cuda: $(STAMP)
	$(BIN)/convtx build cae@32 cae@256 dcgan@64 vae@128 wave1d@8192 fcn8s@256 unet@256 segnet_noidx@256 \
		subpixel@256 dwdecoder@256 vol3d@32 --backends tvm-cuda,iree-cuda --lowerings all --out build/artifacts

# A TVM RPC tracker and two RPC servers on loopback (1 thread each), the quick suite's models through them with
# every lowering TVM runs (compiled here, run and timed on the servers), then all of it stopped, also on failure.
# RPC_KILL=N: kill one busy server (SIGKILL, its whole process group) once N records exist. RPC_SERVERS=N: N servers,
# each pinned to its own CPU (cycling); cases run on all of them at once (docs/rpc.md, "Scale-out").
rpc-demo: $(STAMP)
	rm -rf $(call q,$(RPC_OUT))
	$(BIN)/python -m harness.backends.tvm.rpc_local --servers $(RPC_SERVERS) --pin --key loopback --threads 1 --logs $(call q,$(RPC_OUT))-logs \
		--watch $(call q,$(RPC_OUT)) $(if $(RPC_KILL),--kill-one-after $(RPC_KILL)) -- \
		$(BIN)/convtx bench --suite quick --backends tvm-llvm --lowerings native,explicit_pads,zero_insert,phase,gemm_overlap_add \
		--threads 1 --no-calibrate --rpc-tracker {tracker} --rpc-key loopback --out $(call q,$(RPC_OUT))

# The house's own checks (docs/design.md, "Layers"): the import-linter contracts in pyproject.toml, ruff's lint
# and format check, mypy on harness/core. `make test` runs them first.
lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check harness models tests benchmarks
	$(BIN)/ruff format --check harness models tests benchmarks
	$(BIN)/mypy

# Two tiers (README "Tests"): `make test` runs the first (everything not marked heavy: minutes);
# `make test-heavy` the second (tuning, callgrind end-to-end counting, CUDA builds of the zoo, RPC loops,
# kill -9 chaos, the zoo-wide sweep, fuzzing). A test that needs a tool is marked requires_<tool>; missing,
# it skips with the reason, or fails under CI=true / --require-tools (.ci/run runs both tiers that way).
test: $(STAMP) lint
	$(BIN)/python -m pytest -m "not heavy" $(PYTEST_ARGS)

test-heavy: $(STAMP) setup-tools
	$(BIN)/python -m pytest -m heavy $(PYTEST_ARGS)

# both tiers: the fast one (`make test`) and the heavy one (tuning, valgrind counts, CUDA builds, RPC loops, long
# fuzz, whole-suite sweeps; the `heavy` marker in pyproject.toml); CI runs both
test-all: test test-heavy

# The tools the tests need beyond the venv: valgrind (with its headers) for the counting tests, installed
# when missing; nvcc comes with the CUDA toolkit, which this does not install (a test that needs it says
# "nvcc missing: install the CUDA toolkit").
setup-tools:
	@command -v valgrind >/dev/null && ls /usr/include/valgrind/callgrind.h /usr/local/include/valgrind/callgrind.h 2>/dev/null | grep -q . || \
		{ $$(command -v sudo || true) apt-get update -qq && $$(command -v sudo || true) apt-get install -y -qq valgrind; }
	@command -v nvcc >/dev/null || echo "note: nvcc missing: install the CUDA toolkit (tests marked requires_nvcc need it)"

# The gate suite's cases as pytest-benchmark benchmarks (benchmarks/; docs/perf-gate.md): BENCH_ARGS go to pytest,
# e.g. BENCH_ARGS="--benchmark-autosave" then BENCH_ARGS="--benchmark-compare --benchmark-compare-fail=median:10%"
benchmarks: $(STAMP)
	$(BIN)/python -m pytest benchmarks -p no:cacheprovider $(BENCH_ARGS)

# A/A false alarms of pytest-benchmark's percentage gate: BENCH_AA_ROUNDS rounds of benchmarks/, every pair compared
benchmarks-aa: $(STAMP)
	$(BIN)/python -m harness.perfgate.study pytest-benchmark-aa $(call q,$(BENCH_AA_OUT)) --rounds $(BENCH_AA_ROUNDS) \
		--json $(call q,$(BENCH_AA_OUT))/aa.json

# MetaSchedule-tune the suite's models for this host into tuning/ (commit the result); resumable
# coverage-driven (docs/tuning.md): tasks across the suite's models and lowerings, until no lowering that can
# win has more than 2% of its latency untuned, within TUNE_BUDGET minutes; run it again to resume
tune: $(STAMP)
	$(BIN)/convtx tune --coverage --suite $(call q,$(SUITE)) --trials-per-task $(TUNE_TRIALS_PER_TASK) \
		--budget-minutes $(TUNE_BUDGET)

# The performance-regression gate (docs/perf-gate.md), two checks, both must pass (exit 1 otherwise):
# 1. counts — the gate suite counted under callgrind (bench --counts: estimated cycles, the same however busy
#    the machine is), compared with the committed count baseline of this counter, reports/baseline/callgrind-*;
#    catches a few percent more work (5% by default);
# 2. wall clock — PERF_ROUNDS rounds of the quick suite (fresh worker processes each) compared with this
#    machine's timed baseline at its thresholds.json (100%: what counts cannot see — waiting, stalls,
#    threading — beyond what this VM's drift does on its own); a failure there must repeat in an independent
#    set of rounds (confirmation). Numerical failures fail either check.
# The Markdown summary (a PR comment) is printed and kept in $(PERF_OUT)/summary.md.
perf-check: $(STAMP)
	@start=$$(date +%s); rm -rf $(call q,$(PERF_OUT))/counts $(call q,$(PERF_OUT))/current $(call q,$(PERF_OUT))/confirm; mkdir -p $(call q,$(PERF_OUT)); \
	echo "make perf-check: counting the $(PERF_COUNT_SUITE) suite under callgrind (log: $(call q,$(PERF_OUT))/bench-counts.log)"; \
	$(BIN)/convtx bench --suite $(PERF_COUNT_SUITE) --counts --no-report --threads $(PERF_THREADS) \
		--out $(call q,$(PERF_OUT))/counts > $(call q,$(PERF_OUT))/bench-counts.log 2>&1 || { tail -n 30 $(call q,$(PERF_OUT))/bench-counts.log; exit 2; }; \
	$(BIN)/convtx compare $(call q,$(PERF_BASELINE)) $(call q,$(PERF_OUT))/counts \
		--summary $(call q,$(PERF_OUT))/summary-counts.md --json $(call q,$(PERF_OUT))/compare-counts.json $(PERF_COUNT_ARGS); rc1=$$?; \
	echo "make perf-check: timing $(PERF_ROUNDS) rounds of the quick suite (log: $(call q,$(PERF_OUT))/bench.log)"; \
	$(BIN)/convtx bench --suite quick --no-calibrate --no-report --rounds $(PERF_ROUNDS) --threads $(PERF_THREADS) \
		--out $(call q,$(PERF_OUT))/current > $(call q,$(PERF_OUT))/bench.log 2>&1 || { tail -n 30 $(call q,$(PERF_OUT))/bench.log; exit 2; }; \
	$(BIN)/convtx compare $(call q,$(PERF_BASELINE)) $(call q,$(PERF_OUT))/current \
		--summary $(call q,$(PERF_OUT))/summary-time.md --json $(call q,$(PERF_OUT))/compare.json $(PERF_ARGS); rc2=$$?; \
	if [ $$rc2 = 1 ]; then \
		echo "make perf-check: the first set of rounds failed the wall-clock check; confirming with an independent set"; \
		$(BIN)/convtx bench --suite quick --no-calibrate --no-report --rounds $(PERF_ROUNDS) --threads $(PERF_THREADS) \
			--out $(call q,$(PERF_OUT))/confirm > $(call q,$(PERF_OUT))/bench-confirm.log 2>&1 || { tail -n 30 $(call q,$(PERF_OUT))/bench-confirm.log; exit 2; }; \
		$(BIN)/convtx compare $(call q,$(PERF_BASELINE)) $(call q,$(PERF_OUT))/confirm --confirm $(call q,$(PERF_OUT))/compare.json \
			--summary $(call q,$(PERF_OUT))/summary-time.md --json $(call q,$(PERF_OUT))/compare-confirm.json $(PERF_ARGS); rc2=$$?; \
	fi; \
	cat $(call q,$(PERF_OUT))/summary-counts.md $(call q,$(PERF_OUT))/summary-time.md > $(call q,$(PERF_OUT))/summary.md 2>/dev/null; \
	rc=$$(( rc1 > rc2 ? rc1 : rc2 )); \
	echo "make perf-check: counts $$( [ $$rc1 = 0 ] && echo passed || echo FAILED), wall clock $$( [ $$rc2 = 0 ] && echo passed || echo FAILED);" \
		"$$(( $$(date +%s) - start )) s in all (summary: $(call q,$(PERF_OUT))/summary.md)"; exit $$rc

# Refresh the committed baselines deliberately: this counter's counts ($(PERF_BASELINE)/callgrind-…/) and this kind
# of machine's times ($(PERF_BASELINE)/<machine-slug>/); their thresholds.json files are kept. Review, then commit.
# perf-check takes the baselines of the counter and machine it runs on.
perf-baseline: $(STAMP)
	rm -rf $(call q,$(PERF_OUT))/baseline-new $(call q,$(PERF_OUT))/baseline-counts-new
	$(BIN)/convtx bench --suite $(PERF_COUNT_SUITE) --counts --no-report --threads $(PERF_THREADS) \
		--out $(call q,$(PERF_OUT))/baseline-counts-new
	$(BIN)/convtx bench --suite quick --no-calibrate --no-report --rounds $(PERF_ROUNDS) --threads $(PERF_THREADS) \
		--out $(call q,$(PERF_OUT))/baseline-new
	@dest=$(call q,$(PERF_BASELINE))/$$($(BIN)/python -m harness.perfgate.compare slug $(call q,$(PERF_OUT))/baseline-counts-new); \
	mkdir -p $$dest && rm -f $$dest/run.json $$dest/results.jsonl && \
	mv $(call q,$(PERF_OUT))/baseline-counts-new/run.json $(call q,$(PERF_OUT))/baseline-counts-new/results.jsonl $$dest/ && \
	echo "make perf-baseline: $$dest refreshed (counts)"; \
	dest=$(call q,$(PERF_BASELINE))/$$($(BIN)/python -m harness.perfgate.compare slug $(call q,$(PERF_OUT))/baseline-new); \
	rm -rf $(call q,$(PERF_OUT))/baseline-new/round-*/logs $(call q,$(PERF_OUT))/baseline-new/round-*/.lock $$dest/round-*; \
	mkdir -p $$dest && mv $(call q,$(PERF_OUT))/baseline-new/round-* $$dest/; \
	echo "make perf-baseline: $$dest refreshed (wall clock); review and commit both" \
	"$$(test -f $$dest/thresholds.json || echo '(no thresholds.json there: the 10% default applies; docs/perf-gate.md says how to derive per-case ones)')"

# How good the gate is (docs/perf-gate.md). perf-study: the count gate — 20 A/A count runs of the gate suite and
# 5 each with 10/15/25% more work injected, two collectors side by side (counts do not mind; ~100 min here).
# perf-study-time: the wall-clock check — A/A false alarms and power at injected busy-waits (~65 min).
perf-study: $(STAMP)
	$(BIN)/python -m harness.perfgate.study collect $(call q,$(STUDY_OUT))/counts --counts --suite $(PERF_COUNT_SUITE) --rounds 1 \
		--threads $(PERF_THREADS) --cycles 10 --kinds aa-a,aa-b & \
	$(BIN)/python -m harness.perfgate.study collect $(call q,$(STUDY_OUT))/counts --counts --suite $(PERF_COUNT_SUITE) --rounds 1 \
		--threads $(PERF_THREADS) --cycles 5 --kinds slow10,slow15,slow25; wait
	$(BIN)/python -m harness.perfgate.study analyse $(call q,$(STUDY_OUT))/counts --json $(call q,$(STUDY_OUT))/counts/study.json \
		| tee $(call q,$(STUDY_OUT))/counts/study.md

perf-study-time: $(STAMP)
	$(BIN)/python -m harness.perfgate.study collect $(call q,$(STUDY_OUT))/time --threads $(PERF_THREADS)
	$(BIN)/python -m harness.perfgate.study suggest $(call q,$(STUDY_OUT))/time --cycles 1-5 --json $(call q,$(STUDY_OUT))/time/thresholds-1-5.json
	$(BIN)/python -m harness.perfgate.study analyse $(call q,$(STUDY_OUT))/time --cycles 6-10 --per-case $(call q,$(STUDY_OUT))/time/thresholds-1-5.json \
		--json $(call q,$(STUDY_OUT))/time/study.json | tee $(call q,$(STUDY_OUT))/time/study.md

report: $(STAMP)
	@test -n $(call q,$(RUN)) || { echo "make report: no run found; give RUN=reports/runs/<run-id>" >&2; exit 2; }
	$(BIN)/convtx report $(call q,$(RUN))

# the HTML report as a reader sees it: headless Chromium screenshots in $(RUN)/screenshots/
# (needs Debian's chromium: apt-get install chromium)
report-check: report
	$(BIN)/python -m harness.report.screenshot $(call q,$(RUN))

# ConvTranspose lowerings vs the float64 spec reference on random attribute sets (minutes, not a unit test)
equivalence: $(STAMP)
	$(BIN)/python -m harness.audit.equivalence --configs $(CONFIGS) --out build/equivalence

# kill -9 the quick suite at random moments, resume, and count lost/duplicated records
chaos: $(STAMP)
	$(BIN)/python -m harness.audit.chaos --cycles 20 --out build/chaos

# ONNX node tests (ConvTranspose, DepthToSpace, Col2Im, MaxUnpool, Resize/Upsample) against the ledger
conformance: $(STAMP)
	$(BIN)/convtx conformance --json build/conformance/conformance.json

# differential fuzzing: 2,000 engine cases, divergence classes and reproducers in build/fuzz
fuzz: $(STAMP)
	$(BIN)/convtx fuzz --cases 2000 --out build/fuzz

clean:
	rm -rf build .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
