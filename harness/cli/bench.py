"""`convtx bench`, `report` and `compare`: time a suite into a run directory, report it, gate on it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from harness.cli.args import (
    add_run_options,
    backends_arg,
    batches_arg,
    csv_list,
    lowerings_arg,
    run_config,
    writable_dir,
    writable_parent,
)
from harness.core import safefs
from harness.core.errors import ConvtxError

# what a resumed run takes from its run.json, so the command line may not say it
_PLAN_FLAGS = (
    "models",
    "backends",
    "lowerings",
    "batches",
    "shape",
    "out",
    "threads",
    "inject_slowdown",
    "cuda_arch",
    "no_tf32",
)  # --rpc-tracker/--rpc-key are allowed, and required to repeat run.json's (docs/security.md)


def add_compare(sub) -> None:
    sp = sub.add_parser(
        "compare",
        help="the performance-regression gate: exit 1 when CURRENT regressed against "
        "BASELINE (slower beyond the threshold and significantly, or numerically broken)",
    )
    sp.add_argument(
        "baseline",
        metavar="BASELINE_RUN",
        help="run directory, a directory of round-* runs, or a "
        "directory of per-machine baselines (<machine-slug>/round-*; the current machine's is taken)",
    )
    sp.add_argument("current", metavar="CURRENT_RUN", help="run directory, or a directory of round-* runs")
    sp.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="PCT",
        help="slowdown (percent) a case must exceed to regress (default: the per-case file's "
        "default_pct, else 10; for counts, its 'counts' section's, else 5)",
    )
    sp.add_argument(
        "--per-case",
        metavar="FILE",
        help='JSON {"default_pct": PCT, "cases": {"<case-id glob>": PCT}, "ratio": {…}}: per-case '
        "thresholds (default: the baseline's thresholds.json, when it has one)",
    )
    sp.add_argument(
        "--mode",
        choices=("auto", "absolute", "ratio", "counts"),
        default="auto",
        help="compare latencies (absolute) or latencies over the interleaved reference kernel (ratio); "
        "auto: absolute on the same kind of machine, ratio otherwise; count runs (bench --counts) "
        "are always compared as counts",
    )
    sp.add_argument(
        "--confirm",
        metavar="COMPARE_JSON",
        help="the --json of an earlier comparison with an independent set of rounds: a regression "
        "fails the gate only if that one found it too (make perf-check's confirmation run)",
    )
    sp.add_argument("--summary", metavar="FILE", help="also write the Markdown summary here (a PR comment)")
    sp.add_argument("--json", metavar="FILE", help="also write every case's numbers and verdict as JSON")
    sp.set_defaults(func=cmd_compare)


def add_bench(sub) -> None:
    sp = sub.add_parser("bench", help="run a suite: validate and time every case, write a run directory")
    sp.add_argument("--suite", default="default", help="quick | default | full | layers")
    sp.add_argument("--models", help="comma-separated zoo refs (name@size) or .onnx paths")
    sp.add_argument("--out", metavar="RUN_DIR", help="run directory (default reports/runs/<run-id>)")
    sp.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run: only cases with no record")
    sp.add_argument(
        "--no-calibrate",
        action="store_true",
        help="skip measuring the machine's fp32 peak and bandwidth (reports then give no %% of peak)",
    )
    sp.add_argument("--no-report", action="store_true", help="write results only (no report.md/html, plots)")
    sp.add_argument(
        "--require-gpu",
        action="store_true",
        help="refuse to run without a CUDA GPU, and to report timings unless every CUDA case ran on it",
    )
    sp.add_argument(
        "--rounds",
        type=int,
        default=1,
        metavar="R",
        help="R complete runs, each with fresh worker processes, in OUT/round-01 … (default 1); "
        "what `convtx compare` and `make perf-check` use",
    )
    sp.add_argument(
        "--inject-slowdown",
        action="append",
        metavar="PCT[@CASE_GLOB]",
        help="TEST ONLY, to measure the performance gate's power: matching cases busy-wait PCT%% of "
        "their own duration in every timed call (with --counts: a fixed loop adding PCT%% of "
        "the case's estimated cycles; recorded in each record)",
    )
    sp.add_argument(
        "--counts",
        action="store_true",
        help="count each CPU case's calls with valgrind's callgrind (estimated cycles, instructions) "
        "instead of timing them: the same on a busy machine; what `make perf-check` gates on "
        "(docs/perf-gate.md)",
    )
    sp.add_argument(
        "--profile-runs",
        type=int,
        default=None,
        metavar="N",
        help="per-layer profiles from each engine's own profiler over N inferences of every verified case "
        "(default: the suite's, 10 for `default`, else 0 = none); the report's 'Where the time goes'",
    )
    add_run_options(sp)
    sp.set_defaults(func=cmd_bench)


def add_report(sub) -> None:
    sp = sub.add_parser("report", help="(re)generate report.md from a run directory")
    sp.add_argument("run_dir", metavar="RUN_DIR")
    sp.set_defaults(func=cmd_report)


def _plan(args):
    """The suite, the plan (the suite's, but for what the flags name) and the RunConfig of `bench`."""
    from harness.core.config import get_suite
    from harness.core.onnx_io import parse_shape_overrides
    from harness.pipeline.sweep import Plan, model_ref

    suite = get_suite(args.suite)
    overrides = parse_shape_overrides(args.shape)
    refs = tuple(model_ref(m, overrides) for m in (csv_list(args.models) or list(suite.models)))
    plan = Plan(
        refs,
        tuple(lowerings_arg(args.lowerings, list(suite.lowerings))),
        tuple(backends_arg(args.backends, list(suite.backends))),
        tuple(batches_arg(args.batches) or suite.batches),
    )
    runs = suite.profile_runs if args.profile_runs is None else args.profile_runs
    if runs < 0:
        raise ConvtxError(f"--profile-runs {runs}: expected 0 (no profiles) or a positive number of inferences")
    cfg = run_config(args, timing=suite.timing, profile_runs=runs)
    if not suite.build_without_gpu and not args.backends:  # engines named on the command line: built as asked
        cfg = replace(cfg, build_without_gpu=False)
    return suite, plan, cfg


def _write_report(run_dir: Path) -> Path:
    from harness.report import write_report

    return write_report(run_dir)


def cmd_bench(args) -> int:
    """A run directory; with --rounds R, R complete runs of the same plan in OUT/round-01 …
    (harness/pipeline/bench.py)."""
    from harness.pipeline.bench import BenchOptions, resume_bench, run_bench

    if args.rounds < 1:
        raise ConvtxError(f"--rounds {args.rounds}: expected a positive integer")
    if args.require_gpu:
        from harness.measure.cuda import probe

        if not probe().runnable:
            raise ConvtxError(
                f"--require-gpu: no CUDA GPU to run on here ({probe().reason}); `make bench-cuda` is for a GPU machine"
            )
    if args.resume and args.rounds > 1:
        raise ConvtxError(
            "--resume takes one run directory; with --rounds, resume an unfinished "
            "OUT/round-NN directory itself (or run the rounds again)"
        )
    if args.resume:
        clash = [f for f in _PLAN_FLAGS if getattr(args, f)]
        if clash or args.suite != "default":
            raise ConvtxError(
                f"--resume takes the plan from {args.resume}/run.json; drop "
                f"{', '.join('--' + f.replace('_', '-') for f in clash or ['suite'])}"
            )
    else:
        suite, plan, cfg = _plan(args)
    build = writable_dir(Path(args.build_dir), "build directory")
    opts = BenchOptions(
        calibrate=not args.no_calibrate, require_gpu=args.require_gpu, report=None if args.no_report else _write_report
    )
    if args.resume:
        res = resume_bench(Path(args.resume), build, opts, rpc=(args.rpc_tracker, args.rpc_key))
    else:
        res = run_bench(suite.name, plan, cfg, Path(args.out) if args.out else None, build, args.rounds, opts)
    if args.rounds > 1 or res.status == 0:  # rounds: their directory, whatever each round said
        print(res.report or res.path)
    return res.status


def cmd_report(args) -> int:
    print(_write_report(Path(args.run_dir)))
    return 0


def cmd_compare(args) -> int:
    import json

    from harness.perfgate.compare import gate, render_markdown

    if args.threshold is not None and not 0 < args.threshold < 1000:
        raise ConvtxError(f"--threshold {args.threshold}: expected a percentage in (0, 1000)")
    comp = gate(args.baseline, args.current, args.mode, args.threshold, args.per_case, args.confirm)
    text = render_markdown(comp)
    for path, content in ((args.summary, text + "\n"), (args.json, json.dumps(comp.to_json(), indent=1) + "\n")):
        if path:
            out = Path(path)
            writable_parent(out)
            safefs.write_atomic(out, content)
    print(text)
    return 1 if comp.failed else 0
