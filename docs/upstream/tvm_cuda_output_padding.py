"""apache/tvm#19524: Relax conv2d_transpose on CUDA gave wrong values with output_padding > 0 when scheduled
by dlight's Fallback rule (reported on a GPU in May 2026; the thread is closed, its fix not identified).

ConvTranspose 1x16x7x7 * 16x3x3x3, stride 2, pads 1, output_padding 1 -> 1x3x14x14, through TVM's ONNX
frontend and its default CUDA pipeline (dlight), compared with TVM on LLVM and with the float64 definition.
REPRODUCED (exit 0) while the bug is present, FIXED (exit 1) when CUDA agrees; CANNOT RUN (exit 2) when there is
no GPU to run it on (the CUDA build is still made and checked, so the script is exercised everywhere); see
docs/upstream/_verdict.py. Not verified on convtx's machine (no GPU).
"""
import ctypes

import numpy as np
import tvm
from _verdict import cannot_run, verdict
from onnx import helper, numpy_helper
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

rng = np.random.default_rng(0)
x = rng.standard_normal((1, 16, 7, 7)).astype(np.float32)
w = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
graph = helper.make_graph([node], "output_padding", [helper.make_tensor_value_info("X", 1, [1, 16, 7, 7])],
                          [helper.make_tensor_value_info("Y", 1, [1, 3, 14, 14])], [numpy_helper.from_array(w, "W")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
model.ir_version = 8

# float64 definition: y[o] += x[i] * w[k] at o = i*s - pad + k
ref = np.zeros((1, 3, 15, 15))
for i in range(7):
    for j in range(7):
        for a in range(3):
            for b in range(3):
                oi, oj = 2 * i - 1 + a, 2 * j - 1 + b
                if 0 <= oi < 14 and 0 <= oj < 14:
                    ref[0, :, oi, oj] += np.einsum("c,co->o", x[0, :, i, j].astype(np.float64), w[:, :, a, b])
ref = ref[:, :, :14, :14]

target = tvm.target.Target({"kind": "cuda", "arch": "sm_80", "max_shared_memory_per_block": 49152,
                            "max_threads_per_block": 1024}, host={"kind": "llvm"})
ex = relax.build(from_onnx(model), target=target)
n = sum(m.inspect_source().count('extern "C" __global__')
        for m in ex.mod._collect_from_import_tree(lambda m: m.kind == "cuda"))
print(f"tvm {tvm.__version__}: built for {target.attrs['arch']} ({n} CUDA kernels)")
try:
    ctypes.CDLL("libcuda.so.1")
    gpu = tvm.cuda(0).exist
except OSError:
    gpu = False
if not gpu:
    cannot_run("no CUDA device here (no NVIDIA driver or no GPU)")
vm = relax.VirtualMachine(ex, tvm.cuda(0))
got = vm["main"](tvm.runtime.tensor(x, tvm.cuda(0))).numpy().astype(np.float64)
err = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
verdict(err >= 1e-5, f"tvm-cuda vs float64 definition: rel_l2 {err:.3g} (tolerance 1e-5)")
