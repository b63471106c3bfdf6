"""Comparisons of engine outputs with the float64 reference, under a stated tolerance policy.

Policy (float32 on CPU): an output passes when
  - its shape equals the reference's,
  - where the reference is NaN, +Inf or -Inf the output holds the same (NaN where the reference has NaN is
    agreement: a model whose weights hold NaN computes NaN; anything else there is a mismatch),
  - it has no NaN/Inf where the reference is finite,
  - relative L2 error ||out - ref|| / ||ref|| <= rel_l2 over the reference's finite elements, and
  - |out - ref| <= atol + rtol * |ref| elementwise over the reference's finite elements.
A failing output says how many elements fail which rule and where the first (or worst) of them is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    rel_l2: float
    atol: float
    rtol: float


# Tolerances live in code, per dtype; the report prints them.
POLICY: dict[str, Tolerance] = {
    "float32": Tolerance(rel_l2=1e-5, atol=1e-5, rtol=1e-3),
    "float16": Tolerance(rel_l2=1e-2, atol=1e-3, rtol=1e-2),
    # float32 tensors whose matrix products/convolutions ran in TF32 (10-bit mantissa: inputs rounded to
    # ~5e-4 relative) — ort-cuda with TF32 on; applied only where the record says TF32 was enabled
    "tf32": Tolerance(rel_l2=5e-3, atol=5e-3, rtol=2e-2),
    "float64": Tolerance(rel_l2=1e-12, atol=1e-12, rtol=1e-9),
}


@dataclass(frozen=True)
class OutputComparison:
    """Every metric of one output; truthy when it passed."""

    index: int
    passed: bool
    shape: tuple[int, ...]
    ref_shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    rel_l2: float
    mismatches: int  # elements outside atol + rtol*|ref|
    worst_index: tuple[int, ...] | None
    nonfinite: int  # NaN/Inf in the output where the reference is finite
    reason: str = ""
    special_mismatches: int = 0  # where the reference is NaN/Inf, elements of the output that are not the same

    def __bool__(self) -> bool:
        return self.passed


@dataclass(frozen=True)
class Comparison:
    """All outputs of one case; the scalar metrics are the worst over outputs."""

    passed: bool
    max_abs: float
    max_rel: float
    rel_l2: float
    atol: float
    rtol: float
    rel_l2_tol: float
    outputs: tuple[OutputComparison, ...]

    def __bool__(self) -> bool:
        return self.passed

    @property
    def reason(self) -> str:
        return "; ".join(f"output {o.index}: {o.reason}" for o in self.outputs if not o.passed)

    def to_json(self) -> dict:
        d = asdict(self)
        d["outputs"] = [asdict(o) for o in self.outputs]
        return d


def compare_output(index: int, out: np.ndarray, ref: np.ndarray, tol: Tolerance) -> OutputComparison:
    out = np.asarray(out)
    ref = np.asarray(ref)
    if out.shape != ref.shape:
        return OutputComparison(
            index,
            False,
            out.shape,
            ref.shape,
            float("inf"),
            float("inf"),
            float("inf"),
            int(max(out.size, ref.size)),
            None,
            0,
            f"shape {list(out.shape)} != reference {list(ref.shape)}",
        )
    o = out.astype(np.float64)
    r = ref.astype(np.float64)
    finite_ref = np.isfinite(r)
    special = ~finite_ref  # NaN/Inf in the reference: the output must hold the same value there
    same_special = special & ((np.isnan(o) & np.isnan(r)) | (o == r))
    special_bad = special & ~same_special
    special_mismatches = int(np.count_nonzero(special_bad))
    nonfinite_at = ~np.isfinite(o) & finite_ref
    nonfinite = int(np.count_nonzero(nonfinite_at))
    if o.size == 0:
        return OutputComparison(index, True, out.shape, ref.shape, 0.0, 0.0, 0.0, 0, None, 0)
    with np.errstate(invalid="ignore"):
        diff = np.where(finite_ref, np.abs(o - r), 0.0)  # NaN where the output is NaN and the reference finite
        diff = np.where(special_bad, np.inf, diff)
        with np.errstate(divide="ignore"):
            rel = np.where(diff == 0, 0.0, diff / np.abs(np.where(finite_ref, r, 1.0)))
    inf_nan = np.where(np.isnan(diff), np.inf, diff)
    max_abs = float(np.max(inf_nan))
    max_rel = float(np.max(np.where(np.isnan(rel), np.inf, rel)))
    ref_norm = float(np.linalg.norm(r[finite_ref]))
    err_norm = float(np.linalg.norm(np.where(np.isfinite(diff), diff, 0.0)))
    rel_l2 = err_norm / ref_norm if ref_norm > 0 else (0.0 if err_norm == 0 else float("inf"))
    if nonfinite or special_mismatches:
        rel_l2 = float("inf")
    with np.errstate(invalid="ignore"):
        outside = finite_ref & np.isfinite(o) & ~(diff <= tol.atol + tol.rtol * np.abs(np.where(finite_ref, r, 0.0)))
    mismatches = int(np.count_nonzero(outside)) + nonfinite + special_mismatches
    reasons = []
    if nonfinite:
        at = _first(nonfinite_at)
        reasons.append(
            f"{nonfinite} NaN/Inf where the reference is finite (first at {list(at)}: {o[at]:.7g} vs {r[at]:.7g})"
        )
    if special_mismatches:
        at = _first(special_bad)
        reasons.append(
            f"{special_mismatches} elements differ where the reference is NaN/Inf (first at {list(at)}: "
            f"{o[at]:.7g} vs {r[at]:.7g})"
        )
    worst = None
    if np.any(outside):
        fin = np.where(outside, diff, -1.0)
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(fin)), diff.shape))
    elif np.any(nonfinite_at | special_bad):
        worst = _first(nonfinite_at | special_bad)
    else:
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(inf_nan)), diff.shape))
    if rel_l2 > tol.rel_l2 and not (nonfinite or special_mismatches):
        reasons.append(f"rel_l2 {rel_l2:.3g} > {tol.rel_l2:g}")
    n_out = int(np.count_nonzero(outside))
    if n_out:
        reasons.append(
            f"{n_out}/{diff.size} elements outside atol {tol.atol:g} + rtol {tol.rtol:g}"
            f" (worst at {list(worst)}: {o[worst]:.7g} vs {r[worst]:.7g})"
        )
    return OutputComparison(
        index,
        not reasons,
        out.shape,
        ref.shape,
        max_abs,
        max_rel,
        rel_l2,
        mismatches,
        worst,
        nonfinite,
        "; ".join(reasons),
        special_mismatches,
    )


def _first(mask: np.ndarray) -> tuple[int, ...]:
    """The index of the first True element of `mask` (C order)."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def compare(outputs: list[np.ndarray], refs: list[np.ndarray], dtype: str = "float32") -> Comparison:
    """Compare every output with its reference under POLICY[dtype]."""
    tol = POLICY[dtype]
    if len(outputs) != len(refs):
        bad = OutputComparison(
            0,
            False,
            (),
            (),
            float("inf"),
            float("inf"),
            float("inf"),
            0,
            None,
            0,
            f"{len(outputs)} outputs, reference has {len(refs)}",
        )
        return Comparison(False, float("inf"), float("inf"), float("inf"), tol.atol, tol.rtol, tol.rel_l2, (bad,))
    outs = tuple(compare_output(i, o, r, tol) for i, (o, r) in enumerate(zip(outputs, refs)))
    return Comparison(
        passed=all(outs),
        max_abs=max(o.max_abs for o in outs),
        max_rel=max(o.max_rel for o in outs),
        rel_l2=max(o.rel_l2 for o in outs),
        atol=tol.atol,
        rtol=tol.rtol,
        rel_l2_tol=tol.rel_l2,
        outputs=outs,
    )
