"""Two zoo models that compute the same function written two ways (`ModelSpec.form_of`: the unpooling layers of
models/unpool.py as Resize or Pad/Reshape, and as ConvTransposes): on each engine, the outputs of the two forms
are compared with each other, not only each with the float64 reference.

Every case of a model in such a pair that produced outputs leaves them under
`<build>/forms/<run id>/<base label>-b<batch>/` (the base form's native case, and the other form's case of every
lowering); the case that finds its partner's already there compares the two — whichever ran second, so the
order of the run does not matter — and its record says `details.forms`: a list of
`{"base", "form", "backend", "bitwise", "max_abs", "differing", "elements", "reference_bitwise"}` with the two
case ids, whether the engine's outputs are equal bit for bit, the largest absolute difference and how many
elements differ, and whether the two float64 references are equal bit for bit. The sweep removes the run's
directory when the run ends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.core import cache

FORMS_DIR = "forms"


def base_of(name: str) -> str | None:
    """The model `name` is another form of, if any."""
    from models import MODELS

    spec = MODELS.get(name)
    return spec.form_of if spec is not None else None


def forms_of(name: str) -> tuple[str, ...]:
    """The models that are other forms of `name`."""
    from models import MODELS

    return tuple(s.name for s in MODELS.values() if s.form_of == name)


def in_pair(name: str) -> bool:
    return bool(base_of(name) or forms_of(name))


def _dir(build_dir: Path, run_id: str, base: str, size: int | None, batch: int) -> Path:
    return Path(build_dir) / FORMS_DIR / run_id / f"{base}@{size}-b{batch}"


def _file(d: Path, model: str, lowering: str, backend: str) -> Path:
    return d / f"{model}--{lowering}--{backend}.npz"


def _save(path: Path, outs: list[np.ndarray], refs: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"out:{i}": np.asarray(o) for i, o in enumerate(outs)}
    arrays.update({f"ref:{i}": np.asarray(r) for i, r in enumerate(refs)})
    tmp = cache.tmp_path(path)
    with open(tmp, "wb") as f:  # np.savez on a name would add ".npz" to the temporary name
        np.savez(f, **arrays)
    cache.commit(tmp, path)


def _load(path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    with np.load(path) as z:
        outs = [z[k] for k in sorted((k for k in z.files if k.startswith("out:")), key=lambda k: int(k[4:]))]
        refs = [z[k] for k in sorted((k for k in z.files if k.startswith("ref:")), key=lambda k: int(k[4:]))]
    return outs, refs


def _bitwise(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a, b)
    )


def compare(base_outs, base_refs, form_outs, form_refs) -> dict:
    """The two forms' outputs on one engine, and their float64 references, compared."""
    max_abs, differing, elements = 0.0, 0, 0
    shapes_agree = len(base_outs) == len(form_outs)
    for x, y in zip(base_outs, form_outs):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            shapes_agree = False
            continue
        elements += int(x.size)
        both_nan = np.isnan(x) & np.isnan(y) if np.issubdtype(x.dtype, np.floating) else np.zeros(x.shape, bool)
        diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
        diff[both_nan] = 0.0
        bad = (diff > 0) | (np.isnan(diff) & ~both_nan)
        differing += int(bad.sum())
        finite = diff[np.isfinite(diff)]
        if finite.size:
            max_abs = max(max_abs, float(finite.max()))
        if np.isnan(diff[~both_nan]).any() or np.isinf(diff).any():
            max_abs = float("inf")
    return {
        "bitwise": shapes_agree and _bitwise(base_outs, form_outs),
        "shapes_agree": shapes_agree,
        "max_abs": max_abs,
        "differing": differing,
        "elements": elements,
        "reference_bitwise": _bitwise(base_refs, form_refs),
    }


def check(
    model: str,
    size: int | None,
    batch: int,
    lowering: str,
    backend: str,
    outs: list[np.ndarray],
    refs: list[np.ndarray],
    build_dir: Path,
    run_id: str,
    case_id_of,
) -> list[dict]:
    """Leave this case's outputs for its partner and compare them with every partner case already there
    (`case_id_of(model, lowering)` -> that case's id). [] when the model is in no pair or no partner ran yet."""
    base = base_of(model)
    if base is None:
        if not forms_of(model) or lowering != "native":  # the base form has no ConvTranspose: native only
            return []
        d = _dir(build_dir, run_id, model, size, batch)
        _save(_file(d, model, lowering, backend), outs, refs)
        found = []
        for form in forms_of(model):
            for p in sorted(d.glob(f"{form}--*--{backend}.npz")):
                if not cache.is_valid(p):  # being written by a case running beside this one
                    continue
                form_lowering = p.name.split("--")[1]
                o, r = _load(p)
                found.append(
                    {
                        "base": case_id_of(model, "native"),
                        "form": case_id_of(form, form_lowering),
                        "backend": backend,
                        **compare(outs, refs, o, r),
                    }
                )
        return found
    d = _dir(build_dir, run_id, base, size, batch)
    _save(_file(d, model, lowering, backend), outs, refs)
    p = _file(d, base, "native", backend)
    if not cache.is_valid(p):
        return []
    o, r = _load(p)
    return [
        {
            "base": case_id_of(base, "native"),
            "form": case_id_of(model, lowering),
            "backend": backend,
            **compare(o, r, outs, refs),
        }
    ]


def clear(build_dir: Path, run_id: str) -> None:
    """The run's saved outputs, once the run is over."""
    import shutil

    shutil.rmtree(Path(build_dir) / FORMS_DIR / run_id, ignore_errors=True)
