"""TVM 0.27's default CUDA pipeline (dlight) fails to compile a ConvTranspose that convtx's `explicit_pads`
lowering produced from the ONNX node test test_convtranspose_pad (strides 3x2, output_padding 1x1, pads
resolved into explicit values): relax.build raises "AssertionError: There are some consumers of the
cache-write stage that are not properly inlined." `convtx conformance --backends tvm-cuda` found it for three
node tests (kernel_shape, output_shape, pad) under explicit_pads; the same models build for LLVM.

REPRODUCED (exit 0) while the CUDA build fails with that assertion, FIXED (exit 1) when it builds
(docs/upstream/_verdict.py); any other error propagates. Needs no GPU.
"""
import numpy as np
import onnx
import tvm
from _verdict import verdict
from onnx import helper, numpy_helper
from onnx.backend.test.case.node import collect_testcases
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

from harness.lowerings import get_lowering

case = next(c for c in collect_testcases() if c.name == "test_convtranspose_pad")
model = case.model
x, w = case.data_sets[0][0]
# the node test feeds W as an input: make it an initializer, as convtx's ".const" variant does
g = model.graph
inits = [numpy_helper.from_array(np.asarray(w), g.input[1].name)]
graph = helper.make_graph(g.node, "pad", [g.input[0]], g.output, inits)
m = helper.make_model(graph, opset_imports=model.opset_import)
m.ir_version = model.ir_version
lowered = get_lowering("explicit_pads").apply(m).model
onnx.checker.check_model(lowered)
print("node:", [(n.op_type, {a.name: helper.get_attribute_value(a) for a in n.attribute}) for n in lowered.graph.node])
mod = from_onnx(lowered, shape_dict={g.input[0].name: list(np.asarray(x).shape)})
relax.build(mod, target=tvm.target.Target({"kind": "llvm"}))
print("LLVM: builds")
target = tvm.target.Target({"kind": "cuda", "arch": "sm_80", "max_shared_memory_per_block": 49152,
                            "max_threads_per_block": 1024}, host={"kind": "llvm"})
try:
    relax.build(mod, target=target)
except AssertionError as e:  # dlight's schedule check; any other assertion is not this bug
    if "not properly inlined" not in str(e):
        raise
    verdict(True, f"CUDA (TVM {tvm.__version__}): AssertionError: {e}")
verdict(False, f"CUDA (TVM {tvm.__version__}): builds")
