"""PyTorch -> ONNX for zoo models, with a pinned opset, cached by content hash.

Both exporters are tried — the dynamo exporter (`torch.onnx.export(dynamo=True)`) and the legacy
TorchScript one — and each exported graph is run in ONNX Runtime on seeded inputs and compared with the
PyTorch module in float64 under the float32 policy. The file kept is dynamo's when it exported and agrees,
else TorchScript's when that agrees, else whichever exported (its disagreement recorded). What happened with
each exporter is recorded beside the file (`<hash>.json`) and in every record made from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.core import cache
from harness.core.errors import first_line

OPSET = 18  # Col2Im needs 18; every engine here supports it
EXPORT_VERSION = 2  # bump when this file changes how models are exported
EXPORTERS = ("dynamo", "torchscript")  # in order of preference


@dataclass(frozen=True)
class Exported:
    path: str
    exporter: str  # "dynamo" | "torchscript": the exporter whose file is kept
    fallback_reason: str  # why dynamo's file was not kept, "" when it was
    cache_key: str
    opset: int = OPSET
    # per exporter: {"status": "agrees" | "disagrees" | "failed" | "unchecked", "reason", "rel_l2", "max_abs",
    #                "nodes": op histogram}
    exporters: dict = field(default_factory=dict)


def cache_key(spec, size: int, batch: int, seed: int) -> str:
    """Hash of everything that decides the exported bytes: the model's source (and the zoo's shared helpers),
    name, shapes, seed, opset, exporter code and the versions of torch/onnx/onnxscript/onnxruntime."""
    from harness.measure.machine import versions

    h = hashlib.sha256()
    for mod in (spec.source_module, "models.common", __name__):
        h.update(Path(importlib.util.find_spec(mod).origin).read_bytes())
    v = versions()
    parts = [
        spec.name,
        str(size),
        str(batch),
        str(seed),
        str(OPSET),
        str(EXPORT_VERSION),
        str(v.get("torch")),
        str(v.get("onnx")),
        str(v.get("onnxscript")),
        str(v.get("onnxruntime")),
    ]
    h.update("\0".join(parts).encode())
    return h.hexdigest()[:20]


def _run_exporter(name: str, module, args, names: list[str]):
    import onnx
    import torch

    if name == "dynamo":
        # its progress lines, its notes about torchvision ops, and torch's own deprecation notices
        logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            prog = torch.onnx.export(
                module,
                args,
                dynamo=True,
                opset_version=OPSET,
                input_names=names,
                output_names=["output"],
                verbose=False,
                external_data=False,
            )
        return prog.model_proto
    buf = io.BytesIO()
    with warnings.catch_warnings():  # its deprecation notice; which exporter was used is recorded instead
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, buf, dynamo=False, opset_version=OPSET, input_names=names, output_names=["output"]
        )
    return onnx.load_model_from_string(buf.getvalue())


def _agreement(model, feeds: dict, refs: list) -> dict:
    """The exported graph in ONNX Runtime vs the PyTorch module in float64, under the float32 policy."""
    import onnxruntime as ort

    from harness.checking.numerics import compare

    try:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        outs = sess.run(None, feeds)
    except Exception as e:  # noqa: BLE001 — an engine refusing the file is recorded, not fatal
        return {"status": "unchecked", "reason": f"onnxruntime could not run it: {first_line(e)}"}
    c = compare(outs, refs)
    out = {"status": "agrees" if c.passed else "disagrees", "rel_l2": c.rel_l2, "max_abs": c.max_abs}
    if not c.passed:
        out["reason"] = "; ".join(o.reason for o in c.outputs if o.reason) or "outside the float32 policy"
    return out


def export_zoo(spec, size: int, batch: int, seed: int, cache_dir: Path) -> Exported:
    """The zoo model `spec` at `size` and `batch` as an ONNX file under `cache_dir` (reused if present)."""
    key = cache_key(spec, size, batch, seed)
    cache_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = cache_dir / f"{spec.name}-{size}-b{batch}-{key}.onnx"
    meta_path = onnx_path.with_suffix(".json")
    if cache.is_valid(onnx_path) and cache.is_valid(meta_path):
        return Exported(**json.loads(meta_path.read_text()))

    import numpy as np
    import onnx
    import torch

    from harness.checking.reference import zoo_reference

    module = spec.build(size, seed=seed)
    shapes = spec.inputs(size, batch)
    gen = torch.Generator().manual_seed(seed)
    args = tuple(torch.randn(s, generator=gen) for s in shapes.values())
    names = list(shapes)
    feeds = {n: a.numpy() for n, a in zip(names, args)}
    refs = zoo_reference(spec, size, {n: v.astype(np.float64) for n, v in feeds.items()}, seed)

    results: dict[str, dict] = {}
    models: dict[str, onnx.ModelProto] = {}
    for name in EXPORTERS:
        try:
            m = _run_exporter(name, module, args, names)
            onnx.checker.check_model(m)
        except Exception as e:  # noqa: BLE001 — any exporter failure is recorded and the next one tried
            results[name] = {"status": "failed", "reason": f"{name} export failed: {first_line(e)}"}
            continue
        models[name] = m
        hist: dict[str, int] = {}
        for n in m.graph.node:
            hist[n.op_type] = hist.get(n.op_type, 0) + 1
        results[name] = {**_agreement(m, feeds, refs), "nodes": dict(sorted(hist.items()))}

    order = (
        [n for n in EXPORTERS if results[n]["status"] == "agrees"]
        + [n for n in EXPORTERS if results[n]["status"] == "unchecked"]
        + [n for n in EXPORTERS if results[n]["status"] == "disagrees"]
    )
    if not order:
        from harness.core.errors import ConvtxError

        raise ConvtxError(
            f"model {spec.name}@{size}: no exporter could export it: "
            + "; ".join(r["reason"] for r in results.values())
        )
    chosen = order[0]
    reason = "" if chosen == "dynamo" else (results["dynamo"].get("reason") or results["dynamo"]["status"])
    tmp = cache.tmp_path(onnx_path)
    onnx.save_model(models[chosen], str(tmp))
    cache.commit(tmp, onnx_path)
    result = Exported(str(onnx_path), chosen, reason, key, OPSET, results)
    meta_tmp = cache.tmp_path(meta_path)
    meta_tmp.write_text(json.dumps(asdict(result), indent=2))
    cache.commit(meta_tmp, meta_path)  # the meta last: it is what marks the entry complete
    return result
