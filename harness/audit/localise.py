"""Divergence localisation: which node of a model first computes something else on an engine than in the
float64 reference, and a reduced model around it.

Every intermediate tensor is exposed as a graph output, on the engine (in an isolated worker) and in the
float64 evaluation of the same graph; they are compared in topological order and the first node whose
output fails the numerical policy is the culprit. Exposing outputs can change what an engine fuses, so a
divergence that vanishes once intermediates are visible is reported as such rather than pinned on a node.
The reproducer is that node alone, fed with the reference's values of its inputs (float32), with its
expected output: `<stem>-<node>.onnx` + `.npz`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Localisation:
    backend: str
    node: str | None  # the first divergent node, None when none could be pinned
    op: str | None
    position: int | None  # index in topological order
    detail: str  # the comparison that failed, or why no node was pinned
    reproducer: str | None  # path of the reduced model
    reproduces: bool | None  # the reduced model diverges on the engine too

    def line(self) -> str:
        if self.node is None:
            return f"{self.backend}: {self.detail}"
        rep = f"; reproducer {self.reproducer} ({'reproduces' if self.reproduces else 'does not reproduce alone'})"
        return (
            f"{self.backend}: first divergence at node {self.node!r} ({self.op}, #{self.position}): {self.detail}{rep}"
        )


def _float_outputs(model) -> list[tuple[int, object, str]]:
    """(node index, node, output name) for every float tensor a node produces, in topological order."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    types = {
        vi.name: vi.type.tensor_type.elem_type for vi in list(inferred.graph.value_info) + list(inferred.graph.output)
    }
    return [(i, n, o) for i, n in enumerate(model.graph.node) for o in n.output if o and types.get(o) in (1, 10, 11)]


def expose(model, names: list[str]):
    """A copy of `model` whose outputs are `names` (in that order)."""
    import onnx
    from onnx import helper

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    vis = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.extend(
        vis[n] if n in vis else helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names
    )
    return m


def reduce_to_node(model, node, values: dict[str, np.ndarray], output: str | None = None):
    """The node alone: its tensor inputs that are initializers stay initializers, the others become graph
    inputs (fed with `values`); `output` (default: its first) is the graph output."""
    import onnx
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    inputs, init_list, nodes, feeds = [], [], [], {}
    for name in node.input:
        if not name:
            continue
        if name in inits:
            init_list.append(inits[name])
        elif name in consts:
            nodes.append(consts[name])
        else:
            arr = np.asarray(values[name])
            arr = arr.astype(np.float32) if arr.dtype.kind == "f" else arr
            feeds[name] = arr
            inputs.append(helper.make_tensor_value_info(name, numpy_helper.from_array(arr).data_type, arr.shape))
    output = output or node.output[0]
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    vis = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    if output in vis:
        out = vis[output]
    else:
        rank = np.asarray(values[output]).ndim if output in values else 0
        out = helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, [f"d{i}" for i in range(rank)])
    graph = helper.make_graph(nodes + [node], f"reduced_{node.op_type}", inputs, [out], init_list)
    m = helper.make_model(graph, opset_imports=list(model.opset_import))
    m.ir_version = model.ir_version
    return m, feeds


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "node"


def _run_one(model, feeds: dict, refs: list, backend: str, out: Path, label: str, build_dir: Path):
    """The model on `backend` in an isolated worker; returns the record."""
    import onnx

    from harness.core.config import RunConfig
    from harness.pipeline.prepare import ModelRef, prepared_from_arrays
    from harness.pipeline.sweep import Plan, run_plan

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{label}.onnx"
    onnx.save(model, str(path))
    shapes = {k: tuple(v.shape) for k, v in feeds.items()}
    ref = ModelRef(label, path=str(path.resolve()), shapes=tuple(shapes.items()))
    batch = next(iter(shapes.values()))[0] if shapes and next(iter(shapes.values())) else 1
    prep = prepared_from_arrays(
        ref,
        batch,
        model,
        str(path.resolve()),
        feeds,
        refs,
        out / f"{label}.npz",
        "float64 evaluation of the same graph",
    )
    (rec,) = run_plan(
        Plan((ref,), ("native",), (backend,), (batch,)),
        RunConfig(threads=1, timing=None, case_timeout_s=600),
        "localise",
        build_dir,
        out / "logs",
        sink=lambda r: None,
        say=lambda s: None,
        prepared={(ref, batch): prep},
    )
    return rec


def localise(model_path: str, backend: str, feeds: dict[str, np.ndarray], out: Path, build_dir: Path) -> Localisation:
    import onnx

    from harness.checking.reference import onnx_reference
    from harness.core.onnx_io import fix_input_shapes

    model = fix_input_shapes(onnx.load(model_path), {k: tuple(v.shape) for k, v in feeds.items()})
    candidates = _float_outputs(model)
    names = [o for _, _, o in candidates]
    exposed = expose(model, names)
    ref_values = dict(zip(names, onnx_reference(exposed, feeds)))
    stem = _safe(Path(model_path).stem)
    rec = _run_one(exposed, feeds, [ref_values[n] for n in names], backend, out, f"{stem}-exposed", build_dir)
    if rec.status in ("error", "skipped"):
        return Localisation(
            backend,
            None,
            None,
            None,
            f"the model with every intermediate exposed does not run: {rec.reason}",
            None,
            None,
        )
    for (pos, node, name), res in zip(candidates, rec.numerics.outputs):
        if res.passed:
            continue
        label = f"{stem}-{_safe(node.name or name)}"
        reduced, rfeeds = reduce_to_node(model, node, {**feeds, **ref_values}, output=name)
        r = _run_one(reduced, rfeeds, [ref_values[name]], backend, out, label, build_dir)
        # shapes and the worst index as the record's JSON writes them: [1, 2, 10, 9]
        detail = (
            f"output {name!r}: shape {list(res.shape)} vs reference {list(res.ref_shape)}"
            if res.shape != res.ref_shape
            else f"output {name!r}: rel_l2 {res.rel_l2}, {res.mismatches} elements off, worst at "
            f"{list(res.worst_index) if res.worst_index is not None else None}"
        )
        return Localisation(
            backend, node.name or name, node.op_type, pos, detail, str(out / f"{label}.onnx"), r.status == "mismatch"
        )
    return Localisation(
        backend,
        None,
        None,
        None,
        "every intermediate matches once exposed: the divergence "
        "depends on what the engine fuses when intermediates are hidden",
        None,
        None,
    )


def localise_record(rec, ref, cfg, build: Path):
    """`validate`: find the first divergent node of a mismatching case (progress on stderr); the record gains
    details.localisation ({node, op, position, detail, reproducer, reproduces, summary}). A localisation that
    fails says so there (node None) rather than hiding the verdict."""
    import sys

    from harness.backends import get_backend
    from harness.pipeline.case import lowered_path, rewritten_path
    from harness.pipeline.prepare import prepare

    print(f"localising {rec.case_id} ...", file=sys.stderr)
    try:
        prep = prepare(ref, rec.batch, cfg.seed, build)
        path, _ = lowered_path(prep, rec.lowering, build, get_backend(rec.backend).lowering_options)
        path, _ = rewritten_path(path, get_backend(rec.backend).needs_rewrites, build)
        feeds, _ = prep.load_data()
        loc = localise(path, rec.backend, feeds, build / "localise" / rec.case_id.replace("/", "_"), build)
        info = {
            "node": loc.node,
            "op": loc.op,
            "position": loc.position,
            "detail": loc.detail,
            "reproducer": loc.reproducer,
            "reproduces": loc.reproduces,
            "summary": loc.line(),
        }
    except Exception as e:  # noqa: BLE001 — localisation is a diagnosis; its failure must not hide the verdict
        info = {"node": None, "summary": f"localisation failed: {type(e).__name__}: {e}"}
    return rec.with_details(localisation=info)
