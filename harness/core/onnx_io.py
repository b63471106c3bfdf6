"""Loading user ONNX files with one-line errors, and describing/synthesising their inputs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.core.errors import BadModelError, ConvtxError

# ONNX TensorProto elem_type -> numpy dtype name, for the types convtx can synthesise inputs of.
_ELEM_TO_NP = {
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
}


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: str  # numpy dtype name
    shape: tuple[int | str | None, ...]  # int, or the symbolic name / None for an unknown dimension


def load_model(path: str | os.PathLike, check: bool = True):
    """Read and check an ONNX file; every failure is a BadModelError naming the file."""
    import onnx

    p = Path(path)
    if not p.exists():
        raise BadModelError(f"{p}: no such file")
    if p.is_dir():
        raise BadModelError(f"{p}: is a directory, expected an .onnx file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise BadModelError(f"{p}: cannot read: {e.strerror}") from None
    if not data:
        raise BadModelError(f"{p}: empty file, expected an ONNX model")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001 — protobuf DecodeError and friends
        raise BadModelError(f"{p}: not an ONNX model (protobuf parse failed: {_first_line(e)})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise BadModelError(f"{p}: not an ONNX model (no graph or an empty graph)")
    if not model.opset_import:
        raise BadModelError(f"{p}: not an ONNX model (no opset_import)")
    if external_files(model, p):  # initializers, Constant nodes and subgraphs alike, from the model's folder
        try:
            onnx.load_external_data_for_model(model, str(p.parent))
        except Exception as e:  # noqa: BLE001 — onnx raises several kinds for a missing or short file
            raise BadModelError(f"{p}: external weights cannot be loaded: {_first_line(e)}") from None
    if check:
        try:
            onnx.checker.check_model(model, full_check=False)
        except Exception as e:  # noqa: BLE001 — the checker raises more than ValidationError
            raise BadModelError(f"{p}: fails the ONNX checker: {_first_line(e)}") from None
    return model


def external_files(model, model_path: str | os.PathLike) -> list[tuple[str, Path]]:
    """(location, file) of every tensor of `model` stored outside it — initializers, Constant nodes and the
    tensors of subgraphs — resolved against the model's folder, as every consumer resolves them (ONNX Runtime,
    `onnx.load`, the checker and the reference once `load_model` has loaded them). A location outside that
    folder is refused: a model is not a way to make convtx read another file."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    folder = Path(model_path).resolve().parent
    out = set()
    for t in _get_all_tensors(model):
        if not uses_external_data(t):
            continue
        loc = next((e.value for e in t.external_data if e.key == "location"), None)
        if not loc:
            raise BadModelError(f"{model_path}: tensor {t.name!r} is stored externally but names no location")
        f = (folder / loc).resolve()
        if os.path.isabs(loc) or (f != folder and folder not in f.parents):
            raise BadModelError(
                f"{model_path}: tensor {t.name!r} is stored at {loc!r}, which lies outside the model's folder; refused"
            )
        out.add((loc, f))
    return sorted(out)


def model_digest(path: str | os.PathLike) -> str:
    """sha256 of a model as its consumers see it: the .onnx bytes and, for each external data file it uses,
    the file's name and bytes (a changed .bin is a different model). The key of every cache entry built from
    a model (references, lowered models, compiled libraries)."""
    import hashlib

    import onnx

    p = Path(path)
    data = p.read_bytes()
    h = hashlib.sha256(data)
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # noqa: BLE001 — not parseable: its bytes are all there is to key
        return h.hexdigest()
    for loc, f in external_files(model, p):
        h.update(b"\0" + loc.encode() + b"\0")
        try:
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError as e:
            raise BadModelError(f"{p}: external data {loc!r} cannot be read: {e.strerror}") from None
    return h.hexdigest()


def graph_inputs(model) -> list[InputSpec]:
    """The real inputs (graph inputs that are not initializers), in order."""
    inits = {t.name for t in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise BadModelError(f"input {vi.name!r} is not a tensor; convtx feeds tensors only")
        dtype = _ELEM_TO_NP.get(tt.elem_type)
        if dtype is None:
            raise BadModelError(
                f"input {vi.name!r} has element type {tt.elem_type}, which convtx "
                f"cannot synthesise (known: {', '.join(sorted(set(_ELEM_TO_NP.values())))})"
            )
        dims: list[int | str | None] = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or None)
        specs.append(InputSpec(vi.name, dtype, tuple(dims)))
    return specs


def parse_shape_overrides(items: list[str] | None) -> dict[str, tuple[int, ...]]:
    """`["x=1x3x64x64", ...]` -> {"x": (1, 3, 64, 64)}."""
    out: dict[str, tuple[int, ...]] = {}
    for item in items or []:
        name, eq, dims = item.partition("=")
        try:
            if not eq or not name:
                raise ValueError
            shape = tuple(int(d) for d in dims.lower().split("x"))
            if any(d <= 0 for d in shape):
                raise ValueError
        except ValueError:
            raise ConvtxError(
                f"--shape {item!r}: expected NAME=D1xD2x... with positive integers, e.g. x=1x3x64x64"
            ) from None
        out[name] = shape
    return out


def resolve_shapes(
    specs: list[InputSpec], overrides: dict[str, tuple[int, ...]], source: str
) -> dict[str, tuple[int, ...]]:
    """Concrete input shapes: the model's static dims, symbolic ones from `overrides`."""
    known = [s.name for s in specs]
    for name in overrides:
        if name not in known:
            raise ConvtxError(f"--shape {name}=…: {source} has no input {name!r}; its inputs: {', '.join(known)}")
    shapes = {}
    for s in specs:
        if s.name in overrides:
            given = overrides[s.name]
            if len(given) != len(s.shape):
                raise ConvtxError(
                    f"--shape {s.name}={'x'.join(map(str, given))}: {source} declares rank "
                    f"{len(s.shape)} for {s.name!r} ({_fmt(s.shape)})"
                )
            for i, (g, d) in enumerate(zip(given, s.shape)):
                if isinstance(d, int) and d != g:
                    raise ConvtxError(
                        f"--shape {s.name}={'x'.join(map(str, given))}: dimension {i} is "
                        f"{d} in {source} ({_fmt(s.shape)})"
                    )
            shapes[s.name] = given
            continue
        if any(not isinstance(d, int) for d in s.shape):
            raise ConvtxError(
                f"{source}: input {s.name!r} has symbolic dimensions ({_fmt(s.shape)}); "
                f"give them with --shape {s.name}=" + "x".join(str(d) if isinstance(d, int) else "N" for d in s.shape)
            )
        shapes[s.name] = tuple(s.shape)  # type: ignore[arg-type]
    return shapes


def synthesise_inputs(specs: list[InputSpec], shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """Seeded inputs: standard normal for floats, small non-negative integers for ints."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for s in specs:
        shape = shapes[s.name]
        if s.dtype.startswith("float"):
            feeds[s.name] = rng.standard_normal(shape).astype(s.dtype)
        elif s.dtype == "bool":
            feeds[s.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[s.name] = rng.integers(0, 4, shape).astype(s.dtype)
    return feeds


def fix_input_shapes(model, shapes: dict[str, tuple[int, ...]]):
    """A copy of `model` whose inputs carry the concrete `shapes` (shape inference re-run)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            for d, v in zip(dims, shapes[vi.name]):
                d.Clear()
                d.dim_value = v
    try:
        m = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 — inference is a help, never a verdict
        pass  # engines infer shapes themselves; this only helps FLOP counting
    return m


def _fmt(shape) -> str:
    return "x".join(str(d) if d is not None else "?" for d in shape)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
