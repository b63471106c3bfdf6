"""Per-layer profiles (Compiled.profile) from each engine's own profiler, mapped to the model's nodes, and the
record's summary of them (profile_summary). No latency thresholds: only that every engine names the model's
ConvTranspose node and reports positive times for it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from harness.backends import get_backend
from harness.backends.base import LayerTime, profile_summary
from harness.core.config import RunConfig

from ..helpers import artifact_of, convtranspose_model


def test_the_summary_merges_layers_of_one_node_and_ranks_by_time():
    layers = [
        LayerTime("ct", "ConvTranspose", 2.0, "k1"),
        LayerTime("relu", "Relu", 1.0, "k2"),
        LayerTime("ct", "ConvTranspose", 1.0, "k1/part2"),
    ]
    s = profile_summary(layers, top=1)
    assert s["total_ms"] == pytest.approx(4.0) and s["layers"] == 2
    (first,) = s["top"]
    assert first["node"] == "ct" and first["ms"] == pytest.approx(3.0) and first["share"] == pytest.approx(0.75)
    assert first["engine"] == "k1, k1/part2"


@pytest.mark.parametrize("backend", ["ort-cpu", "openvino-cpu", "tvm-llvm"])
def test_each_engine_profiles_the_model_by_its_nodes(tmp_path, backend):
    be = get_backend(backend)
    if not be.availability():
        pytest.skip(f"{backend}: {be.availability().reason}")
    rng = np.random.default_rng(0)
    m = convtranspose_model((1, 8, 16, 16), rng.standard_normal((8, 8, 4, 4)), relu=True, strides=[2, 2])
    path = tmp_path / "ct.onnx"
    onnx.save(m, str(path))
    art, _ = artifact_of(path, tmp_path / "compiled")
    be.load()
    c = be.compile(art, RunConfig(threads=1))
    feeds = {"X": rng.standard_normal((1, 8, 16, 16)).astype(np.float32)}
    layers = c.profile(feeds, runs=3)
    c.close()
    assert layers and all(lt.ms >= 0 for lt in layers)
    ct = [lt for lt in layers if lt.node == "ct"]
    assert ct, f"{backend}: no layer mapped to the ConvTranspose node 'ct': {layers}"
    assert sum(lt.ms for lt in ct) > 0
