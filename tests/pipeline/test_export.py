import numpy as np
import onnx
import onnxruntime as ort

from harness.checking.reference import zoo_reference
from harness.pipeline.export import OPSET, cache_key, export_zoo
from models import get_model


def test_export_is_cached_by_content_and_matches_torch(tmp_path):
    spec = get_model("cae")
    e1 = export_zoo(spec, 16, 2, 0, tmp_path)
    mtime = (tmp_path / e1.path.split("/")[-1]).stat().st_mtime_ns
    e2 = export_zoo(spec, 16, 2, 0, tmp_path)
    assert e1 == e2 and (tmp_path / e1.path.split("/")[-1]).stat().st_mtime_ns == mtime  # reused
    assert e1.exporter == "dynamo" and e1.fallback_reason == ""
    m = onnx.load(e1.path)
    assert m.opset_import[0].version == OPSET
    assert [n.op_type for n in m.graph.node].count("ConvTranspose") == 2
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    y = ort.InferenceSession(e1.path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    ref = zoo_reference(spec, 16, {"x": x}, 0)[0]
    assert np.abs(y - ref).max() < 1e-5
    assert not list(tmp_path.glob("*.tmp*"))  # nothing half-written left behind


def test_cache_key_depends_on_shape_seed_and_batch():
    spec = get_model("cae")
    keys = {cache_key(spec, 16, 1, 0), cache_key(spec, 32, 1, 0), cache_key(spec, 16, 2, 0), cache_key(spec, 16, 1, 1)}
    assert len(keys) == 4


def test_dynamo_failure_falls_back_to_torchscript_with_the_reason(tmp_path, monkeypatch):
    import torch

    real_export = torch.onnx.export

    def flaky_export(*args, **kwargs):
        if kwargs.get("dynamo"):
            raise RuntimeError("simulated dynamo failure\nsecond line")
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", flaky_export)
    e = export_zoo(get_model("cae"), 8, 1, 0, tmp_path)
    assert e.exporter == "torchscript"
    assert e.fallback_reason == "dynamo export failed: RuntimeError: simulated dynamo failure"
    m = onnx.load(e.path)
    assert [n.op_type for n in m.graph.node].count("ConvTranspose") == 2
    assert export_zoo(get_model("cae"), 8, 1, 0, tmp_path) == e  # the recorded reason survives the cache
