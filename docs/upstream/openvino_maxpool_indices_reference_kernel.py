"""OpenVINO 2026.4 runs a MaxPool whose Indices output is used on its slow reference implementation (a "Reference" node,
exec type ref_f32), where the same MaxPool without Indices gets a JIT kernel: a performance cliff, not a wrong answer.

One node, x 1x16x256x256, kernel = stride = 2 (the pooling of every unpooling decoder: SegNet, unpool_max).
In the zoo's unpool_max@256 the four MaxPools with Indices took 155 ms of OpenVINO's 160 ms per inference
(ONNX Runtime: 8.2 ms for the whole model; measured 2026-12-07 on an AMD EPYC Zen 5, 2 threads). Reported by
OpenVINO's own performance counters (exec type per node), so the verdict does not depend on timing; the times
are printed for the record. Prints REPRODUCED and exits 0 while the Indices node runs on "ref", FIXED and exit 1
once it gets an optimised kernel (docs/upstream/_verdict.py); any other error propagates.
"""

import time

import numpy as np
import openvino as ov
from _verdict import verdict
from onnx import TensorProto, helper

SHAPE = [1, 16, 256, 256]


def maxpool(with_indices: bool):
    outs = ["Y", "I"] if with_indices else ["Y"]
    node = helper.make_node("MaxPool", ["X"], outs, kernel_shape=[2, 2], strides=[2, 2])
    pooled = [1, 16, 128, 128]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, pooled)]
        + ([helper.make_tensor_value_info("I", TensorProto.INT64, pooled)] if with_indices else []),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def run(with_indices: bool, x: np.ndarray) -> tuple[set[str], float]:
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(maxpool(with_indices).SerializeToString(), b""),
        "CPU",
        {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": 2},
    )
    req = compiled.create_infer_request()
    req.infer({0: x})
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        req.infer({0: x})
        times.append(time.perf_counter() - t0)
    # the pooling node: "MaxPool" where OpenVINO has a kernel for it, "Reference" where it falls back to its
    # reference implementation (the node then also computes Indices)
    kinds = {f"{p.node_type}:{p.exec_type}" for p in req.profiling_info if p.node_type in ("MaxPool", "Reference")}
    return kinds, float(np.median(times)) * 1e3


x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
plain_kinds, plain_ms = run(False, x)
idx_kinds, idx_ms = run(True, x)
slow = any(k.startswith("Reference:") for k in idx_kinds) and not any(k.startswith("Reference:") for k in plain_kinds)
verdict(
    slow,
    f"openvino {ov.__version__}: MaxPool 2x2 on {SHAPE} without Indices runs {sorted(plain_kinds)} in {plain_ms:.2f} ms, "
    f"with Indices {sorted(idx_kinds)} in {idx_ms:.2f} ms ({idx_ms / plain_ms:.0f}x)",
)
