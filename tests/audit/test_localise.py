"""Divergence localisation: the first node whose output differs, and a reduced reproducer."""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness.audit.localise import expose, reduce_to_node

from ..helpers import run_cli


def _decoder(path):
    """Relu -> Conv -> ConvTranspose(output_shape) -> Sigmoid: TVM 0.27 ignores output_shape."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((2, 2, 3, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal((2, 4, 3, 3)).astype(np.float32), "W2"),
    ]
    nodes = [
        helper.make_node("Relu", ["X"], ["a"], name="relu_in"),
        helper.make_node("Conv", ["a", "W2"], ["b"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("ConvTranspose", ["b", "W"], ["c"], name="up", strides=[2, 2], output_shape=[10, 9]),
        helper.make_node("Sigmoid", ["c"], ["Y"], name="head"),
    ]
    g = helper.make_graph(
        nodes,
        "decoder",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4, 4, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2, 10, 9])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return m


def test_expose_and_reduce(tmp_path):
    m = _decoder(tmp_path / "d.onnx")
    e = expose(m, ["a", "b", "c", "Y"])
    assert [o.name for o in e.graph.output] == ["a", "b", "c", "Y"]
    reduced, feeds = reduce_to_node(m, m.graph.node[2], {"b": np.ones((1, 2, 4, 4))})
    assert [n.op_type for n in reduced.graph.node] == ["ConvTranspose"]
    assert [i.name for i in reduced.graph.input] == ["b"] and feeds["b"].dtype == np.float32
    assert [t.name for t in reduced.graph.initializer] == ["W"]
    onnx.checker.check_model(reduced)


def test_validate_names_the_divergent_node_and_writes_a_reproducer(tmp_path):
    _decoder(tmp_path / "decoder.onnx")
    out = tmp_path / "v.json"
    p = run_cli(
        "validate",
        str(tmp_path / "decoder.onnx"),
        "--backends",
        "ort-cpu,tvm-llvm",
        "--json",
        str(out),
        "--build-dir",
        str(tmp_path / "b"),
    )
    assert p.returncode == 1
    assert "first divergence at node 'up' (ConvTranspose, #2)" in p.stdout
    recs = {r["backend"]: r for r in json.loads(out.read_text())}
    loc = recs["tvm-llvm"]["details"]["localisation"]
    assert loc["node"] == "up" and loc["op"] == "ConvTranspose" and loc["reproduces"] is True
    reduced = onnx.load(loc["reproducer"])
    assert [n.op_type for n in reduced.graph.node] == ["ConvTranspose"]
    assert "localisation" not in recs["ort-cpu"]["details"]  # only mismatches are localised
