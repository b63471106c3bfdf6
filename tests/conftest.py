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
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout
    )


def make_convtranspose_model(
    path: Path, x_shape=(1, 4, 5, 5), w_shape=(4, 3, 3, 3), bias=True, dim_param: str | None = None, **attrs
) -> Path:
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
    graph = helper.make_graph(
        [node, relu],
        "hand_convtranspose",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, xs)],
        [
            helper.make_tensor_value_info(
                "Y", TensorProto.FLOAT, ["n", "m"] + [f"d{i}" for i in range(len(x_shape) - 2)]
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="hand")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def hand_model(tmp_path) -> Path:
    return make_convtranspose_model(
        tmp_path / "hand.onnx",
        strides=[2, 2],
        pads=[1, 0, 0, 1],
        output_padding=[1, 0],
        group=2,
        x_shape=(1, 4, 5, 5),
        w_shape=(4, 3, 3, 3),
    )


def hand_model_two_convtranspose(path: Path) -> Path:
    """X(1x4x6x6) -> ConvTranspose 'up1' (4->8, k4 s2 p1) -> Relu -> ConvTranspose 'up2' (8->3, k2 s2)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 8, 4, 4)).astype(np.float32), "W1"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "B1"),
        numpy_helper.from_array(rng.standard_normal((8, 3, 2, 2)).astype(np.float32), "W2"),
    ]
    nodes = [
        helper.make_node(
            "ConvTranspose",
            ["X", "W1", "B1"],
            ["h"],
            name="up1",
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            kernel_shape=[4, 4],
        ),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("ConvTranspose", ["r", "W2"], ["Y"], name="up2", strides=[2, 2], kernel_shape=[2, 2]),
    ]
    g = helper.make_graph(
        nodes,
        "two",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 3, 24, 24])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path
