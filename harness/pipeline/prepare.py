"""Turning a model reference into what every case of it needs: the ONNX file, seeded inputs, the float64
reference outputs and the useful FLOP count. Done once per (model, size, batch), in a worker process."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from harness.core.errors import ConvtxError


@dataclass(frozen=True)
class ModelRef:
    """A zoo model at a size, or an ONNX file with optional shape overrides. Batch is applied to zoo
    models; an ONNX file's batch is whatever its (overridden) input shapes say."""

    name: str  # zoo name, or the file's stem
    size: int | None = None  # zoo only
    path: str | None = None  # file only
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # file only: --shape overrides

    @property
    def is_zoo(self) -> bool:
        return self.path is None

    @property
    def label(self) -> str:
        """The `model` part of a case id: `cae@32` for zoo models, the file's stem otherwise."""
        return f"{self.name}@{self.size}" if self.is_zoo else self.name


@dataclass(frozen=True)
class Prepared:
    """Everything the cases of one model share; arrays live in .npz files so workers can load them."""

    ref: ModelRef
    batch: int
    onnx_path: str
    input_shapes: dict[str, tuple[int, ...]]
    input_dtypes: dict[str, str]
    data_path: str  # npz: inputs as "in:<name>", reference outputs as "ref:<i>"
    flops: int | None
    reference: str  # how the reference was computed
    export: dict = field(default_factory=dict)
    conv_transpose_nodes: int = 0
    min_bytes: int | None = None  # compulsory memory traffic: inputs + weights + outputs, once each
    sanitation: dict = field(default_factory=dict)  # a file model: what harness/pipeline/sanitize.py did

    def to_json(self) -> dict:
        d = asdict(self)
        d["ref"] = asdict(self.ref)
        return d

    @staticmethod
    def from_json(d: dict) -> Prepared:
        r = d["ref"]
        ref = ModelRef(r["name"], r["size"], r["path"], tuple((n, tuple(s)) for n, s in r["shapes"]))
        return Prepared(**{**d, "ref": ref, "input_shapes": {k: tuple(v) for k, v in d["input_shapes"].items()}})

    def load_data(self) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
        with np.load(self.data_path) as z:
            feeds = {n: z[f"in:{n}"] for n in self.input_shapes}
            refs, i = [], 0
            while f"ref:{i}" in z.files:
                refs.append(z[f"ref:{i}"])
                i += 1
        return feeds, refs


def prepared_from_arrays(
    ref: ModelRef,
    batch: int,
    model,
    onnx_path: str,
    feeds: dict[str, np.ndarray],
    refs: Sequence[np.ndarray] | Callable[[], Sequence[np.ndarray]],
    data_path: Path,
    reference: str,
    *,
    input_dtypes: dict[str, str] | None = None,
    flops: int | None = None,
    export: dict | None = None,
) -> Prepared:
    """The Prepared of `model` (its ONNX file at `onnx_path`) fed with `feeds`, whose expected outputs are
    `refs`: the arrays go to `data_path` (npz: inputs "in:<name>", outputs "ref:<i>") as a cache entry
    (harness.core.cache: a kill never leaves a half-written file trusted), and what every case of it shares is
    counted — ConvTranspose nodes and the compulsory bytes (inputs + weights + float32 outputs, once each).

    `refs` may be a function computing them (the float64 reference is the expensive part): it is called only
    when `data_path` is not already a valid entry, so `data_path` must then name its content (prepare()'s
    carries the model's key, the batch and the seed). Given arrays, the entry is always rewritten.
    `reference` says how the expected outputs were obtained; `input_dtypes` defaults to the feeds' dtypes."""
    from harness.core import cache

    data_path = Path(data_path)
    if callable(refs):
        outs = None if cache.is_valid(data_path) else list(refs())
    else:
        outs = list(refs)
    if outs is not None:
        arrays = {f"in:{n}": v for n, v in feeds.items()}
        arrays.update({f"ref:{i}": np.asarray(r) for i, r in enumerate(outs)})
        tmp = cache.tmp_path(data_path)
        np.savez(tmp, **arrays)
        cache.commit(tmp, data_path)
    shapes = {n: tuple(int(d) for d in v.shape) for n, v in feeds.items()}
    dtypes = input_dtypes if input_dtypes is not None else {n: str(v.dtype) for n, v in feeds.items()}
    n_ct = sum(1 for n in model.graph.node if n.op_type == "ConvTranspose")
    pre = Prepared(ref, batch, onnx_path, shapes, dtypes, str(data_path), flops, reference, export or {}, n_ct)
    if outs is None:
        _, outs = pre.load_data()
    out_bytes = sum(int(np.prod(np.shape(r))) * 4 for r in outs)  # float32 outputs
    in_bytes = sum(int(v.nbytes) for v in feeds.values())
    return replace(pre, min_bytes=in_bytes + _weight_bytes(model) + out_bytes)


def prepare(ref: ModelRef, batch: int, seed: int, build_dir: Path) -> Prepared:
    import onnx

    from harness.checking.reference import onnx_reference, zoo_reference
    from harness.core.onnx_io import (
        fix_input_shapes,
        graph_inputs,
        load_model,
        model_digest,
        resolve_shapes,
        synthesise_inputs,
    )
    from harness.measure.flops import count_flops

    if ref.is_zoo:
        from harness.pipeline.export import export_zoo
        from models import get_model

        spec = get_model(ref.name)
        exp = export_zoo(spec, ref.size, batch, seed, build_dir / "onnx")
        model = onnx.load(exp.path)
        specs = graph_inputs(model)
        shapes = {n: tuple(s) for n, s in spec.inputs(ref.size, batch).items()}
        if [s.name for s in specs] != list(shapes):
            raise ConvtxError(
                f"{exp.path}: exported inputs {[s.name for s in specs]} differ from the registry's {list(shapes)}"
            )
        onnx_path, export_info = exp.path, asdict(exp)
        key = exp.cache_key
        how = "pytorch module in float64"
    else:
        model = load_model(ref.path)
        specs = graph_inputs(model)
        shapes = resolve_shapes(specs, dict(ref.shapes), ref.path)
        onnx_path, export_info = str(Path(ref.path).resolve()), {}
        key = hashlib.sha256(
            model_digest(ref.path).encode() + repr(sorted(shapes.items())).encode() + str(seed).encode()
        ).hexdigest()[:20]
        how = "onnx.reference in float64, ConvTranspose from the spec (harness.core.convtranspose)"

    feeds = synthesise_inputs(specs, shapes, seed)
    sanitation: dict = {}
    if not ref.is_zoo:  # bound, folded and checked in ORT before anything lowers or compiles it
        from harness.pipeline.sanitize import sanitize

        onnx_path, sanitation = sanitize(ref.path, model, shapes, feeds, build_dir)

    def expected() -> list[np.ndarray]:
        if ref.is_zoo:
            return zoo_reference(spec, ref.size, feeds, seed)
        return onnx_reference(fix_input_shapes(model, shapes), feeds)

    data_path = build_dir / "data" / f"{ref.label.replace('@', '-')}-b{batch}-{key}.npz"
    prep = prepared_from_arrays(
        ref,
        batch,
        model,
        onnx_path,
        feeds,
        expected,
        data_path,
        how,
        input_dtypes={s.name: s.dtype for s in specs},
        flops=count_flops(fix_input_shapes(model, shapes), useful=True),
        export=export_info,
    )
    return replace(prep, sanitation=sanitation)


def _weight_bytes(model) -> int:
    """Bytes of every initializer and Constant tensor of the main graph."""
    from onnx import AttributeProto, helper

    def nbytes(t) -> int:
        try:
            item = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
        except (KeyError, TypeError, ValueError):
            item = 4
        return int(np.prod(t.dims, dtype=np.int64)) * item if len(t.dims) else item

    total = sum(nbytes(t) for t in model.graph.initializer)
    for n in model.graph.node:
        if n.op_type == "Constant":
            total += sum(nbytes(a.t) for a in n.attribute if a.type == AttributeProto.TENSOR)
    return total
