"""The up-front memory check: every input shape, and so what the inputs and the float64 reference need, is
known before anything is allocated. A model whose inputs (or whose reference's working set) cannot fit in the
memory this machine has available is refused once, with one line naming the file, the input and the bytes,
before any case runs or anything is written — not case by case with `MemoryError: Unable to allocate`."""

from __future__ import annotations

import numpy as np

from harness.core.errors import ConvtxError

# the reference keeps every intermediate in float64 (onnx.reference holds each node's results until the end);
# refuse when that alone would take more than this share of the available memory, leaving room for the engines
REFERENCE_SHARE = 0.8


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (what can be allocated without swapping), else None (not Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"


def tensor_bytes(shape, dtype: str) -> int:
    return int(np.prod([int(d) for d in shape], dtype=object)) * np.dtype(dtype).itemsize


def reference_bytes(model) -> int:
    """A lower bound of the float64 reference's working set: every tensor of the graph whose shape is known
    (inputs, initializers, node outputs after shape inference), 8 bytes an element."""
    seen: dict[str, int] = {}

    def add(name: str, dims) -> None:
        if name and name not in seen and all(d.HasField("dim_value") for d in dims):
            seen[name] = int(np.prod([d.dim_value for d in dims], dtype=object)) * 8

    g = model.graph
    for vi in [*g.input, *g.value_info, *g.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            add(vi.name, vi.type.tensor_type.shape.dim)
    for t in g.initializer:
        seen.setdefault(t.name, int(np.prod(t.dims, dtype=object)) * 8)
    return sum(seen.values())


def check_inputs(source: str, shapes: dict, dtypes: dict, model=None, available: int | None = None) -> None:
    """Refuse (ConvtxError, exit 2) when an input, all inputs together, or the float64 reference's working set
    (`model` with its input shapes fixed and inferred) exceeds the memory available."""
    avail = available if available is not None else available_bytes()
    if avail is None:
        return
    sizes = {n: tensor_bytes(s, dtypes.get(n, "float32")) for n, s in shapes.items()}
    total = sum(sizes.values())
    if total > avail:
        name = max(sizes, key=lambda n: sizes[n])
        dims = "x".join(str(d) for d in shapes[name])
        raise ConvtxError(
            f"{source}: input {name!r} {dims} {dtypes.get(name, 'float32')} needs {human(sizes[name])}"
            + (f" ({human(total)} for all inputs)" if len(sizes) > 1 else "")
            + f"; this machine has {human(avail)} available: give smaller shapes with --shape {name}=…"
        )
    if model is not None:
        ref = reference_bytes(model)
        if ref > REFERENCE_SHARE * avail:
            raise ConvtxError(
                f"{source}: the float64 reference needs at least {human(ref)} (every tensor of the graph in float64) "
                f"for inputs {', '.join(f'{n}=' + 'x'.join(map(str, s)) for n, s in shapes.items())}; this machine "
                f"has {human(avail)} available: give smaller shapes with --shape"
            )
