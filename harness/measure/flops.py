"""FLOPs of a model: 2 x multiply-accumulates of Conv, ConvTranspose, MatMul and Gemm.

Two counts:
- `useful=True`: products that land in the output. For ConvTranspose only the (input, tap) pairs whose
  scatter position o = i*s - pad_begin + k*d falls inside the output count. Taken on the model before
  lowering, it is the same for every lowering, so GFLOP/s from it compare lowerings fairly.
- `useful=False`: what the graph's ops perform: every Conv output times its taps (zeros inserted by a
  lowering included), every scattered ConvTranspose product, every MatMul product.
Additions of overlap-add, Col2Im, bias and padding are not counted.
"""

from __future__ import annotations

import math


def _useful_convtranspose(node, x: tuple, w: tuple) -> int:
    """Exact count of (input element, tap) products that land inside the output, x 2."""
    from onnx import helper

    from harness.core.convtranspose import resolve

    p = resolve({a.name: helper.get_attribute_value(a) for a in node.attribute}, x, w)
    per_axis = []
    for ax, (i_n, k_n) in enumerate(zip(x[2:], p.kernel_shape)):
        s, d, pb, o_n = p.strides[ax], p.dilations[ax], p.pads_begin[ax], p.output_spatial[ax]
        per_axis.append(sum(1 for i in range(i_n) for k in range(k_n) if 0 <= i * s - pb + k * d < o_n))
    return 2 * x[0] * x[1] * w[1] * math.prod(per_axis)


def count_flops(model, useful: bool = False) -> int | None:
    """FLOPs of one inference, or None when a needed shape is unknown (symbolic or not inferable)."""
    import onnx

    try:
        m = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 — no shapes, no count: the record says None
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
                if useful:
                    total += _useful_convtranspose(node, x, w)
                else:  # each input element scatters into M/group x k... outputs
                    total += 2 * math.prod(x) * w[1] * math.prod(w[2:])
            elif op == "MatMul":
                a, y = shapes[node.input[0]], shapes[node.output[0]]
                total += 2 * math.prod(y) * a[-1]
            else:  # Gemm
                a, y = shapes[node.input[0]], shapes[node.output[0]]
                trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
                total += 2 * math.prod(y) * (a[0] if trans_a else a[-1])
        except (KeyError, ValueError):
            return None
    return total
