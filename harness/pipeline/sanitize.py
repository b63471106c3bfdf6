"""Sanitation of a bring-your-own ONNX file before anything lowers or compiles it.

Exporters write graphs that the static engines trip on although every shape is known: the padding of a Pad
computed from Shape / Gather / Sub, a Reshape's target from Shape, an Expand from ConstantOfShape, dynamic
axes (`N`, `unk__0`) that the user binds with `--shape`. With the input shapes bound, all of that is
constant. So a file model is, once per (file, shapes):

1. converted to opset `TARGET_OPSET` (18, the zoo's: Col2Im for gemm_col2im) with onnx's version converter
   when its opset is below it (the ONNX Model Zoo is full of opset 7-12 files; the lowerings need 13+): below
   `MIN_OPSET` a model the converter cannot take is one clear error, from it on the model keeps its opset;
2. bound: the input shapes written into the graph, shapes inferred (onnx, with data propagation);
3. folded: onnxscript's optimizer (constant and shape folding, dead nodes removed), shapes inferred again;
4. validated: the sanitised graph and the original (bound, unconverted) run in ONNX Runtime on the case's seeded inputs and
   must agree under the float32 policy (harness/checking/numerics.py) — only then does anything else use it.
   If they disagree, or ORT cannot run the sanitised graph, the bound original is used and the record says
   why; if ORT cannot run the original either, the sanitised graph is used, marked `not validated` (every
   engine's result is still checked against the float64 reference of the original file).

What it did is `Prepared.sanitation`, copied into every record's `details.sanitation`: nodes before and after,
the operators folded away, the opset conversion, the validation, and which graph the cases use. Zoo models
are not sanitised: the exporter's own optimiser has already folded them (harness/pipeline/export.py).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np

from harness.core import cache
from harness.core.errors import ConvtxError, first_line
from harness.lowerings.common import opset_of

MIN_OPSET = 13  # below it: converted (the lowerings emit opset-13 forms; engines drop the oldest opsets)
TARGET_OPSET = 18  # what the conversion writes: the zoo's opset, which every engine here runs (Col2Im too)
SOURCES = (Path(__file__),)


def convert_opset(model, source: str):
    """(model at TARGET_OPSET, [from, to]) when its opset is below it, else (model, None). Below MIN_OPSET a
    model the converter cannot take is an error; from MIN_OPSET on it keeps its opset (a lowering that needs
    more declines with its reason), and the third value says why."""
    from onnx import version_converter

    have = opset_of(model)
    if have >= TARGET_OPSET:
        return model, None, ""
    try:
        converted = version_converter.convert_version(model, TARGET_OPSET)
    except Exception as e:  # noqa: BLE001 — the converter's own words, on one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        if have >= MIN_OPSET:
            return model, None, f"opset {have} kept (onnx's version converter: {first})"
        raise ConvtxError(
            f"{source}: opset {have} is below {MIN_OPSET} and onnx's version converter cannot bring it to "
            f"{TARGET_OPSET}: {first}"
        ) from None
    return converted, [have, TARGET_OPSET], ""


SHAPE_HELPER_ELEMENTS = 8192  # a ConstantOfShape up to this size is a shape computation's helper: folded


def _shape_helper(node) -> bool | None:
    """onnxscript keeps every ConstantOfShape (so as not to grow a model by a large constant); a small one is part
    of a shape computation (torch.onnx writes pads and Reshape targets with them) and is folded."""
    if node.op_type != "ConstantOfShape" or node.domain not in ("", "ai.onnx") or not node.inputs:
        return None
    shape = node.inputs[0].const_value if node.inputs[0] is not None else None
    if shape is None:
        return None
    return bool(int(np.prod(shape.numpy(), dtype=np.int64)) <= SHAPE_HELPER_ELEMENTS) or None


def fold(model):
    """Constant and shape folding and dead-node removal by onnxscript's optimizer (small ConstantOfShape
    included: `_shape_helper`), twice over, shapes inferred after."""
    import onnx
    import onnx_ir as ir
    import onnxscript.optimizer
    from onnxscript.optimizer import _constant_folding

    m = ir.serde.deserialize_model(model)
    for _ in range(2):
        _constant_folding.fold_constants(m, onnx_shape_inference=True, should_fold=_shape_helper)
        onnxscript.optimizer.optimize(m)
    out = ir.serde.serialize_model(m)
    try:
        out = onnx.shape_inference.infer_shapes(out, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 — inference helps the lowerings; its failure is not a verdict
        pass
    return out


def _ort_outputs(model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return [np.asarray(o) for o in sess.run(None, feeds)]


def validate(original, sanitised, feeds: dict[str, np.ndarray]) -> tuple[bool | None, str]:
    """(True: they agree, False: they do not or the sanitised graph fails, None: ORT cannot run the original;
    the words for the record)."""
    from harness.checking.numerics import compare

    try:
        want = _ort_outputs(original, feeds)
    except Exception as e:  # noqa: BLE001 — ORT cannot judge: say so
        return None, f"not validated: onnxruntime cannot run the original ({first_line(e, 200)})"
    try:
        got = _ort_outputs(sanitised, feeds)
    except Exception as e:  # noqa: BLE001
        return False, f"onnxruntime cannot run the sanitised graph ({first_line(e, 200)})"
    c = compare(got, want, "float32")
    if not c:
        return False, f"the sanitised graph differs from the original in onnxruntime ({c.reason})"
    return True, f"onnxruntime: agrees with the original (max |Δ| {c.max_abs:.2g})"


def sanitize(path: str, model, shapes: dict, feeds: dict[str, np.ndarray], build_dir: Path) -> tuple[str, dict]:
    """(the ONNX file the cases use, what sanitation did) for the file model at `path` (loaded as `model`)
    with input `shapes`; cached under build_dir/sanitized by the file's digest, the shapes and this code."""
    import onnx

    from harness.core.onnx_io import fix_input_shapes, model_digest

    key = hashlib.sha256(
        model_digest(path).encode()
        + repr(sorted(shapes.items())).encode()
        + cache.source_digest(SOURCES).encode()
        + b"".join(hashlib.sha256(feeds[k].tobytes()).digest() for k in sorted(feeds))
    ).hexdigest()[:20]
    out = build_dir / "sanitized" / f"{Path(path).stem}-{key}.onnx"
    meta = out.with_suffix(".json")
    if cache.is_valid(out) and cache.is_valid(meta):
        return str(out), json.loads(meta.read_text())
    original = fix_input_shapes(model, shapes)
    converted, conversion, kept = convert_opset(model, path)
    folded = fold(fix_input_shapes(converted, shapes) if conversion else original)
    before, after = Counter(n.op_type for n in original.graph.node), Counter(n.op_type for n in folded.graph.node)
    removed = {op: n - after.get(op, 0) for op, n in sorted(before.items()) if n > after.get(op, 0)}
    ok, words = validate(original, folded, feeds)
    use = folded if ok is not False else original
    info = {
        "nodes_before": sum(before.values()),
        "nodes_after": sum(Counter(n.op_type for n in use.graph.node).values()),
        "folded": removed,
        "opset": conversion if ok is not False else None,
        "validated": words,
        "uses": "sanitised" if ok is not False else "original (bound shapes, not folded or converted)",
    }
    if kept:
        info["opset_kept"] = kept
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.tmp_path(out)
    onnx.save_model(use, str(tmp))
    cache.commit(tmp, out)
    tmp_meta = cache.tmp_path(meta)
    tmp_meta.write_text(json.dumps(info, sort_keys=True))
    cache.commit(tmp_meta, meta)
    return str(out), info


def summary(info: dict) -> str:
    """One line for a person: `23 -> 9 nodes (folded Shape 4, Gather 4, ...); opset 11 -> 18; <validation>`."""
    if not info:
        return ""
    folded = ", ".join(f"{op} {n}" for op, n in info.get("folded", {}).items())
    parts = [f"{info['nodes_before']} → {info['nodes_after']} nodes" + (f" (folded {folded})" if folded else "")]
    if info.get("opset"):
        parts.append(f"opset {info['opset'][0]} → {info['opset'][1]}")
    parts.append(info.get("validated", ""))
    if not str(info.get("uses", "")).startswith("sanitised"):
        parts.append(f"uses the {info['uses']}")
    return "; ".join(p for p in parts if p)
