"""TVM 0.27's default CUDA schedule (dlight) cannot build a grouped Conv with more than one output channel per
group and no leading pad: `dl.gpu.Reduction` splits the output-channel loop into (outer, c) for the read of
input channel `oc // c`, then reorders (s, threadIdx.x, c), which leaves the spatial loop c below the
threadIdx.x reduction loop of the write-back block; the cross-thread-reduction lowering then refuses the kernel
("Check failed: n_deepest_reduction_loops == reduction_loops.size() (0 vs. 1): Cross-thread reduction
requires all the reduction-related loops to be the deepest ..."). `make build-cuda` found it in
dwdecoder@256/phase_split (the fourth phase of its first ConvTranspose: 96 -> 48 channels, group 4, pads
[0, 0, 1, 1]). A leading pad gives the read an offset, the Reduction rule declines and Fallback builds the
kernel; one output channel per group (depthwise) has no `oc // c` term and builds too. The same bug class in
DecodeGeMV was fixed upstream in apache/tvm PR #15340.

The smallest case: Conv 2 -> 4 channels, group 2, 2x2 kernel, a 1x2x2x2 input, no pads. REPRODUCED (exit 0)
while it fails to build, FIXED (exit 1) when it builds (docs/upstream/_verdict.py); any other error
propagates. Needs no GPU.
"""
import numpy as np
import tvm
from _verdict import verdict
from onnx import TensorProto, helper, numpy_helper
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

TARGET = tvm.target.Target(
    {"kind": "cuda", "arch": "sm_80", "max_shared_memory_per_block": 49152, "max_threads_per_block": 1024},
    host={"kind": "llvm"},
)


def grouped_conv(cin: int, cout: int, group: int, pads: list[int]):
    w = numpy_helper.from_array(np.ones((cout, cin // group, 2, 2), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=group, kernel_shape=[2, 2], pads=pads)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w],
    )
    return from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), keep_params_in_input=False)


# the passing neighbours: a leading pad (Fallback takes the kernel), one output channel per group
relax.build(grouped_conv(2, 4, 2, [1, 1, 0, 0]), target=TARGET)
print("group 2, 2 -> 4, pads [1, 1, 0, 0]: built for sm_80")
relax.build(grouped_conv(2, 2, 2, [0, 0, 0, 0]), target=TARGET)
print("group 2, 2 -> 2, no pads: built for sm_80")
try:
    relax.build(grouped_conv(2, 4, 2, [0, 0, 0, 0]), target=TARGET)
except Exception as e:
    line = next((ln for ln in str(e).splitlines() if "Check failed" in ln), "")
    if "Cross-thread reduction requires" not in line:
        raise
    verdict(True, f"group 2, 2 -> 4, no pads (TVM {tvm.__version__}): {line.strip()[:160]}")
verdict(False, f"group 2, 2 -> 4, no pads (TVM {tvm.__version__}): built for sm_80")
