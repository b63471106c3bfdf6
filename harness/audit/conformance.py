"""ONNX backend node tests for ConvTranspose and the upsampling ops the zoo and the lowerings use, run
through every available backend and judged against the tests' expected outputs.

The onnx wheel ships no node-test data, so the cases are generated from the definitions it does ship
(`onnx.backend.test.case.node`). Each case runs isolated in a worker, like any sweep case. Outcomes are
judged against a known-failure ledger (case -> reason) applied strictly: a listed failure that passes is
an unexpected pass (the ledger is stale), an unlisted failure is a new failure, and the number passing
per backend must not drop below its recorded minimum (a ratchet).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.core import safefs

OPS = ("ConvTranspose", "DepthToSpace", "Col2Im", "MaxUnpool", "Resize", "Upsample")


@dataclass(frozen=True)
class Expectation:
    """Cases (fnmatch pattern on `<test>.<variant>[/<lowering>]`) that fail on `backend`, and why."""

    backend: str
    pattern: str
    reason: str


# Every entry was observed on this machine and explained (see docs/conformance.md).
LEDGER: tuple[Expectation, ...] = (
    Expectation("tvm-llvm", "test_col2im*", "TVM 0.27's ONNX frontend has no Col2Im converter"),
    Expectation("tvm-llvm", "*/gemm_col2im", "TVM 0.27's ONNX frontend has no Col2Im converter"),
    *(
        Expectation(
            "tvm-llvm",
            f"test_convtranspose_output_shape.{v}",
            "TVM 0.27 ignores ConvTranspose output_shape (native only: every lowering fixes it); "
            "docs/upstream/tvm_output_shape.py",
        )
        for v in ("as_given", "const")
    ),
    Expectation(
        "ort-cpu",
        "test_maxunpool_export_with_output_shape.*",
        "with output_shape 5x5, onnxruntime reads the MaxPool indices in the 5x5 output frame; the "
        "ONNX test expects them in the default 4x4 frame, zero-padded: the spec text does not say which",
    ),
    Expectation(
        "tvm-llvm",
        "test_maxunpool_export_with_output_shape.*",
        "TVM's MaxUnpool converter crashes on the output_shape input ('tolist' of a Relax Var/Const)",
    ),
    Expectation(
        "tvm-llvm",
        "test_resize_upsample_*.as_given",
        "TVM's Resize converter needs scales/sizes as constants; run-time scales are refused",
    ),
    Expectation(
        "tvm-llvm",
        "test_resize_upsample_scales_linear_half_pixel_symmetric.const",
        "TVM does not implement coordinate_transformation_mode half_pixel_symmetric (opset 19)",
    ),
    Expectation(
        "tvm-llvm",
        "test_resize_upsample_*_axes_*.const",
        "TVM's Resize converter ignores the `axes` attribute (opset 18)",
    ),
    Expectation(
        "tvm-llvm",
        "test_resize_upsample_sizes_nearest_not_*.const",
        "TVM's Resize converter does not implement keep_aspect_ratio_policy (opset 18)",
    ),
    Expectation(
        "tvm-llvm",
        "test_upsample_nearest.*",
        "TVM's converter for the deprecated Upsample op fails on this opset-9 model (TypeError)",
    ),
    Expectation(
        "openvino-cpu",
        "test_col2im_5d.*",
        "OpenVINO 2026.4's Col2Im is 2-D only ('output_size must be a 1D input of shape [2]')",
    ),
    Expectation(
        "openvino-cpu",
        "test_convtranspose_3d.*/gemm_col2im",
        "OpenVINO 2026.4's Col2Im is 2-D only: the gemm_col2im lowering of a 3-D ConvTranspose",
    ),
    Expectation("openvino-cpu", "test_maxunpool_*", "OpenVINO 2026.4's ONNX frontend has no MaxUnpool conversion rule"),
    Expectation(
        "openvino-cpu",
        "test_resize_upsample_scales_cubic_A_n0p5_exclude_outside.*",
        "OpenVINO's cubic Resize with exclude_outside=1 renormalises differently: rel_l2 5.8e-3, "
        "worst 16.352 vs 16.441 at the corner",
    ),
    Expectation(
        "openvino-cpu",
        "test_resize_upsample_scales_linear_half_pixel_symmetric.*",
        "OpenVINO does not implement coordinate_transformation_mode half_pixel_symmetric (opset 19)",
    ),
    Expectation(
        "openvino-cpu",
        "test_resize_upsample_sizes_nearest_not_*",
        "OpenVINO ignores keep_aspect_ratio_policy not_larger/not_smaller (opset 18): output 7x8 "
        "where the test expects 7x7 / 8x8",
    ),
)
# Found by `convtx conformance --backends iree-cpu` (IREE 3.13), each with its reproducer in docs/upstream/
_IREE_COL2IM = "IREE 3.13 cannot compile Col2Im (ledger iree-col2im); docs/upstream/iree_col2im.py"
_IREE_SAME = (
    "IREE 3.13's ONNX import leaves a ConvTranspose with auto_pad SAME_* (explicit_pads: its asymmetric pads) "
    "unconverted (ledger iree-convtranspose-unconverted); docs/upstream/iree_convtranspose_attributes.py"
)
_IREE_DEPTHWISE = (
    "IREE 3.13 cannot compile a depthwise ConvTranspose (group = C, one output channel per group; ledger "
    "iree-depthwise-convtranspose); docs/upstream/iree_depthwise_convtranspose.py"
)
_IREE_UNCONVERTED = "IREE 3.13's ONNX import leaves this {} unconverted and iree-compile refuses it; docs/upstream/iree_unconverted_ops.py"
LEDGER += (
    Expectation("iree-cpu", "test_col2im*", _IREE_COL2IM),
    Expectation("iree-cpu", "*/gemm_col2im", _IREE_COL2IM),
    *(
        Expectation("iree-cpu", f"test_convtranspose_autopad_same.{v}{lw}", _IREE_SAME)
        for v in ("as_given", "const")
        for lw in ("", "/explicit_pads")
    ),
    *(
        Expectation("iree-cpu", f"test_convtranspose_{t}.{v}{lw}", _IREE_DEPTHWISE)
        for t in ("group_2", "group_2_image_3")
        for v in ("as_given", "const")
        for lw in ("", "/explicit_pads")
    ),
    Expectation("iree-cpu", "test_maxunpool_export_*", _IREE_UNCONVERTED.format("MaxUnpool")),
    Expectation(
        "iree-cpu",
        "test_resize_upsample_scales_cubic_A_n0p5_exclude_outside.*",
        _IREE_UNCONVERTED.format("cubic Resize with exclude_outside"),
    ),
    Expectation("iree-cpu", "test_resize_upsample_*_axes_*", _IREE_UNCONVERTED.format("Resize with `axes` (opset 18)")),
    Expectation(
        "iree-cpu",
        "test_resize_upsample_sizes_nearest_floor_align_corners.*",
        _IREE_UNCONVERTED.format("nearest Resize with align_corners"),
    ),
    Expectation(
        "iree-cpu",
        "test_resize_upsample_sizes_nearest_not_*",
        _IREE_UNCONVERTED.format("Resize with keep_aspect_ratio_policy not_larger/not_smaller"),
    ),
)
# TVM's ONNX import is the same for every target: what tvm-llvm cannot import, tvm-cuda cannot either (on a
# GPU an entry that then passes shows up as XPASS, i.e. the failure was specific to the LLVM target)
LEDGER += tuple(Expectation("tvm-cuda", e.pattern, e.reason) for e in LEDGER if e.backend == "tvm-llvm")
# Found by `convtx conformance --backends tvm-cuda`: dlight cannot schedule ConvTranspose followed by the Pad that
# explicit_pads adds for output_padding (a compile failure, seen without a GPU)
LEDGER += tuple(
    Expectation(
        "tvm-cuda",
        f"test_convtranspose_{t}.*/explicit_pads",
        "TVM 0.27's CUDA pipeline (dlight) fails to build ConvTranspose + Pad: 'consumers of the "
        "cache-write stage that are not properly inlined' "
        "(docs/upstream/tvm_cuda_explicit_pads_cache_write.py)",
    )
    for t in ("kernel_shape", "output_shape", "pad")
)

# The ratchet: at least this many cases pass per backend (raise it when more pass, never lower it).
# Counted over both variants, native and every lowering of the ConvTranspose cases.
MIN_PASSING: dict[str, int] = {"ort-cpu": 188, "tvm-llvm": 126, "openvino-cpu": 174}


def expectation(backend: str, case: str) -> Expectation | None:
    from fnmatch import fnmatchcase

    return next((e for e in LEDGER if e.backend == backend and fnmatchcase(case, e.pattern)), None)


def _selected(case) -> bool:
    ops = {n.op_type for n in case.model.graph.node}
    if not ops & set(OPS):
        return False
    if "Resize" in ops:  # upsampling only: the zoo never downsamples with Resize
        return "upsample" in case.name
    return True


def collect() -> list:
    """The selected node test cases (onnx.backend.test.case.node.TestCase), sorted by name."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    return sorted((c for c in cases if _selected(c)), key=lambda c: c.name)


def _bind_inputs(model, names: list[str], arrays: list[np.ndarray]):
    """A copy of `model` with the named inputs turned into initializers holding `arrays`."""
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [vi for vi in m.graph.input if vi.name not in names]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    m.graph.initializer.extend(numpy_helper.from_array(np.asarray(a), n) for n, a in zip(names, arrays))
    return m


def write_case(case, out: Path, variant: str):
    """One variant of a node test as an ONNX file plus an npz of inputs and expected outputs (the sweep's
    data format), and the Prepared record a worker runs it from. Variants: `as_given` feeds every input at
    run time, as the ONNX test does; `const` binds every input but the first (weights, scales, sizes,
    indices, shapes) as initializers, as exported models hold them."""
    import onnx

    from harness.pipeline.prepare import ModelRef, prepared_from_arrays

    out.mkdir(parents=True, exist_ok=True)
    inputs, outputs = case.data_sets[0]
    inits = {t.name for t in case.model.graph.initializer}
    names = [vi.name for vi in case.model.graph.input if vi.name not in inits]
    arrays = [np.asarray(a) for a in inputs]
    model = case.model
    if variant == "const":
        model = _bind_inputs(model, names[1:], arrays[1:])
        names, arrays = names[:1], arrays[:1]
    label = f"{case.name}.{variant}"
    model_path = out / f"{label}.onnx"
    onnx.save(model, str(model_path))
    feeds = dict(zip(names, arrays))
    ref = ModelRef(
        name=label,
        path=str(model_path.resolve()),
        shapes=tuple((n, tuple(int(d) for d in a.shape)) for n, a in feeds.items()),
    )
    prep = prepared_from_arrays(
        ref,
        1,
        model,
        str(model_path.resolve()),
        feeds,
        [np.asarray(o) for o in outputs],
        out / f"{label}.npz",
        "expected outputs of the ONNX node test",
    )
    return ref, prep


@dataclass(frozen=True)
class Outcome:
    backend: str
    case: str
    op: str
    status: str  # the record's status
    verdict: str  # pass | xfail | FAIL (new) | XPASS (stale ledger) | skipped | not run (built, no device)
    reason: str


def judge(backend: str, case: str, op: str, status: str, reason: str) -> Outcome:
    listed = expectation(backend, case)
    if status == "skipped" and reason.startswith("built, not run"):
        return Outcome(backend, case, op, status, "not run", reason)  # compiled; no device to judge it
    if status == "ok":
        verdict = "XPASS" if listed else "pass"
    elif listed:
        verdict = "xfail"
        reason = f"{listed.reason} [engine: {reason[:120]}]"
    elif status == "skipped" and "unavailable" in reason:
        verdict = "skipped"
    else:
        verdict = "FAIL"
    return Outcome(backend, case, op, status, verdict, reason)


VARIANTS = ("as_given", "const")
INVALID_PREFIX = "invalid."


def write_invalid_cases(out: Path) -> dict:
    """The minimal invalid ConvTranspose of every spec rule (harness/audit/invalid.py) as a case with no expected
    output: {(ModelRef, 1): Prepared}, and {case name: (rule, CTConfig)}."""
    from harness.audit.equivalence import build_model
    from harness.audit.invalid import examples
    from harness.core.convtranspose import RULES
    from harness.pipeline.prepare import ModelRef, prepared_from_arrays

    out.mkdir(parents=True, exist_ok=True)
    preps, rules = {}, {}
    for rule, cfg in examples():
        label = f"{INVALID_PREFIX}{rule}.{cfg.name}"
        path = out / f"{label}.onnx"
        model = build_model(cfg, seed=0)
        path.write_bytes(model.SerializeToString())
        x = np.random.default_rng(1).standard_normal(cfg.x_shape).astype(np.float32)
        ref = ModelRef(name=label, path=str(path.resolve()), shapes=(("X", cfg.x_shape),))
        preps[(ref, 1)] = prepared_from_arrays(
            ref,
            cfg.x_shape[0],
            model,
            str(path.resolve()),
            {"X": x},
            [],
            out / f"{label}.npz",
            f"none: invalid (rule {rule}: {RULES[rule]})",
        )
        rules[label] = (rule, cfg)
    return preps, rules


def judge_invalid(backend: str, case: str, rule: str, cfg, status: str, reason: str) -> Outcome:
    """An invalid node: refused cleanly is a pass; returning a tensor, failing inside or dying is a defect, known
    when the divergence ledger (harness/checking/known.py) has an entry for this engine and rule."""
    from harness.audit.fuzz import kind_of
    from harness.checking.known import match

    if status == "skipped" and reason.startswith("built, not run"):
        return Outcome(backend, case, "ConvTranspose", status, "not run", reason)
    if status == "skipped" and "unavailable" in reason:
        return Outcome(backend, case, "ConvTranspose", status, "skipped", reason)
    kind = kind_of(status, reason, valid=False)
    if kind == "ok":
        return Outcome(backend, case, "ConvTranspose", status, "pass", f"refused: {reason[:200]}")
    entry = match(backend, "native", cfg.attrs, None, kind, rule)
    what = f"{kind} ({reason[:120] or status})"
    if entry:
        return Outcome(
            backend, case, "ConvTranspose", status, "xfail", f"{what} — known: {entry.id} ({entry.reproducer})"
        )
    return Outcome(backend, case, "ConvTranspose", status, "FAIL", f"{what}: no ledger entry")


def run(
    backends: list[str], out: Path, build_dir: Path, lowerings: tuple[str, ...] = ("native",), threads: int = 1
) -> list[Outcome]:
    from harness.core.config import RunConfig
    from harness.pipeline.sweep import Plan, run_plan

    preps = {}
    op_of = {}
    for c in collect():
        for variant in VARIANTS:
            ref, prep = write_case(c, out / "cases", variant)
            preps[(ref, 1)] = prep
            op_of[ref.name] = next(n.op_type for n in c.model.graph.node if n.op_type in OPS)
    invalid_preps, invalid_rules = write_invalid_cases(out / "cases")
    preps.update(invalid_preps)
    cfg = RunConfig(threads=threads, timing=None, case_timeout_s=300)
    records = run_plan(
        Plan(tuple(r for r, _ in preps), ("native",), tuple(backends), (1,)),
        cfg,
        "conformance",
        build_dir,
        out / "logs",
        sink=lambda r: None,
        say=lambda s: None,
        prepared=preps,
    )
    # the lowerings rewrite ConvTranspose only: both variants, the weights constant (`const`) and fed at run time
    # (`as_given`: the weight transforms are built in the graph); not the invalid nodes (every lowering declines)
    rewrites = tuple(lw for lw in lowerings if lw != "native")
    ct = tuple(r for (r, _), p in preps.items() if p.conv_transpose_nodes and r.name not in invalid_rules)
    if rewrites and ct:
        records += run_plan(
            Plan(ct, rewrites, tuple(backends), (1,)),
            cfg,
            "conformance",
            build_dir,
            out / "logs",
            sink=lambda r: None,
            say=lambda s: None,
            prepared=preps,
        )
    return [
        judge_invalid(r.backend, r.model, *invalid_rules[r.model], r.status, r.reason)
        if r.model in invalid_rules
        else judge(
            r.backend,
            r.model if r.lowering == "native" else f"{r.model}/{r.lowering}",
            op_of[r.model],
            r.status,
            r.reason,
        )
        for r in records
    ]


def summarise(outcomes: list[Outcome], ratchet: bool = True) -> dict:
    """`ratchet`: hold each backend to MIN_PASSING (only meaningful for the full run: every lowering)."""
    backends = sorted({o.backend for o in outcomes})
    node_tests = [o for o in outcomes if not o.case.startswith(INVALID_PREFIX)]
    table = {
        b: {
            v: sum(1 for o in node_tests if o.backend == b and o.verdict == v)
            for v in ("pass", "xfail", "FAIL", "XPASS", "skipped", "not run")
        }
        for b in backends
    }
    # invalid nodes: backend -> rule -> [case, verdict, what] (the ratchet counts the node tests only)
    invalid: dict[str, dict[str, list]] = {}
    for o in outcomes:
        if o.case.startswith(INVALID_PREFIX):
            rule = o.case.removeprefix(INVALID_PREFIX).split(".")[0]
            invalid.setdefault(o.backend, {}).setdefault(rule, []).append([o.case, o.verdict, o.reason])
    invalid_bad = sum(1 for o in outcomes if o.case.startswith(INVALID_PREFIX) and o.verdict in ("FAIL", "XPASS"))
    below = {
        b: (table[b]["pass"], MIN_PASSING[b])
        for b in backends
        if ratchet and b in MIN_PASSING and table[b]["pass"] < MIN_PASSING[b]
    }
    return {
        "cases": len({o.case for o in node_tests}),
        "invalid_cases": len({o.case for o in outcomes}) - len({o.case for o in node_tests}),
        "table": table,
        "invalid": invalid,
        "below_minimum": below,
        "ok": not below and not invalid_bad and all(t["FAIL"] == 0 and t["XPASS"] == 0 for t in table.values()),
        "outcomes": [o.__dict__ for o in outcomes],
    }


def render(summary: dict) -> str:
    L = [
        f"# Conformance: {summary['cases']} ONNX node tests (ConvTranspose and upsampling ops)",
        "",
        "| backend | pass | xfail (ledger) | FAIL (new) | XPASS (stale ledger) | skipped | built, not run | minimum |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b, t in summary["table"].items():
        L.append(
            f"| {b} | {t['pass']} | {t['xfail']} | {t['FAIL']} | {t['XPASS']} | {t['skipped']} | "
            f"{t.get('not run', 0)} | {MIN_PASSING.get(b, '–')} |"
        )
    bad = [o for o in summary["outcomes"] if o["verdict"] not in ("pass", "not run")]
    not_run = [o for o in summary["outcomes"] if o["verdict"] == "not run"]
    if not_run:
        L += ["", f"{len(not_run)} cases were compiled but not run ({not_run[0]['reason']}); they are not judged."]
    if bad:
        L += ["", "| backend | case | op | verdict | reason |", "|---|---|---|---|---|"]
        for o in bad:
            L.append(
                f"| {o['backend']} | `{o['case']}` | {o['op']} | {o['verdict']} | "
                f"{o['reason'][:200].replace('|', '/')} |"
            )
    for b, (got, need) in summary["below_minimum"].items():
        L.append(f"\n**{b}: {got} passing, below the minimum {need}.**")
    inv = summary.get("invalid") or {}
    if inv:
        from harness.core.convtranspose import RULES

        engines = sorted(inv)
        L += [
            "",
            f"## Invalid nodes: {summary.get('invalid_cases', 0)} ConvTransposes the spec forbids, one rule each",
            "",
            "Each cell: the engine's answer per example (harness/audit/invalid.py) — refused (as it should), "
            "**accepted** (returned a tensor) or **internal error** (failed inside instead of refusing); a defect is "
            "in the ledger (xfail) or new (FAIL).",
            "",
            "| rule | " + " | ".join(engines) + " |",
            "|---|" + "---|" * len(engines),
        ]
        for rule in RULES:
            cells = []
            for b in engines:
                parts = []
                for case, verdict, why in inv[b].get(rule, []):
                    name = case.removeprefix(f"{INVALID_PREFIX}{rule}.")
                    if verdict == "pass":
                        parts.append(f"{name}: refused")
                    elif verdict in ("xfail", "FAIL"):
                        what = "accepted" if why.startswith("accepts_invalid") else "internal error"
                        parts.append(f"{name}: **{what}**" + (" (new)" if verdict == "FAIL" else ""))
                    else:
                        parts.append(f"{name}: {verdict}")
                cells.append("<br>".join(parts) or "–")
            L.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(L) + "\n"


def write(summary: dict, json_path: Path | None, md_path: Path) -> None:
    safefs.write_atomic(md_path, render(summary))
    if json_path is not None:
        safefs.write_atomic(json_path, json.dumps(summary, indent=2))
