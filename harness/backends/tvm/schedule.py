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
  (a conv's output channel, a matmul's row) is split by `REG_BLOCK` rows and unrolled, both are moved inside the
  reduction loops, the accumulator is a small local buffer (cache_write) written back — with the kernel's
  epilogue inlined into that write-back — and the remaining spatial loops are fused and run in parallel; a
  row axis of up to WHOLE_ROWS is blocked whole; form `wide` takes two vectors per row;
- a reduction whose output's innermost axis gives no whole vector (a phase lowering's S+1 grid: 17, 33,
  257, 2049 wide) has a second form, `channels`: the vector runs along an output axis whose extent is a
  multiple of the lanes (a conv's output channels) and that the broadcast input does not use — or uses only
  through c // k, constant over a block of channels (a grouped conv) — the one input indexed by it alone (the
  weight) is packed so that axis is innermost (`W[o, i, k] -> Wp[o/L, i, k, o%L]`, as oneDNN's blocked
  layouts do; at build time where the weight is a constant, else inside the kernel), and the register block
  is `R` positions of the innermost axis (blocks of 8 with a tail where it has no divisor) times `V` vectors
  of channels, R x V accumulators sized by the ISA's registers;
- every other block: its innermost axis vectorised, the rest fused and parallel.

A block the rules cannot take keeps its loop nest (the rule that failed is recorded); a kernel whose schedule
fails as a whole is left untouched. `apply` is a Relax module pass; `schedule_func` does one PrimFunc and
says what it did, for one of `FORMS` ("spatial": the first form for every reduction; "wide": the same with two
vectors per register-block row where the output's innermost axis holds them; "channels": the second
where it applies, None when it applies nowhere). Which form a kernel runs, or none, is decided per kernel by
measurement and a check of its output against the unscheduled kernel (harness/backends/tvm/defaults.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEDULED = "tirx.is_scheduled"  # the attribute TVM 0.27 (MetaSchedule, dlight) marks a scheduled PrimFunc with
REG_BLOCK = {16: 8, 8: 4}  # rows of the register block by lanes (x one vector: the accumulators in registers);
# 8 rows on AVX-512 measured 10-25% faster than 4 on unet/subpixel/cae/vol3d convs (znver4); AVX2 as before
VECTOR_BITS = {True: 512, False: 256}  # AVX-512 or AVX2 registers
VECTORS = {16: 1, 8: 1}  # form spatial: vectors along the output's innermost axis per register-block row
# form wide: two vectors per row (8 x 2 x 16 = 16 zmm accumulators): 15-20% faster than 8 x 1 on unet@256's
# 3x3 convs, 8 x 4 spills (znver5, benchmarks/tvm_kernels.py --vectors 2,4; docs/tuning.md)
WIDE = {16: 2, 8: 2}
ROWS_INNERMOST = True  # spatial and wide forms: the row blocks innermost of the parallel loops (below)
# one vector per row: an axis up to this long is blocked whole (dwdecoder@256's 1x1 conv 24 -> 12 channels at
# 256x256, 6 rows 0.876 ms, 12 rows 0.484 ms: the input is read once; znver5)
WHOLE_ROWS = {16: 16, 8: 8}
TAIL = 8  # channels form: positions per register block where the extent has no divisor of 4 or more
ACCUMULATORS = {16: 24, 8: 12}  # channels form: vector accumulators by lanes (of 32 zmm / 16 ymm registers)
FORMS = ("spatial", "wide", "channels")
# A kernel parameter that is a constant at every call (a weight) is listed in the PrimFunc's attribute
# LAYOUT_FREE (TVM's name, as relax.transform.AttachAttrLayoutFreeBuffers sets it). The block that packs such a
# weight is marked PREPACK, TVM's own mark for MetaSchedule's layout rewrite: relax.transform.
# SplitLayoutRewritePreproc moves it into a function of its own and FoldConstant runs that at build time, so
# the weight is packed once, not on every call (dcgan@64's 8 MB weight: measured, docs/tuning.md).
LAYOUT_FREE = "layout_free_buffers"
PREPACK = "meta_schedule.layout_rewrite_preproc"


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


def _reduction(sch, b, lanes: int, outcome: Outcome, form: str = "spatial") -> None:
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
    if form == "channels":
        plan = _channels_plan(blk, ivars, kinds, extents, vec, f_vec, lanes)
        if isinstance(plan, str):
            outcome.blocks[name] = f"kept (channels: {plan})"
            return
        _channels(sch, b, loops, spatial, red, plan, lanes, outcome, name)
        return
    if f_vec >= 4:
        # the input loaded as a vector along the output's innermost axis, and an axis it does not use: a vector
        # loaded once serves REG_BLOCK accumulators
        used = set().union(*(v for v in reads_vars if ivars[vec] in v))
        cands = [i for i in spatial if i != vec and extents[i] >= 2 and ivars[i] not in used]
        cands = cands or [i for i in spatial if i != vec and extents[i] >= 2]
        reg = cands[-1] if cands else None
        # form wide where the innermost axis holds two vectors or more; a block where it holds one is scheduled
        # as in the spatial form (the kernel is wide only if some block is)
        nv = _factor(ev // f_vec, (WIDE if form == "wide" else VECTORS).get(lanes, 1))
        rows = REG_BLOCK.get(lanes, 4)
        if reg is not None and nv == 1 and extents[reg] <= WHOLE_ROWS.get(lanes, 8):
            rows = extents[reg]  # the whole axis in one block: each input vector is loaded once, not once per block
        if reg is not None and _factor(extents[reg], rows) > 1:
            splits[reg] = _factor(extents[reg], rows)
        splits[vec] = f_vec * nv
        rb = f"{splits.get(reg, 1)}x{nv}x{f_vec}" if nv > 1 else f"{splits.get(reg, 1)}x{f_vec}"
        how = [("wide: " if nv > 1 and form == "wide" else "") + f"register block {rb}"]
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
    outer, inner, mid = [], [], []
    for i in spatial:
        if i == vec and f_vec >= 4 and splits[i] > f_vec:  # several vectors along the innermost axis
            o, m, r = sch.split(loops[i], [None, splits[i] // f_vec, f_vec])
            outer.append(o)
            mid.append(m)
            inner.append((i, r))
        elif i in splits:
            o, r = sch.split(loops[i], [None, splits[i]])
            outer.append(o)
            inner.append((i, r))
        else:
            outer.append(loops[i])
    order = [r for i, r in sorted(inner, key=lambda x: list(splits).index(x[0]))]
    order = order[:-1] + mid + order[-1:]
    reds = [loops[i] for i in red]
    if ROWS_INNERMOST and f_vec >= 4 and reg is not None:
        # the row blocks innermost of the parallel loops: one tile of input serves every block of rows while it
        # is in L1/L2, instead of being streamed again per block (in alternation, znver5: unet@256's 3x3 convs
        # 0.82-0.98x, wave1d@8192's 0.61-0.85x, subpixel 0.96x, none slower beyond 2%)
        k = spatial.index(reg)
        outer = outer[:k] + outer[k + 1 :] + outer[k : k + 1]
    sch.reorder(*outer, *reds, *order)
    if f_vec >= 4:
        sch.vectorize(order[-1])  # first: once the accumulator is a cache, TIR no longer sees a compact dataflow
        order = order[:-1]
    for r in order:
        sch.unroll(r)
    _accumulate(sch, b, outer, reds, how)
    outcome.blocks[name] = "reduction: " + ", ".join(how)


def _lanes_innermost(d: int, lanes: int):
    """The index map that splits dim `d` by `lanes` and puts the lanes innermost: [.., c, ..] -> [.., c/L, .., c%L]."""
    return lambda *i: (*i[:d], i[d] // lanes, *i[d + 1 :], i[d] % lanes)


def _accumulate(sch, b, outer: list, reds: list, how: list[str], blocked: tuple[int, int] | None = None) -> None:
    """The accumulator: a local tile, written back once per tile with the epilogue inlined into the write-back;
    the outer loops fused and parallel; the init split off. `blocked` (dim, lanes): the accumulator's dim is
    split so that its lanes are innermost (a vector of channels is contiguous, not strided)."""
    wb = sch.cache_write(b, 0, "global")
    if blocked is not None:
        sch.transform_layout(b, ("write", 0), _lanes_innermost(*blocked))
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


@dataclass(frozen=True)
class _Plan:
    """The channels form of one reduction: vector axis `chan` (lanes x `v` per tile), `r` positions of the
    output's innermost axis `pos`, the read `weight` (buffer dim `dim` indexed by `chan`) packed."""

    chan: int
    pos: int | None
    r: int
    v: int
    weight: int
    dim: int


def _channels_plan(blk, ivars, kinds, extents, vec, f_vec, lanes) -> _Plan | str:
    """The channels form for this block, or why it does not apply."""
    if vec is not None and f_vec >= lanes:
        return "the innermost axis already gives whole vectors"
    reads = [[_vars_in(rg.min) for rg in r.region] for r in blk.reads]
    spatial = [i for i, k in enumerate(kinds) if k == "S"]
    for c in spatial:  # the outermost such axis: a conv's output channels, not its batch
        if c == vec or extents[c] % lanes or extents[c] < lanes:
            continue
        users = [j for j, dims in enumerate(reads) if any(ivars[c] in d for d in dims)]
        weights = [j for j in users if _indexed_alone(blk.reads[j].region, reads[j], ivars[c])]
        if len(weights) != 1:
            continue  # the weight must be indexed by the channel alone, one element at a time
        others = [blk.reads[j].region for j in users if j != weights[0]]
        at = [d for d, vs in enumerate(reads[weights[0]]) if ivars[c] in vs]
        budget = ACCUMULATORS.get(lanes, 12)
        pos = vec if vec is not None and vec != c else None
        ext = extents[pos] if pos is not None else 1
        # positions first (one weight vector serves them all; measured here: 17 positions x 1 vector 0.75 ms
        # against 1 x 16 2.05 ms on dcgan's 17x17 phase conv), then vectors of channels: up to 2 beside three or
        # more positions, up to 8 alone (each costs a weight load per step)
        r = max(d for d in range(1, min(ext, budget) + 1) if ext % d == 0)
        if r < 4 and ext > TAIL:
            # an extent with no divisor worth a block (257 is prime, 129 = 3 x 43): blocks of TAIL positions,
            # the last one cut short by a predicate (wave1d@8192's 257-wide phase conv: 1 x 8 x 16 0.456 ms,
            # 8 x 2 x 16 with the tail 0.167 ms; 12 or 16 positions 0.38 / 0.25 ms; znver5)
            r = TAIL
        groups = extents[c] // lanes
        cap = min(budget // r, 2 if r >= 3 else 8)
        # a grouped conv's input is indexed by the channel too, through c // (channels per group): the block of
        # lanes x v channels must lie in one group, so that one input value serves the whole block
        vs = [d for d in range(1, min(groups, cap) + 1) if groups % d == 0]
        vs = [d for d in vs if all(_block_invariant(rg, ivars[c], lanes * d) for rg in others)]
        if not vs:
            continue
        v = max(vs)
        if r * v < 2:
            return "no register block of two or more accumulators"
        return _Plan(c, pos, r, v, weights[0], at[0])
    return "no output axis that is a multiple of the lanes and indexes one input alone"


def _indexed_alone(region, dims_vars, c) -> bool:
    """Whether a read is indexed by `c` in one dim, by `c` itself, one element at a time."""
    at = [d for d, vs in enumerate(dims_vars) if c in vs]
    return len(at) == 1 and region[at[0]].min.same_as(c) and _int(region[at[0]].extent) == 1


def _block_invariant(region, c, block: int) -> bool:
    """Whether every index of the read stays the same over an aligned block of `block` consecutive values of
    `c` (c = q * block + t, t < block: the simplified index has no t)."""
    from tvm import ir, sym

    q, t = ir.Var("q", "int64"), ir.Var("t", "int64")
    ana = sym.Analyzer()
    ana.bind(t, ir.Range.from_min_extent(0, block))
    ana.bind(q, ir.Range.from_min_extent(0, 1 << 30))
    ana.bind(c, q * block + t)
    return all(t not in _vars_in(ana.simplify(rg.min)) for rg in region)


def _channels(sch, b, loops, spatial, red, plan: _Plan, lanes: int, outcome: Outcome, name: str) -> None:
    """Tile the reduction in the channels form (see the module's docstring)."""
    L = lanes
    chan_var = sch.get(b).iter_vars[plan.chan].var
    once = _layout_free(sch, b, plan.weight)
    packed = sch.cache_read(b, plan.weight, "global")
    sch.transform_layout(packed, ("write", 0), _lanes_innermost(plan.dim, L))
    ploops = sch.get_loops(packed)
    sch.parallel(sch.fuse(*ploops[: max(1, len(ploops) - 1)]) if len(ploops) > 2 else ploops[0])
    if once:
        sch.annotate(packed, PREPACK, 1)
    outer, inner = [], []
    for i in spatial:
        if i == plan.chan:
            o, vv, ll = sch.split(loops[i], [None, plan.v, L])
            outer.append(o)
            chan_inner = [vv, ll]
        elif i == plan.pos and plan.r > 1:
            o, rr = sch.split(loops[i], [None, plan.r])
            outer.append(o)
            inner.append(rr)
        else:
            outer.append(loops[i])
    reds = [loops[i] for i in red]
    sch.reorder(*outer, *reds, *inner, *chan_inner)
    sch.vectorize(chan_inner[-1])
    for r in [*inner, chan_inner[0]]:
        sch.unroll(r)
    how = [f"channels: weight packed, register block {plan.r}x{plan.v}x{L}"]
    if once:
        how.append("weight packed at build time")
    out_dim = [d for d, rg in enumerate(sch.get(b).writes[0].region) if chan_var in _vars_in(rg.min)]
    _accumulate(sch, b, outer, reds, how, (out_dim[0], L) if len(out_dim) == 1 else None)
    outcome.blocks[name] = "reduction: " + ", ".join(how)


def _layout_free(sch, b, read: int) -> bool:
    """Whether the block's `read`-th input is a kernel parameter listed as LAYOUT_FREE (a constant at every
    call), so that packing it can move to build time."""
    func = sch.mod["main"]
    free = func.attrs.get(LAYOUT_FREE) if func.attrs is not None else None
    if not free:
        return False
    source = sch.get(b).reads[read].source
    return any(source.same_as(func.params[int(i)]) for i in free)


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


def schedule_func(func, target: dict, form: str = "spatial"):
    """(scheduled PrimFunc or None when nothing could be done, Outcome) for one legalised, fused kernel, in
    `form` (one of FORMS): "channels" gives None unless some reduction of the kernel takes that form."""
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
                _reduction(sch, b, lanes, outcome, form)
            else:
                _spatial(sch, b, lanes, outcome)
        except Exception as e:  # noqa: BLE001 — one block the rules cannot take keeps its loops
            outcome.blocks[name] = f"kept ({type(e).__name__}: {_why(e)})"
    if not outcome.changed:
        return None, outcome
    if form in ("wide", "channels") and not any(v.startswith(f"reduction: {form}:") for v in outcome.blocks.values()):
        return None, outcome
    return sch.mod["main"].with_attr(SCHEDULED, True), outcome
