import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness.backends import ModelArtifact, get_backend
from harness.core.config import RunConfig

CFG = RunConfig(threads=1)


def convtranspose_model(x_shape, w, b=None, symbolic_batch=False, opset=18, **attrs):
    """A one-node ConvTranspose model with W (and B) as initializers."""
    inits = [numpy_helper.from_array(np.asarray(w, np.float32), "W")]
    inputs = ["X", "W"]
    if b is not None:
        inits.append(numpy_helper.from_array(np.asarray(b, np.float32), "B"))
        inputs.append("B")
    dims = ["N" if symbolic_batch else x_shape[0], *x_shape[1:]]
    node = helper.make_node("ConvTranspose", inputs, ["Y"], name="ct", **attrs)
    g = helper.make_graph(
        [node],
        "ct",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, dims)],
        [
            helper.make_tensor_value_info(
                "Y", TensorProto.FLOAT, ["N", "M"] + [f"d{i}" for i in range(len(x_shape) - 2)]
            )
        ],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def run_on(backend_id: str, model, feeds, tmp_path, name="m"):
    path = tmp_path / f"{name}-{backend_id}.onnx"
    onnx.save(model, str(path))
    shapes = {k: tuple(v.shape) for k, v in feeds.items()}
    art = ModelArtifact(str(path), shapes, {k: "float32" for k in feeds})
    return get_backend(backend_id).compile(art, CFG).run(feeds)
