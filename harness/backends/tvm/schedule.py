"""A default CPU schedule for the TIR that Relax's legalisation produces: what `tvm-llvm` runs where no
MetaSchedule record applies.

TVM 0.27's CPU pipeline schedules nothing: every fused kernel is a serial, scalar loop nest (docs/tvm.md).
This module gives each kernel a generic schedule from TVM's own schedule primitives, decided from the
kernel's structure alone (no measurement, no search), in the manner of a hand-written CPU template:

- injective blocks that feed only other injective blocks are inlined (an epilogue chain such as bias + SELU
  becomes one expression); a block that feeds a reduction (padding, zero insertion, a kernel flip) stays a
  buffer, because inlining it would put a bounds test into the reduction's vector loop;
- each reduction block (conv, matmul, pooling) is tiled into a register block: the innermost axis of its
  output is split by the vector width and vectorised, an axis the vector-loaded input does not depend on
  (a conv's output channel, a matmul's row) is split by `REG_BLOCK` and unrolled, both are moved inside the
  reduction loops, the accumulator is a small local buffer (cache_write) written back — with the kernel's
  epilogue inlined into that write-back — and the remaining spatial loops are fused and run in parallel;
- every other block: its innermost axis vectorised, the rest fused and parallel.

A block the rules cannot take keeps its loop nest (the rule that failed is recorded); a kernel whose schedule
fails as a whole is left untouched. `apply` is a Relax module pass; `schedule_func` does one PrimFunc and
says what it did. Whether a scheduled kernel is used is decided per kernel by measurement and a check of its
output against the unscheduled kernel (harness/backends/tvm/defaults.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEDULED = "tirx.is_scheduled"  # the attribute TVM 0.27 (MetaSchedule, dlight) marks a scheduled PrimFunc with
REG_BLOCK = 4  # rows of the register block (x the vector width: the accumulators held in registers)
VECTOR_BITS = {True: 512, False: 256}  # AVX-512 or AVX2 registers


@dataclass
class Outcome:
    """What the schedule did to one kernel: per block, the rule applied or why none was."""

    blocks: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(not v.startswith("kept") for v in self.blocks.values())


def vector_lanes(target: dict, dtype_bits: int = 32) -> int:
    """float32 lanes of the target's widest vector register (AVX-512 on znver4/5 and Xeon, else AVX2)."""
    mcpu = str(target.get("mcpu", ""))
    avx512 = mcpu.startswith(("znver4", "znver5", "skylake-avx512", "cascadelake", "icelake", "sapphirerapids"))
    avx512 = avx512 or mcpu in ("cooperlake", "tigerlake", "rocketlake", "emeraldrapids", "graniterapids")
    return VECTOR_BITS[avx512] // dtype_bits


def _is_reduction(block) -> bool:
    from tvm import tirx

    return any(iv.iter_type == tirx.IterVar.CommReduce for iv in block.iter_vars)


def _vars_in(expr) -> set:
    from tvm.s_tir.dlight.analysis.common_analysis import collect_vars_used_in_prim_expr

    return collect_vars_used_in_prim_expr(expr)


def _int(x) -> int | None:
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def _factor(extent: int, want: int) -> int:
    """The largest divisor of `extent` that is at most `want` (1 if none): a tile without a tail. A phase
    lowering's maps are often odd (33 = 32 + 1), so not only powers of two: 33 takes 11."""
    for f in range(min(want, extent), 1, -1):
        if extent % f == 0:
            return f
    return 1


def _bindings(sch, block_rv) -> list | None:
    """The loop each iteration variable of the block is bound to, when every binding is one loop variable
    (the form Relax's legalisation produces); else None."""
    from tvm import tirx
    from tvm.s_tir.dlight.analysis.common_analysis import get_sblockrealize

    loops = sch.get_loops(block_rv)
    loop_vars = {sch.get(lp).loop_var: lp for lp in loops}
    out = []
    for value in get_sblockrealize(sch, block_rv).iter_values:
        if not isinstance(value, tirx.Var) or value not in loop_vars:
            return None
        out.append(loop_vars[value])
    return out if len(out) == len(loops) else None


def _inline_injective(sch, root, outcome: Outcome) -> None:
    """Inline every injective block whose consumers are all injective (repeat until nothing changes)."""
    changed = True
    while changed:
        changed = False
        for b in sch.get_child_blocks(root):
            blk = sch.get(b)
            if _is_reduction(blk):
                continue
            consumers = sch.get_consumers(b)
            if not consumers or any(_is_reduction(sch.get(c)) for c in consumers):
                continue
            name = blk.name_hint
            try:
                sch.compute_inline(b)
            except Exception:  # noqa: BLE001 — a block TIR refuses to inline stays a buffer
                continue
            outcome.blocks[name] = "inlined"
            changed = True
            break


def _spatial(sch, b, lanes: int, outcome: Outcome) -> None:
    """An injective block at the root: innermost axis vectorised, the others fused and parallel."""
    name = sch.get(b).name_hint
    loops = sch.get_loops(b)
    if not loops:
        outcome.blocks[name] = "kept (no loops)"
        return
    inner = _int(sch.get(loops[-1]).extent)
    how = []
    if inner is not None and inner >= 4:
        f = _factor(inner, lanes)
        if f >= 4:
            if f < inner:
                *_, lo, li = loops[:-1] + list(sch.split(loops[-1], [None, f]))
                loops = loops[:-1] + [lo, li]
            sch.vectorize(loops[-1])
            how.append(f"vector {f}")
            loops = loops[:-1]
    if loops:
        outer = sch.fuse(*loops) if len(loops) > 1 else loops[0]
        if (_int(sch.get(outer).extent) or 0) > 1:
            sch.parallel(outer)
            how.append("parallel")
    outcome.blocks[name] = "spatial: " + (", ".join(how) or "kept (nothing to split)")


def _reduction(sch, b, lanes: int, outcome: Outcome) -> None:
    """A reduction block tiled into a register block (see the module's docstring)."""
    from tvm import tirx

    blk = sch.get(b)
    name = blk.name_hint
    loops = _bindings(sch, b)
    if loops is None:
        outcome.blocks[name] = "kept (bindings are not one loop per axis)"
        return
    kinds = ["R" if iv.iter_type == tirx.IterVar.CommReduce else "S" for iv in blk.iter_vars]
    extents = [_int(sch.get(lp).extent) for lp in loops]
    if any(e is None for e in extents):
        outcome.blocks[name] = "kept (symbolic extents)"
        return
    spatial = [i for i, k in enumerate(kinds) if k == "S"]
    red = [i for i, k in enumerate(kinds) if k == "R"]
    if len(blk.writes) != 1 or not spatial:
        outcome.blocks[name] = "kept (not one output)"
        return
    ivars = [iv.var for iv in blk.iter_vars]
    write = blk.writes[0]
    last_vars = _vars_in(write.region[-1].min) if write.region else set()
    vec = next((i for i in spatial if ivars[i] in last_vars), None)
    ev = extents[vec] if vec is not None else 0
    f_vec = _factor(ev, lanes) if ev >= 4 else 1
    reads_vars = [set().union(*(_vars_in(rg.min) for rg in r.region)) for r in blk.reads]
    splits: dict[int, int] = {}  # axis -> inner factor; the inner loops go inside the reduction, in this order
    if f_vec >= 4:
        # the input loaded as a vector along the output's innermost axis, and an axis it does not use: a vector
        # loaded once serves REG_BLOCK accumulators
        used = set().union(*(v for v in reads_vars if ivars[vec] in v))
        cands = [i for i in spatial if i != vec and extents[i] >= 2 and ivars[i] not in used]
        cands = cands or [i for i in spatial if i != vec and extents[i] >= 2]
        reg = cands[-1] if cands else None
        if reg is not None and _factor(extents[reg], REG_BLOCK) > 1:
            splits[reg] = _factor(extents[reg], REG_BLOCK)
        splits[vec] = f_vec
        how = [f"register block {splits.get(reg, 1)}x{f_vec}"]
    else:
        # no axis worth a vector (a 5x5 map, a global reduction): a scalar register block still breaks the one
        # accumulator's dependency chain — up to 8 along an axis some input does not depend on, times the
        # output's short innermost axis
        cands = [i for i in spatial if extents[i] >= 2 and any(ivars[i] not in v for v in reads_vars)]
        cands = cands or [i for i in spatial if extents[i] >= 2]
        if not cands:
            sp = [loops[i] for i in spatial]
            sch.reorder(*sp, *[loops[i] for i in red])
            outcome.blocks[name] = "kept (nothing to block)"
            return
        reg = max(reversed(cands), key=lambda i: extents[i])
        splits[reg] = _factor(extents[reg], 8)
        if vec is not None and vec != reg and 2 <= extents[vec] <= 8:
            splits[vec] = extents[vec]
        how = ["scalar register block " + "x".join(str(f) for f in splits.values())]
    outer, inner = [], []
    for i in spatial:
        if i in splits:
            o, r = sch.split(loops[i], [None, splits[i]])
            outer.append(o)
            inner.append((i, r))
        else:
            outer.append(loops[i])
    order = [r for i, r in sorted(inner, key=lambda x: list(splits).index(x[0]))]
    reds = [loops[i] for i in red]
    sch.reorder(*outer, *reds, *order)
    if f_vec >= 4:
        sch.vectorize(order[-1])  # first: once the accumulator is a cache, TIR no longer sees a compact dataflow
        order = order[:-1]
    for r in order:
        sch.unroll(r)
    # the accumulator: a local tile, written back once per tile, the epilogue inlined into the write-back
    wb = sch.cache_write(b, 0, "global")
    sch.reverse_compute_at(wb, outer[-1])
    for c in sch.get_consumers(wb):
        try:
            sch.reverse_compute_inline(c)
            how.append("epilogue fused")
        except Exception:  # noqa: BLE001 — an epilogue that is not elementwise stays a block of its own
            pass
    _vectorize_tail(sch, wb)
    fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
    if (_int(sch.get(fused).extent) or 0) > 1:
        sch.parallel(fused)
        how.append("parallel")
    if reds:  # last, as MetaSchedule does: loop kinds are checked against a block that still has its init
        init = sch.decompose_reduction(b, reds[0])
        _vectorize_tail(sch, init)
    outcome.blocks[name] = "reduction: " + ", ".join(how)


def _vectorize_tail(sch, b) -> None:
    """The loops a write-back or init block got under the tile: the innermost vectorised, the next unrolled."""
    loops = sch.get_loops(b)
    own = [lp for lp in loops if sch.get(lp).kind == 0]  # serial loops (the tile's are still serial here)
    tail = own[-2:]
    if tail and (_int(sch.get(tail[-1]).extent) or 0) >= 4:
        sch.vectorize(tail[-1])
    if len(tail) == 2 and (_int(sch.get(tail[0]).extent) or 0) <= 16:
        sch.unroll(tail[0])


def _why(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    detail = [ln for ln in lines if not ln.startswith(("ScheduleError", "Traceback", "File"))]
    return (detail or lines or [""])[0][:160]


def schedule_func(func, target: dict):
    """(scheduled PrimFunc or None when nothing could be done, Outcome) for one legalised, fused kernel."""
    import tvm
    from tvm import s_tir

    outcome = Outcome()
    lanes = vector_lanes(target)
    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    try:
        root = sch.get_sblock("root", "main")
    except Exception:  # noqa: BLE001 — a function with no root block (already lowered): not ours to schedule
        return None, Outcome({"main": "kept (no root block)"})
    _inline_injective(sch, root, outcome)
    for name in [sch.get(b).name_hint for b in sch.get_child_blocks(root)]:
        try:
            b = sch.get_sblock(name, "main")
        except Exception:  # noqa: BLE001 — fused into another block's write-back by an earlier rule
            continue
        try:
            if _is_reduction(sch.get(b)):
                _reduction(sch, b, lanes, outcome)
            else:
                _spatial(sch, b, lanes, outcome)
        except Exception as e:  # noqa: BLE001 — one block the rules cannot take keeps its loops
            outcome.blocks[name] = f"kept ({type(e).__name__}: {_why(e)})"
    if not outcome.changed:
        return None, outcome
    return sch.mod["main"].with_attr(SCHEDULED, True), outcome
