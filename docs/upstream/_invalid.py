"""Shared by the reproducers of invalid ConvTranspose nodes: the minimal node that breaks one spec rule, and
whether an engine runs it (a defect: it should refuse the model). numpy, onnx and the engine only.
"""

import numpy as np
from onnx import helper, numpy_helper


def model(x_shape, w_shape, attrs: dict, bias_len: int | None = None):
    """One ConvTranspose (weights of ones, bias of `bias_len` ones if given) in an opset-18 model."""
    inits = [numpy_helper.from_array(np.ones(w_shape, np.float32), "W")]
    inputs = ["X", "W"]
    if bias_len is not None:
        inits.append(numpy_helper.from_array(np.ones(bias_len, np.float32), "B"))
        inputs.append("B")
    node = helper.make_node("ConvTranspose", inputs, ["Y"], name="convt", **attrs)
    out = helper.make_tensor_value_info("Y", 1, ["n", "m"] + [f"d{i}" for i in range(len(x_shape) - 2)])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", 1, list(x_shape))], [out], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    return m


def run_tvm(m, x: np.ndarray) -> np.ndarray:
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    mod = from_onnx(m, shape_dict={"X": list(x.shape)})
    vm = relax.VirtualMachine(relax.build(mod, target="llvm"), tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


def run_openvino(m, x: np.ndarray) -> np.ndarray:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(m.SerializeToString(), b""), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    return compiled({0: x})[compiled.output(0)]


def outcome(run, case) -> tuple[str, str]:
    """("accepted", output shape) or ("refused", the engine's error: type and first line) for one case
    (name, x_shape, w_shape, attrs[, bias_len])."""
    name, x_shape, w_shape, attrs, *bias = case
    x = np.ones(x_shape, np.float32)
    try:
        y = run(model(x_shape, w_shape, attrs, *bias), x)
    except Exception as e:  # noqa: BLE001 — how the engine refuses is what is recorded
        first = (str(e).strip().splitlines() or [""])[0]
        return "refused", f"{type(e).__name__}: {first[:140]}"
    return "accepted", f"output shape {list(y.shape)}"


def still_accepted(engine: str, run, cases) -> None:
    """The verdict of an "accepts invalid nodes" reproducer: one line per case, then REPRODUCED while `engine` still
    runs every one of `cases`, FIXED naming those it now refuses (docs/upstream/_verdict.py)."""
    from _verdict import verdict

    results = [(c[0], *outcome(run, c)) for c in cases]
    for name, v, what in results:
        print(f"{name}: {v} ({what})")
    refused = [name for name, v, _ in results if v != "accepted"]
    verdict(
        not refused,
        f"{engine} runs {len(results) - len(refused)} of {len(results)} invalid nodes"
        + (f"; now refuses: {', '.join(refused)}" if refused else ""),
    )


def run_iree(m, x: np.ndarray) -> np.ndarray:
    """IREE 3.13: the ONNX importer, iree-compile for this CPU, the local-task driver (docs/upstream/_iree.py)."""
    from _iree import compile_onnx, run

    named = type(m)()
    named.CopyFrom(m)
    named.graph.name = "main_graph"  # the module's entry function
    return run(compile_onnx(named), x)
