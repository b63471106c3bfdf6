"""Float64 reference outputs.

- zoo models: the PyTorch module itself, converted to float64;
- any ONNX file: the graph converted to float64 and evaluated by `onnx.reference`, with ConvTranspose
  replaced by convtx's own implementation of the spec (`harness.core.convtranspose`), because
  `onnx.reference` is wrong for grouped ConvTranspose and for `output_shape`.
"""

from __future__ import annotations

import numpy as np

from harness.core.convtranspose import conv_transpose, resolve

_FLOATS = (1, 10, 16)  # FLOAT, FLOAT16, BFLOAT16 -> evaluated as DOUBLE


def zoo_reference(spec, size: int, feeds: dict[str, np.ndarray], seed: int) -> list[np.ndarray]:
    """Outputs of the zoo model in float64 (same seeded weights as the exported model)."""
    import torch

    module = spec.build(size, seed=seed).double()
    args = [torch.from_numpy(np.asarray(v, dtype=np.float64)) for v in feeds.values()]
    with torch.inference_mode():
        out = module(*args)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.numpy().astype(np.float64) for o in outs]


def _make_conv_transpose_op():
    from onnx.reference.op_run import OpRun

    class ConvTranspose(OpRun):
        op_domain = ""

        def _run(
            self,
            X,
            W,
            B=None,
            auto_pad=None,
            dilations=None,
            group=None,
            kernel_shape=None,
            output_padding=None,
            output_shape=None,
            pads=None,
            strides=None,
        ):
            attrs = {
                "auto_pad": auto_pad or "NOTSET",
                "dilations": dilations,
                "group": group or 1,
                "kernel_shape": kernel_shape,
                "output_padding": output_padding,
                "output_shape": output_shape,
                "pads": pads,
                "strides": strides,
            }
            p = resolve(attrs, X.shape, W.shape, None if B is None else B.shape)
            return (conv_transpose(X, W, B, p).astype(X.dtype),)

    return ConvTranspose


def to_float64(model):
    """A copy of `model` in which every float tensor (inputs, weights, constants, casts) is float64."""
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)

    def fix_tensor(t):
        if t.data_type in _FLOATS:
            arr = numpy_helper.to_array(t).astype(np.float64)
            t.CopyFrom(numpy_helper.from_array(arr, t.name))

    def fix_type(tp):
        if tp.HasField("tensor_type") and tp.tensor_type.elem_type in _FLOATS:
            tp.tensor_type.elem_type = onnx.TensorProto.DOUBLE

    def fix_graph(g):
        for t in g.initializer:
            fix_tensor(t)
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            fix_type(vi.type)
        for node in g.node:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    fix_tensor(a.t)
                elif a.type == onnx.AttributeProto.GRAPH:
                    fix_graph(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sub in a.graphs:
                        fix_graph(sub)
                elif a.name == "to" and node.op_type == "Cast" and a.i in _FLOATS:
                    a.i = onnx.TensorProto.DOUBLE
                elif a.name == "dtype" and a.type == onnx.AttributeProto.INT and a.i in _FLOATS:
                    a.i = onnx.TensorProto.DOUBLE

    fix_graph(m.graph)
    return m


def onnx_reference(model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Evaluate any ONNX model in float64 (float inputs promoted), ConvTranspose per the spec."""
    from onnx.reference import ReferenceEvaluator

    m64 = to_float64(model)
    sess = ReferenceEvaluator(m64, new_ops=[_make_conv_transpose_op()])
    feeds64 = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in feeds.items()}
    outs = sess.run(None, feeds64)
    return [np.asarray(o, dtype=np.float64) if np.asarray(o).dtype.kind == "f" else np.asarray(o) for o in outs]
