"""Useful FLOPs of a model: 2 x multiply-accumulates of Conv, ConvTranspose, MatMul and Gemm.

Counted on the model as given (before any lowering), so that a lowering that multiplies by inserted zeros
does not get credit for that work: GFLOP/s derived from this count are comparable across lowerings.
"""
from __future__ import annotations

import math


def count_flops(model) -> int | None:
    """FLOPs of one inference, or None when a needed shape is unknown (symbolic or not inferable)."""
    import onnx

    try:
        m = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:
        return None
    shapes: dict[str, tuple] = {}
    for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(d.dim_value for d in dims)
    for t in m.graph.initializer:
        shapes[t.name] = tuple(t.dims)

    total = 0
    for node in m.graph.node:
        op = node.op_type
        if op not in ("Conv", "ConvTranspose", "MatMul", "Gemm"):
            continue
        try:
            if op == "Conv":
                w, y = shapes[node.input[1]], shapes[node.output[0]]
                # each output element: Cin/group x k... MACs
                total += 2 * math.prod(y) * w[1] * math.prod(w[2:])
            elif op == "ConvTranspose":
                x, w = shapes[node.input[0]], shapes[node.input[1]]
                # each input element scatters into M/group x k... outputs
                total += 2 * math.prod(x) * w[1] * math.prod(w[2:])
            elif op == "MatMul":
                a, y = shapes[node.input[0]], shapes[node.output[0]]
                total += 2 * math.prod(y) * a[-1]
            else:  # Gemm
                a, y = shapes[node.input[0]], shapes[node.output[0]]
                trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
                total += 2 * math.prod(y) * (a[0] if trans_a else a[-1])
        except KeyError:
            return None
    return total
