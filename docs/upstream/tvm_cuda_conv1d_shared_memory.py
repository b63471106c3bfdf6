"""TVM 0.27's default CUDA pipeline (dlight) schedules a long 1-D convolution with a shared-memory buffer far
above the target's limit: found by `make build-cuda` on the zoo's wave1d@8192 (its final Conv1d(16 -> 1, k7,
pad 3) + Tanh over 8192 samples), where ptxas refuses the kernel ("uses too much shared data (0x80000 bytes,
0xc000 max)"), although the target says max_shared_memory_per_block = 49152: the kernel caches the whole
input, `__shared__ alignas(64) float X_shared_ptr[131072]` (16 x 8192 floats, 512 KiB). On a GPU the library would fail
to load (TVM compiles the kernels at load time), so every tvm-cuda case of wave1d@8192 would be an error.

Conv 1x16x8192 * 1x16x7, pads 3 -> Tanh, through TVM's ONNX frontend and relax.build for sm_80. REPRODUCED
(exit 0) while a kernel declares more shared memory than the target allows (checked in the generated source,
and by ptxas when nvcc is on PATH), FIXED (exit 1) when it fits (docs/upstream/_verdict.py). Needs no GPU.
"""
import re
import shutil
import subprocess
import tempfile

import numpy as np
import tvm
from _verdict import verdict
from onnx import helper, numpy_helper
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

LIMIT = 49152
L = 8192
w = np.random.default_rng(0).standard_normal((1, 16, 7)).astype(np.float32)
nodes = [helper.make_node("Conv", ["X", "W"], ["C"], pads=[3, 3]), helper.make_node("Tanh", ["C"], ["Y"])]
graph = helper.make_graph(nodes, "conv1d_long", [helper.make_tensor_value_info("X", 1, [1, 16, L])],
                          [helper.make_tensor_value_info("Y", 1, [1, 1, L])], [numpy_helper.from_array(w, "W")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
model.ir_version = 8

target = tvm.target.Target({"kind": "cuda", "arch": "sm_80", "max_shared_memory_per_block": LIMIT,
                            "max_threads_per_block": 1024}, host={"kind": "llvm"})
ex = relax.build(from_onnx(model), target=target)
src = "\n".join(m.inspect_source() for m in ex.mod._collect_from_import_tree(lambda m: m.kind == "cuda"))
sizes = {"float": 4, "half": 2, "int": 4, "double": 8}
shared = [(t, int(n)) for t, n in re.findall(r"__shared__\s+(?:(?:alignas|__align__)\(\d+\)\s+)?(\w+)\s+\w+\[(\d+)\]", src)]
worst = max((sizes.get(t, 4) * n for t, n in shared), default=0)
print(f"TVM {tvm.__version__}: built for sm_80; largest __shared__ buffer {worst} bytes (limit {LIMIT})")
bad = worst > LIMIT
if shutil.which("nvcc"):
    with tempfile.TemporaryDirectory() as d:
        open(f"{d}/k.cu", "w").write(src)
        p = subprocess.run(["nvcc", "--cubin", "-arch", "sm_80", "-o", f"{d}/k.cubin", f"{d}/k.cu"],
                           capture_output=True, text=True)
        err = [ln for ln in p.stderr.splitlines() if "error" in ln]
        print("ptxas:", err[0] if err else "ok")
        bad = bad or p.returncode != 0
verdict(bad, f"largest __shared__ buffer {worst} bytes, limit {LIMIT}"
        + (": a kernel needs more shared memory than the target allows" if bad else ": it fits"))
