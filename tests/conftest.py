"""Shared fixtures: small ONNX models built by hand (not by the project's exporter)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m harness ARGS` in a subprocess, as a user would run `convtx`."""
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=timeout)


def make_convtranspose_model(path: Path, x_shape=(1, 4, 5, 5), w_shape=(4, 3, 3, 3), bias=True,
                             dim_param: str | None = None, **attrs) -> Path:
    """A hand-written ONNX graph: ConvTranspose (+bias) -> Relu, weights seeded."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    w = rng.standard_normal(w_shape).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W")]
    inputs = ["X", "W"]
    if bias:
        m = w_shape[1] * attrs.get("group", 1)
        inits.append(numpy_helper.from_array(rng.standard_normal(m).astype(np.float32), "B"))
        inputs.append("B")
    node = helper.make_node("ConvTranspose", inputs, ["Y0"], **attrs)
    relu = helper.make_node("Relu", ["Y0"], ["Y"])
    xs = list(x_shape)
    if dim_param:
        xs[0] = dim_param
    graph = helper.make_graph([node, relu], "hand_convtranspose",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, xs)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["n", "m"] + [f"d{i}" for i in range(len(x_shape) - 2)])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="hand")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def hand_model(tmp_path) -> Path:
    return make_convtranspose_model(tmp_path / "hand.onnx", strides=[2, 2], pads=[1, 0, 0, 1],
                                    output_padding=[1, 0], group=2, x_shape=(1, 4, 5, 5), w_shape=(4, 3, 3, 3))
