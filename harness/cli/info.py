"""`convtx list`, `export` and `lower`: what the harness knows, and models written out as ONNX."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.cli.args import batches_arg, writable_dir, writable_parent
from harness.core import safefs


def add_list(sub) -> None:
    sp = sub.add_parser("list", help="models, lowerings, backends (available? why not?)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_list)


def add_export(sub) -> None:
    sp = sub.add_parser(
        "export",
        help="export zoo models to ONNX; with --format, a run directory as CSV or pytest-benchmark JSON",
    )
    sp.add_argument(
        "models",
        nargs="*",
        metavar="MODEL|RUN_DIR",
        help="zoo name or name@size (default: all); with --format, one run directory",
    )
    sp.add_argument("--out", default="build/export", help="folder for the ONNX files")
    sp.add_argument(
        "--format",
        choices=("csv", "pytest-benchmark"),
        help="export RUN_DIR's records instead: csv (the DataFrame of harness.load_run) or pytest-benchmark "
        "(the JSON `pytest-benchmark compare` reads)",
    )
    sp.add_argument("-o", "--output", metavar="FILE", help="with --format: the file to write")
    sp.add_argument("--batches")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--build-dir", default="build")
    sp.set_defaults(func=cmd_export)


def add_lower(sub) -> None:
    sp = sub.add_parser("lower", help="rewrite every ConvTranspose of an ONNX file with one lowering")
    sp.add_argument("model", metavar="MODEL.onnx")
    sp.add_argument("--lowering", required=True, help="lowering name (see `convtx list`)")
    sp.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    sp.set_defaults(func=cmd_lower)


def cmd_list(args) -> int:
    import json

    from harness.backends import BACKENDS
    from harness.backends.tvm.tuning import databases
    from harness.core.config import SUITES
    from harness.lowerings import LOWERINGS
    from models import MODELS

    data = {
        "models": [
            {
                "name": s.name,
                "family": s.family,
                "dims": s.dims,
                "sizes": list(s.sizes),
                "description": s.description,
                **({"form_of": s.form_of} if s.form_of else {}),
            }
            for s in MODELS.values()
        ],
        "lowerings": [{"name": lw.name, "description": lw.description} for lw in LOWERINGS.values()],
        "backends": [
            {
                "id": b.id,
                "engine": b.engine,
                "device": b.device,
                "zoo_only": b.zoo_only,
                **(lambda a: {"available": a.available, "reason": a.reason})(b.availability()),
            }
            for b in BACKENDS.values()
        ],
        "tuning_databases": databases(),
        "suites": [
            {
                "name": s.name,
                "models": list(s.models),
                "backends": list(s.backends),
                "lowerings": list(s.lowerings),
                "batches": list(s.batches),
            }
            for s in SUITES.values()
        ],
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print("models:")
    width = max(len(m["name"]) for m in data["models"])
    for m in data["models"]:
        print(
            f"  {m['name']:<{width}} {m['family']:<13} {m['dims']}-D  sizes {','.join(map(str, m['sizes'])):<16} "
            f"{m['description']}"
        )
    print("lowerings:")
    for lw in data["lowerings"]:
        print(f"  {lw['name']:<16} {lw['description']}")
    print("backends:")
    for b in data["backends"]:
        state = (
            (f"available ({b['reason']})" if b["reason"] else "available")
            if b["available"]
            else f"unavailable: {b['reason']}"
        )
        print(f"  {b['id']:<15} {state}")
    print("tuning databases (tvm-llvm-tuned applies the one of this host's target):")
    for d in data["tuning_databases"]:
        cov = (
            f", {d['workloads']} candidate workloads, worst untuned share {d['worst_untuned_share']:.1%}, "
            f"{(d.get('tuning_seconds_total') or 0) / 60:.0f} min tuned"
            if d.get("worst_untuned_share") is not None
            else ""
        )
        print(f"  tvm {d['tvm']:<13} {d['target']:<22} {d['records']} records{cov}")
    print("suites:")
    for s in data["suites"]:
        print(f"  {s['name']:<10} {' '.join(s['models'])} × {','.join(s['backends'])}")
    return 0


def cmd_export(args) -> int:
    if args.format:
        return _export_run(args)
    from harness.core.records import fmt_metric
    from harness.pipeline.export import export_zoo
    from harness.pipeline.sweep import zoo_ref
    from models import MODELS, get_model

    refs = [zoo_ref(m) for m in (args.models or list(MODELS))]
    out = writable_dir(Path(args.out), "output directory")
    for ref in refs:
        for batch in batches_arg(args.batches) or [1]:
            exp = export_zoo(get_model(ref.name), ref.size, batch, args.seed, Path(args.build_dir) / "onnx")
            dest = out / f"{ref.name}-{ref.size}-b{batch}.onnx"
            safefs.write_atomic(dest, Path(exp.path).read_bytes())
            print(f"{dest}  [kept: {exp.exporter}, opset {exp.opset}]")
            for name, r in exp.exporters.items():
                err = f" rel_l2 {fmt_metric(r['rel_l2'], '.1e')} vs PyTorch float64" if "rel_l2" in r else ""
                why = f" — {r['reason']}" if r.get("reason") else ""
                print(f"    {name:<12} {r['status']}{err}{why}")
    return 0


def _export_run(args) -> int:
    from harness.core.errors import ConvtxError
    from harness.report.export import export_run

    if len(args.models) != 1 or not args.output:
        raise ConvtxError("export --format FORMAT takes one RUN_DIR and -o FILE")
    out = Path(args.output)
    writable_parent(out)
    path, n = export_run(args.models[0], args.format, out)
    print(f"{path}: {n} {'rows' if args.format == 'csv' else 'benchmarks'} ({args.format})")
    return 0


def cmd_lower(args) -> int:
    import onnx

    from harness.core.onnx_io import load_model
    from harness.lowerings import get_lowering

    lowering = get_lowering(args.lowering)
    model = load_model(args.model)
    out = Path(args.output)
    writable_parent(out)
    try:
        result = lowering.apply(model)
        onnx.checker.check_model(result.model)
    except Exception as e:  # noqa: BLE001 — a lowering bug must not pass as a usable model
        print(f"convtx: lowering {lowering.name} failed on {args.model}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    safefs.refuse_link(out)
    tmp = safefs.private_tmp(out)
    onnx.save_model(result.model, str(tmp))
    safefs.replace(tmp, out)
    s = result.summary()
    print(
        f"{out}: {lowering.name}: {s['lowered']} of {s['convtranspose_nodes']} ConvTranspose nodes lowered"
        + ("" if s["convtranspose_nodes"] else " (the model has no ConvTranspose: unchanged)")
    )
    for d in s["declined"]:
        print(f"  declined {d['node']}: {d['reason']} (left native)")
    return 0
