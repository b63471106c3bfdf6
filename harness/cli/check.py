"""`convtx validate`, `conformance` and `fuzz`: is each engine right, on a model, on the ONNX node tests and
on random ConvTranspose models."""

from __future__ import annotations

from pathlib import Path

from harness.cli.args import (
    add_run_options,
    backends_arg,
    batches_arg,
    lowerings_arg,
    run_config,
    writable_dir,
    writable_parent,
)
from harness.core import safefs
from harness.core.errors import ConvtxError


def add_validate(sub) -> None:
    sp = sub.add_parser("validate", help="check one model on every backend against the float64 reference")
    sp.add_argument("model", metavar="MODEL", help="zoo name (name@size) or path to an .onnx file")
    sp.add_argument("--json", metavar="FILE", help="write the records as a JSON array")
    sp.add_argument(
        "--no-localise", action="store_true", help="do not search for the first divergent node of a mismatching case"
    )
    add_run_options(sp)
    sp.set_defaults(func=cmd_validate)


def add_conformance(sub) -> None:
    sp = sub.add_parser("conformance", help="ONNX node tests of ConvTranspose and upsampling ops, every engine")
    sp.add_argument("--backends", help="comma-separated backend ids, or 'all' (default: every ONNX backend)")
    sp.add_argument("--lowerings", help="lowerings for the ConvTranspose tests (default: all)")
    sp.add_argument("--json", metavar="FILE", help="write the summary and every outcome as JSON")
    sp.add_argument("--out", default="build/conformance", help="test models, logs, conformance.md")
    sp.add_argument("--threads", type=int, default=None)
    sp.add_argument("--build-dir", default="build")
    sp.set_defaults(func=cmd_conformance)


def add_fuzz(sub) -> None:
    sp = sub.add_parser("fuzz", help="random ConvTranspose models vs the spec: divergence classes + reproducers")
    sp.add_argument("--cases", type=int, default=2000, help="engine cases: models x backends x lowerings")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--backends", help="comma-separated ONNX backend ids (default: all of them)")
    sp.add_argument("--lowerings", help="comma-separated lowerings (default: native,explicit_pads)")
    sp.add_argument("--out", default="build/fuzz", help="summary.json, summary.md, reproducers")
    sp.add_argument("--shrink-budget", type=int, default=40, help="engine runs to shrink each new class")
    sp.add_argument("--build-dir", default="build")
    sp.set_defaults(func=cmd_fuzz)


def cmd_validate(args) -> int:
    import json

    from harness.audit.localise import localise_record
    from harness.backends import BACKENDS
    from harness.core.onnx_io import parse_shape_overrides
    from harness.core.records import fmt_metric
    from harness.pipeline.bench import run_validate
    from harness.pipeline.sweep import Plan, model_ref

    overrides = parse_shape_overrides(args.shape)
    ref = model_ref(args.model, overrides)
    plan = Plan(
        (ref,),
        tuple(lowerings_arg(args.lowerings, ["native"])),
        tuple(backends_arg(args.backends, [b for b in BACKENDS if BACKENDS[b].file_default])),
        tuple(batches_arg(args.batches) or [1]),
    )
    if args.json:
        json_path = Path(args.json)
        writable_parent(json_path)
    cfg = run_config(args, timing=None)
    build = Path(args.build_dir)
    records = run_validate(plan, cfg, build)
    records = [
        localise_record(r, ref, cfg, build) if r.status == "mismatch" and not args.no_localise else r for r in records
    ]
    if args.json:
        safefs.write_atomic(json_path, json.dumps([r.to_json() for r in records], indent=2) + "\n")
    from harness.pipeline.sanitize import summary

    sanitation = next((r.details["sanitation"] for r in records if r.details.get("sanitation")), None)
    if sanitation:
        print(f"sanitation: {summary(sanitation)}")
    print(f"{'case':<44} {'status':<9} {'rel_l2':>9} {'max_abs':>9}  reason")
    for r in records:
        n = r.numerics
        print(
            f"{r.case_id:<44} {r.status:<9} {fmt_metric(n.rel_l2 if n else None):>9} "
            f"{fmt_metric(n.max_abs if n else None):>9}  {r.reason}"
        )
        if "localisation" in r.details:
            print(f"    localised: {r.details['localisation']['summary']}")
    failed = [r for r in records if r.status in ("mismatch", "error")]
    return 1 if failed else 0


def cmd_conformance(args) -> int:
    from harness.audit import conformance
    from harness.backends import BACKENDS
    from harness.lowerings import LOWERINGS

    file_backends = [b for b in BACKENDS if not BACKENDS[b].zoo_only and BACKENDS[b].file_default]
    backends = backends_arg(args.backends, file_backends)
    lowerings = lowerings_arg(args.lowerings, list(LOWERINGS))
    out = writable_dir(Path(args.out), "output directory")
    if args.json:
        writable_parent(Path(args.json))
    build = writable_dir(Path(args.build_dir), "build directory")
    outcomes = conformance.run(backends, out, build, tuple(lowerings), threads=args.threads or 1)
    summary = conformance.summarise(outcomes, ratchet=set(lowerings) == set(LOWERINGS))
    conformance.write(summary, Path(args.json) if args.json else None, out / "conformance.md")
    print(conformance.render(summary))
    return 0 if summary["ok"] else 1


def cmd_fuzz(args) -> int:
    from harness.audit.fuzz import render, run_fuzz
    from harness.backends import BACKENDS

    backends = backends_arg(
        args.backends, [b for b in BACKENDS if not BACKENDS[b].zoo_only and BACKENDS[b].file_default]
    )
    zoo_only = [b for b in backends if BACKENDS[b].zoo_only]
    if zoo_only:
        raise ConvtxError(f"--backends {','.join(zoo_only)}: runs zoo models only; fuzz needs ONNX backends")
    unavailable = [f"{b} ({BACKENDS[b].availability().reason})" for b in backends if not BACKENDS[b].availability()]
    if unavailable:
        raise ConvtxError(f"--backends: unavailable here: {'; '.join(unavailable)}")
    lowerings = lowerings_arg(args.lowerings, ["native", "explicit_pads"])
    if args.cases < 1:
        raise ConvtxError(f"--cases {args.cases}: expected a positive integer")
    out = writable_dir(Path(args.out), "output directory")
    summary = run_fuzz(
        args.cases,
        args.seed,
        backends,
        lowerings,
        out,
        writable_dir(Path(args.build_dir), "build directory"),
        args.shrink_budget,
    )
    print(render(summary))
    return 1 if summary["unexplained"] else 0
