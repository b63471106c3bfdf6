"""PyTorch -> ONNX for zoo models, with a pinned opset, cached by content hash.

The dynamo exporter is tried first; if it fails, the legacy TorchScript exporter is used and the reason is
recorded beside the file (`<hash>.json`) and in every record made from it.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import cache

OPSET = 18          # Col2Im needs 18; every engine here supports it
EXPORT_VERSION = 1  # bump when this file changes how models are exported


@dataclass(frozen=True)
class Exported:
    path: str
    exporter: str            # "dynamo" | "torchscript"
    fallback_reason: str     # why dynamo was not used, "" when it was
    cache_key: str
    opset: int = OPSET


def cache_key(spec, size: int, batch: int, seed: int) -> str:
    """Hash of everything that decides the exported bytes: the model's source, name, shapes, seed, opset,
    exporter code and the versions of torch/onnx/onnxscript."""
    from harness.machine import versions

    src = Path(importlib.util.find_spec(spec.source_module).origin).read_bytes()
    v = versions()
    parts = [spec.name, str(size), str(batch), str(seed), str(OPSET), str(EXPORT_VERSION),
             str(v.get("torch")), str(v.get("onnx")), str(v.get("onnxscript"))]
    h = hashlib.sha256(src)
    h.update("\0".join(parts).encode())
    return h.hexdigest()[:20]


def export_zoo(spec, size: int, batch: int, seed: int, cache_dir: Path) -> Exported:
    """The zoo model `spec` at `size` and `batch` as an ONNX file under `cache_dir` (reused if present)."""
    key = cache_key(spec, size, batch, seed)
    cache_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = cache_dir / f"{spec.name}-{size}-b{batch}-{key}.onnx"
    meta_path = onnx_path.with_suffix(".json")
    if cache.is_valid(onnx_path) and cache.is_valid(meta_path):
        return Exported(**json.loads(meta_path.read_text()))

    import onnx
    import torch

    module = spec.build(size, seed=seed)
    shapes = spec.inputs(size, batch)
    gen = torch.Generator().manual_seed(seed)
    args = tuple(torch.randn(s, generator=gen) for s in shapes.values())
    names = list(shapes)
    tmp = cache.tmp_path(onnx_path)
    exporter, reason = "dynamo", ""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
            prog = torch.onnx.export(module, args, dynamo=True, opset_version=OPSET, input_names=names,
                                     output_names=["output"], verbose=False, external_data=False)
        model = prog.model_proto
    except Exception as e:  # noqa: BLE001 — any exporter failure falls back, with the reason kept
        exporter, reason = "torchscript", f"dynamo export failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        buf = io.BytesIO()
        with warnings.catch_warnings():   # its deprecation notice; the fallback is recorded instead
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(module, args, buf, dynamo=False, opset_version=OPSET, input_names=names,
                              output_names=["output"])
        model = onnx.load_model_from_string(buf.getvalue())
    onnx.checker.check_model(model)
    onnx.save_model(model, str(tmp))
    cache.commit(tmp, onnx_path)
    result = Exported(str(onnx_path), exporter, reason, key)
    meta_tmp = cache.tmp_path(meta_path)
    meta_tmp.write_text(json.dumps(asdict(result), indent=2))
    cache.commit(meta_tmp, meta_path)      # the meta last: it is what marks the entry complete
    return result
