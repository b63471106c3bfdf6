"""IREE 3.13's ONNX import leaves some upsampling ops unconverted, and iree-compile refuses them ("failed to legalize
operation 'torch.operator' ... onnx.Resize" / "... 'torch.aten.max_unpool2d'"), where ONNX Runtime runs each: found by
`convtx conformance --backends iree-cpu` on the ONNX backend tests.

One node each on x 1x1x4x4: MaxUnpool (kernel 2, stride 2, indices given), Resize with `axes` [2, 3] (opset 18),
Resize nearest to sizes 7x8 with keep_aspect_ratio_policy not_larger (7x7), Resize nearest with coordinate_transformation_mode
align_corners, Resize cubic with exclude_outside 1. The neighbour — Resize nearest by scales [1, 1, 2, 2], as the
zoo's unpool_nearest exports it — compiles. Prints REPRODUCED and exits 0 while every one of the five is refused and
the neighbour compiles, FIXED and exit 1 once any compiles (docs/upstream/_verdict.py); any other error propagates.
"""

import iree.compiler as ic
import numpy as np
from _iree import compile_onnx, first_error, version
from _verdict import verdict
from onnx import TensorProto, helper, numpy_helper

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])


def graph(nodes, inits, inputs=(X,), out=Y):
    g = helper.make_graph(nodes, "main_graph", list(inputs), [out], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def scales(name="scales", v=(1, 1, 2, 2)):
    return numpy_helper.from_array(np.array(v, np.float32), name)


def sizes(v=(1, 1, 8, 8)):
    return numpy_helper.from_array(np.array(v, np.int64), "sizes")


CASES = {
    "MaxUnpool": graph(
        [helper.make_node("MaxUnpool", ["x", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
        [],
        (X, helper.make_tensor_value_info("i", TensorProto.INT64, [1, 1, 4, 4])),
    ),
    "Resize axes [2, 3]": graph(
        [helper.make_node("Resize", ["x", "", "s2"], ["y"], mode="nearest", axes=[2, 3])], [scales("s2", (2, 2))]
    ),
    "Resize keep_aspect_ratio_policy not_larger": graph(
        [
            helper.make_node(
                "Resize", ["x", "", "", "sizes"], ["y"], mode="nearest", keep_aspect_ratio_policy="not_larger"
            )
        ],
        [sizes((1, 1, 7, 8))],
        out=helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 7, 7]),
    ),
    "Resize nearest align_corners": graph(
        [
            helper.make_node(
                "Resize", ["x", "", "", "sizes"], ["y"], mode="nearest", coordinate_transformation_mode="align_corners"
            )
        ],
        [sizes()],
    ),
    "Resize cubic exclude_outside": graph(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic", exclude_outside=1)], [scales()]
    ),
}
NEIGHBOUR = graph([helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")], [scales()])


def outcome(model) -> str:
    try:
        compile_onnx(model)
        return "compiles"
    except ic.CompilerToolError as e:
        return f"refused ({first_error(e)[:100]})"


seen = {name: outcome(m) for name, m in CASES.items()}
neighbour = outcome(NEIGHBOUR)
verdict(
    all(v.startswith("refused") for v in seen.values()) and neighbour == "compiles",
    f"iree {version()}: Resize nearest by scales {neighbour}; " + "; ".join(f"{k}: {v}" for k, v in seen.items()),
)
