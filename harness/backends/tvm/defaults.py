"""Building a Relax module for the CPU with the default schedule (harness/backends/tvm/schedule.py) wherever
the MetaSchedule database has no record — and only where it is faster and right.

Each fused kernel the database does not cover is scheduled in each of the schedule's forms that applies
(schedule.FORMS), and the scheduled kernels and the unscheduled one are built alone, run on the same random
inputs and timed side by side on this machine. The fastest scheduled one is used when its outputs agree with
the unscheduled kernel's (float outputs within `RTOL` of the largest magnitude, others exactly) and it is
faster; otherwise the kernel keeps its loop nest, and the build says which and why. The decision is kept in a per-machine file beside the compile cache, keyed by the kernel's
structural hash, the target, the TVM version and the schedule's source, so a kernel is measured once per
machine, not once per model that contains it.

A kernel parameter that is a constant at every call (a weight) is marked layout-free (schedule.LAYOUT_FREE)
before the kernel is decided, so the decision is for the kernel as it is called. Where a schedule packs such a
weight (the channels form), the packing is split off by TVM's SplitLayoutRewritePreproc and folded by
FoldConstant at build time; the kernel is then measured as it runs, on a weight packed beforehand.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness.backends.base import MeasureLater
from harness.backends.tvm.schedule import LAYOUT_FREE, PREPACK, SCHEDULED
from harness.core import cache, safefs

RTOL = 1e-4  # of the largest |value| of an output: float32 reassociation in a long reduction stays far below
MIN_GAIN = 1.0  # used only when strictly faster than the unscheduled kernel
SOURCES = (Path(__file__).with_name("schedule.py"), Path(__file__))


@dataclass(frozen=True)
class Decision:
    """One kernel: scheduled or kept, with the two measured times and the check's worst relative error."""

    kernel: str
    use: bool
    why: str
    naive_ms: float | None
    scheduled_ms: float | None
    rel_err: float | None
    rules: dict
    form: str = "spatial"  # the schedule's form (schedule.FORMS) that was measured fastest and right
    others: dict | None = None  # form -> ms: the other forms that were right, for the record

    @property
    def default_ms(self) -> float | None:
        """Per call, what tvm-llvm runs for this kernel: the scheduled kernel when used, else the loop nest."""
        return self.scheduled_ms if self.use else self.naive_ms


def _random_args(func, seed: int = 0) -> list[np.ndarray]:
    from tvm.s_tir import meta_schedule as ms

    rng = np.random.default_rng(seed)
    out = []
    for info in ms.arg_info.ArgInfo.from_prim_func(func):
        shape = [int(s) for s in info.shape]
        dt = str(info.dtype)
        out.append(rng.standard_normal(shape).astype(dt) if "float" in dt else np.zeros(shape, dt))
    return out


def _invalid_shape(func) -> list[int] | None:
    """The first buffer shape with a negative extent (pads that leave less than nothing), else None."""
    from tvm.s_tir import meta_schedule as ms

    for info in ms.arg_info.ArgInfo.from_prim_func(func):
        shape = [int(s) for s in info.shape]
        if any(d < 0 for d in shape):
            return shape
    return None


def _build_kernel(func, target):
    import tvm

    lib = tvm.compile(tvm.IRModule({"main": func}), target=target)
    return lib.jit() if hasattr(lib, "jit") else lib


def _timed(kernels: list, dev) -> tuple[list[float], list[list[np.ndarray]]]:
    """Every kernel, (runtime module, its arguments) with the unscheduled one first, on copies of the same
    inputs (a kernel whose weight is packed beforehand gets it packed), then timed in alternation
    (A B C A B C ...), the minimum of each: a load on the machine slows every round alike instead of deciding
    for one. A kernel whose first call took over 0.1 s is timed by single calls, two rounds (the first call
    paid page faults); the others by TVM's time evaluator, 7 rounds of 3 repeats of at least 5 ms each (the
    warm minimum) — also when the loop nest beside them is slow, so a fast kernel's time is not one cold call."""
    import tvm

    rts = [rt for rt, _ in kernels]
    outs, tens, slow = [], [], []
    for rt, args in kernels:
        t = [tvm.runtime.tensor(a.copy(), dev) for a in args]
        t0 = time.perf_counter()
        rt["main"](*t)
        slow.append(time.perf_counter() - t0 > 0.1)
        tens.append(t)
        outs.append([x.numpy() for x in t])
    best = [float("inf")] * len(rts)
    # each round's first repeat runs on caches the other kernels evicted: the minimum over 3 repeats is warm
    evals = [
        None if s else rt.time_evaluator("main", dev, number=1, repeat=3, min_repeat_ms=5) for rt, s in zip(rts, slow)
    ]
    for _ in range(2 if any(slow) else 7):
        for i, rt in enumerate(rts):
            if evals[i] is None:
                t0 = time.perf_counter()
                rt["main"](*tens[i])
                best[i] = min(best[i], (time.perf_counter() - t0) * 1e3)
            else:
                best[i] = min(best[i], min(evals[i](*tens[i]).results) * 1e3)
    if any(slow):  # the fast kernels: the rest of their 7 rounds (the slow ones have had their two)
        for _ in range(5):
            for i, ev in enumerate(evals):
                if ev is not None:
                    best[i] = min(best[i], min(ev(*tens[i]).results) * 1e3)
    return best, outs


def _time_alone(rt, args, dev) -> float:
    """One kernel's time (ms) when there is nothing to time it against."""
    import tvm

    t = [tvm.runtime.tensor(a.copy(), dev) for a in args]
    t0 = time.perf_counter()
    rt["main"](*t)
    first = (time.perf_counter() - t0) * 1e3
    if first > 100.0:
        t0 = time.perf_counter()
        rt["main"](*t)
        return (time.perf_counter() - t0) * 1e3
    return float(rt.time_evaluator("main", dev, number=1, repeat=5, min_repeat_ms=5)(*t).min) * 1e3


def _agree(naive: list[np.ndarray], sched: list[np.ndarray], skip: tuple[int, ...] = ()) -> float:
    """The worst relative difference over every argument after the call but `skip` (a weight one of them
    received packed) — the inputs are the same copies in both, so this is the outputs' (inf where shapes, NaN
    placement or integers differ)."""
    worst = 0.0
    for i, (a, b) in enumerate(zip(naive, sched)):
        if i in skip:
            continue
        if a.shape != b.shape:
            return float("inf")
        if not np.issubdtype(a.dtype, np.floating):
            if not np.array_equal(a, b):
                return float("inf")
            continue
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            return float("inf")
        fa, fb = np.nan_to_num(a.astype(np.float64)), np.nan_to_num(b.astype(np.float64))
        scale = max(float(np.max(np.abs(fa), initial=0.0)), 1e-30)
        worst = max(worst, float(np.max(np.abs(fa - fb), initial=0.0)) / scale)
    return worst


def _blocks(func) -> list:
    import tvm
    from tvm import s_tir

    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    return [sch.get(b) for b in sch.get_child_blocks(sch.get_sblock("root", "main"))]


def split_prepack(func):
    """(compute kernel, packing kernel, indices of the weights it packs) for a scheduled kernel with a block
    marked PREPACK, as TVM's SplitLayoutRewritePreproc splits it inside a model (here around one call of the
    kernel, its outputs the trailing parameters as call_tir has them); None when it has no such block."""
    from tvm import relax

    blocks = _prepack_blocks(func)
    if blocks is None:
        return None
    params = list(func.params)
    written = {i for i, p in enumerate(params) if any(w.source.same_as(p) for blk in blocks for w in blk.writes)}
    n_in = len(params) - len(written)
    if written != set(range(n_in, len(params))):
        return None
    shapes = _shapes(func)
    info = [relax.TensorType(shape, dtype) for shape, dtype in shapes]
    bb = relax.BlockBuilder()
    args = [relax.Var(f"a{i}", info[i]) for i in range(n_in)]
    with bb.function("main", args):
        gv = bb.add_func(func.with_attr("global_symbol", "kernel"), "kernel")
        bb.emit_func_output(bb.emit(relax.call_tir(gv, args, info[n_in:] if len(written) > 1 else info[n_in])))
    split = relax.transform.SplitLayoutRewritePreproc()(bb.get())
    by_name = {g.name_hint: f for g, f in split.functions_items()}
    compute, pack = by_name.get("kernel_prepacked"), by_name.get("kernel_weight_prepack")
    if compute is None or pack is None:
        return None
    packed = tuple(i for i, (a, b) in enumerate(zip(shapes, _shapes(compute))) if a != b)
    return compute.with_attr("global_symbol", "main"), pack.with_attr("global_symbol", "main"), packed


def _shapes(func) -> list[tuple[list[int], str]]:
    """(shape, dtype) of every parameter of a PrimFunc."""
    from tvm.s_tir import meta_schedule as ms

    return [([int(d) for d in a.shape], str(a.dtype)) for a in ms.arg_info.ArgInfo.from_prim_func(func)]


def _runnable(sched, args: list[np.ndarray], target):
    """(runtime module, its arguments, indices of packed weights) for a scheduled kernel: as it is, or — where it
    packs a constant weight — its compute part on the weight packed beforehand by its packing part."""
    import tvm

    split = split_prepack(sched)
    if split is None:
        return _build_kernel(sched.with_attr("global_symbol", "main"), target), args, ()
    compute, pack, idx = split
    dev, shapes = tvm.cpu(0), _shapes(compute)
    outs = [tvm.runtime.tensor(np.zeros(*shapes[i]), dev) for i in idx]
    _build_kernel(pack, target)["main"](*[tvm.runtime.tensor(args[i].copy(), dev) for i in idx], *outs)
    packed = list(args)
    for i, t in zip(idx, outs):
        packed[i] = t.numpy()
    return _build_kernel(compute, target), packed, idx


def decide(name: str, func, target_d: dict) -> Decision:
    """Schedule one kernel in every form that applies (schedule.FORMS), check each against the unscheduled
    kernel and time them side by side; the fastest that agrees and beats the loop nest is used (see the module
    docstring)."""
    import tvm

    from harness.backends.tvm.schedule import FORMS, schedule_func

    forms = []
    for form in FORMS:
        try:
            sched, outcome = schedule_func(func, target_d, form)
        except Exception as e:  # noqa: BLE001 — a kernel the rules cannot take keeps its loops
            if form == FORMS[0]:
                why = f"not scheduled: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
                return Decision(name, False, why, None, None, None, {})
            continue
        if sched is not None or form == FORMS[0]:
            forms.append((form, sched, outcome))
    target = tvm.target.Target(target_d)
    dev = tvm.cpu(0)
    func = func.with_attr("global_symbol", "main")
    bad = _invalid_shape(func)
    if bad:  # an invalid model (a negative output size): nothing to measure; TVM's own build says what it says
        return Decision(name, False, f"not measured: a buffer has the invalid shape {bad}", None, None, None, {})
    args = _random_args(func)
    naive_rt = _build_kernel(func, target)
    built, failed = [], []
    for form, sched, outcome in forms:
        if sched is None:
            continue
        try:
            built.append((form, *_runnable(sched, args, target), outcome))
        except Exception as e:  # noqa: BLE001 — TVM refusing to build a scheduled kernel: that form is out, say why
            failed.append(f"{form}: scheduled kernel does not build: {str(e).strip().splitlines()[-1][:160]}")
    rules = forms[0][2].blocks
    if not built:
        why = "; ".join(failed) or "no rule applies"
        return Decision(name, False, why, _time_alone(naive_rt, args, dev), None, None, rules)
    times, outs = _timed([(naive_rt, args), *((rt, a) for _, rt, a, _, _ in built)], dev)
    t_n, tried = times[0], []
    for (form, _, _, packed, outcome), t_s, out_s in zip(built, times[1:], outs[1:]):
        tried.append((form, t_s, _agree(outs[0], out_s, packed), outcome.blocks))
    right = [x for x in tried if x[2] <= RTOL]
    if not right:
        form, t_s, err, rules = min(tried, key=lambda x: x[2])
        why = f"scheduled kernel disagrees (relative error {err:.2e} > {RTOL:g})"
        return Decision(name, False, why, t_n, t_s, err, rules, form)
    form, t_s, err, rules = min(right, key=lambda x: x[1])
    others = {f: round(t, 4) for f, t, e, _ in tried if f != form and e <= RTOL}
    if not t_s * MIN_GAIN < t_n:
        why = f"scheduled kernel is not faster ({t_s:.3f} vs {t_n:.3f} ms)"
        return Decision(name, False, why, t_n, t_s, err, rules, form, others)
    return Decision(name, True, "scheduled", t_n, t_s, err, rules, form, others)


def _key(func, target_d: dict, other=None) -> str:
    """The decision's key: the kernel's structure, the target, TVM's version, this code; with `other` (a record's
    scheduled kernel), the key of that record against this kernel's default."""
    import tvm
    import tvm_ffi

    # the kernel's name is not part of it: a fused module's function and MetaSchedule's extracted task are one
    h = hashlib.sha256(str(tvm_ffi.structural_hash(func.with_attr("global_symbol", "main"))).encode())
    h.update(json.dumps([target_d, tvm.__version__, cache.source_digest(SOURCES)], sort_keys=True).encode())
    if other is not None:
        h.update(b"record:" + str(tvm_ffi.structural_hash(other.with_attr("global_symbol", "main"))).encode())
    return h.hexdigest()[:24]


def record_against_default(name: str, func, tuned, dec: Decision, target_d: dict, decisions: Decisions) -> Decision:
    """A database record's kernel (`tuned`, MetaSchedule's schedule of `func`) against what tvm-llvm runs for
    `func` (`dec`: the default schedule in its form, or the loop nest), both built here, timed side by side and
    the record's outputs checked against the default's. `use` says whether the record is used; `naive_ms` is
    the default's time, `scheduled_ms` the record's — both measured on this machine, in one alternation, where
    the database's own time was measured during a search, maybe on another day under another load. Kept in the
    decisions file like a decision."""
    import tvm

    from harness.backends.tvm.schedule import schedule_func

    key = _key(func, target_d, tuned)
    got = decisions.get(key)
    if got is not None:
        return got
    decisions.need(name)
    func = func.with_attr("global_symbol", "main")
    default = schedule_func(func, target_d, dec.form)[0] if dec.use else func
    target, dev = tvm.target.Target(target_d), tvm.cpu(0)
    args = _random_args(func)
    try:
        d_rt, d_args, packed = _runnable(default or func, args, target)
        kernels = [(d_rt, d_args), (_build_kernel(tuned.with_attr("global_symbol", "main"), target), args)]
    except Exception as e:  # noqa: BLE001 — a record TVM cannot build here is not used; say why
        out = Decision(
            name,
            False,
            f"record does not build: {str(e).strip().splitlines()[-1][:160]}",
            None,
            None,
            None,
            {},
            "record",
        )
    else:
        (t_d, t_r), outs = _timed(kernels, dev)
        err = _agree(outs[0], outs[1], packed)
        if not err <= 2 * RTOL:  # the default is itself within RTOL of the loop nest
            out = Decision(name, False, f"record disagrees (relative error {err:.2e})", t_d, t_r, err, {}, "record")
        elif not t_r < t_d:
            out = Decision(
                name, False, f"record is not faster ({t_r:.3f} vs {t_d:.3f} ms)", t_d, t_r, err, {}, "record"
            )
        else:
            out = Decision(name, True, "record", t_d, t_r, err, {}, "record")
    decisions.put(key, out)
    return out


class Decisions:
    """The per-machine record of decisions: JSON lines, appended, each carrying the sha256 of its own text, so a
    line that a crash tore or a disk corrupted is not believed (that kernel is measured again); the last good
    line for a key wins. `seeds`: committed files of decisions measured on this kind of machine (read only,
    `committed_decisions`), read first. `defer`: a missing decision raises MeasureLater instead of being
    measured."""

    def __init__(self, path: Path | None, seeds: tuple[Path, ...] = (), defer: bool = False):
        self.path = path
        self.defer = defer
        self.known: dict[str, dict] = {}
        for f in (*seeds, *([path] if path is not None else [])):
            if f.exists():
                for raw in f.read_bytes().splitlines():
                    d = _checked(raw)
                    if d is not None:
                        self.known[d["key"]] = d

    def need(self, name: str) -> None:
        """About to measure kernel `name`: refused when deferred."""
        if self.defer:
            raise MeasureLater(
                f"kernel {name} has no kept decision on this machine: measured when the machine is quiet"
            )

    def get(self, key: str) -> Decision | None:
        d = self.known.get(key)
        if not d:
            return None
        try:
            return Decision(**{k: v for k, v in d.items() if k != "key"})
        except TypeError:  # a line of another version of this file: measured again
            return None

    def put(self, key: str, dec: Decision) -> None:
        self.known[key] = {"key": key, **asdict(dec)}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            body = json.dumps(self.known[key], sort_keys=True)
            line = json.dumps({"sha256": hashlib.sha256(body.encode()).hexdigest(), "d": body}) + "\n"
            fd = safefs.open_fd(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # a restored cache: no links
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)


def _checked(raw: bytes) -> dict | None:
    """One line of the decisions file, if it is whole and its checksum holds."""
    try:
        outer = json.loads(raw.decode("utf-8"))
        body = outer["d"]
        if hashlib.sha256(body.encode()).hexdigest() != outer["sha256"]:
            return None
        d = json.loads(body)
        return d if isinstance(d, dict) and isinstance(d.get("key"), str) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def decision(name: str, func, target_d: dict, decisions: Decisions) -> Decision:
    """The kept decision for this kernel on this machine, or a new one (measured now, then kept)."""
    key = _key(func, target_d)
    dec = decisions.get(key)
    if dec is None:
        decisions.need(name)
        dec = decide(name, func, target_d)
        decisions.put(key, dec)
    return dec


def _calls(mod) -> dict[str, int]:
    """How often Relax's main calls each PrimFunc (a kernel's time counts once per call)."""
    from tvm import ir, relax

    counts: dict[str, int] = {}

    def visit(node):
        if isinstance(node, relax.Call) and isinstance(node.op, ir.Op) and node.op.name == "relax.call_tir":
            gv = node.args[0]
            if isinstance(gv, ir.GlobalVar):
                counts[gv.name_hint] = counts.get(gv.name_hint, 0) + 1

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    return counts


def layout_free(mod) -> dict[str, list[int]]:
    """Per PrimFunc, the indices of its parameters that are a Relax constant at every call (the weights): what
    TVM's AttachAttrLayoutFreeBuffers computes per call site, here over all of a kernel's calls so that each
    kernel stays one function (and one decision)."""
    from tvm import ir, relax

    sites: dict[str, set[int]] = {}

    def visit(node):
        if isinstance(node, relax.Call) and isinstance(node.op, ir.Op) and node.op.name == "relax.call_tir":
            gv, args = node.args[0], node.args[1]
            if isinstance(gv, ir.GlobalVar) and isinstance(args, relax.Tuple):
                const = {i for i, a in enumerate(args.fields) if isinstance(a, ir.expr.Constant)}
                sites[gv.name_hint] = sites[gv.name_hint] & const if gv.name_hint in sites else const

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    return {k: sorted(v) for k, v in sites.items() if v}


def with_layout_free(func, free: list[int] | None):
    """The kernel with its constant parameters marked (schedule.LAYOUT_FREE), as it is decided and scheduled."""
    return func.with_attr(LAYOUT_FREE, [int(i) for i in free]) if free else func


def _record_ms(database, func, target_d: dict) -> float | None:
    """The database's best measured time (ms) for this kernel, None when it has no valid record."""
    import tvm

    rec = database.query_tuning_record(
        tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), tvm.target.Target(target_d), "main"
    )
    secs = [float(x) for x in (rec.run_secs or [])] if rec is not None else []
    return float(np.median(secs)) * 1e3 if secs and max(secs) < 1e9 else None


def schedule_untuned(mod, target_d: dict, decisions: Decisions, tuned: dict[str, float | None] | None = None):
    """Every PrimFunc of the fused module that is not scheduled yet gets the default schedule where
    `decide` says so; (new module, summary for the record). `tuned`: kernel -> the database record's ms, for
    the kernels the database scheduled (the summary's tuned share of latency)."""
    from tvm import tirx

    from harness.backends.tvm.schedule import schedule_func

    out = mod
    calls, free = _calls(mod), layout_free(mod)
    used, kept = [], []
    naive_ms = default_ms = 0.0
    for gv, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc) or func.attrs.get(SCHEDULED):
            continue
        func = with_layout_free(func, free.get(gv.name_hint))
        dec = decision(gv.name_hint, func, target_d, decisions)
        if dec.use:
            sched, _ = schedule_func(func, target_d, dec.form)
            out[gv] = sched
            used.append(gv.name_hint)
        else:
            kept.append(f"{gv.name_hint}: {dec.why}")
        n = calls.get(gv.name_hint, 1)
        naive_ms += n * (dec.naive_ms or 0.0)
        default_ms += n * (dec.default_ms or 0.0)
    summary = {
        "kernels_scheduled": len(used),
        "kernels_kept": len(kept),
        "kept": kept[:20],
        "kernel_ms_unscheduled": round(naive_ms, 3),  # Σ calls x ms over the kernels the database does not cover
        "kernel_ms_default": round(default_ms, 3),
    }
    if tuned:
        tuned_ms = sum(calls.get(k, 1) * (v or 0.0) for k, v in tuned.items())
        summary["kernels_tuned"] = len(tuned)
        summary["kernel_ms_tuned"] = round(tuned_ms, 3)
        summary["tuned_share"] = round(tuned_ms / (tuned_ms + default_ms), 4) if tuned_ms + default_ms > 0 else None
    return out, summary


def build(mod, target_d: dict, decisions_path: Path | None, database=None, defer: bool = False):
    """relax.build of `mod` for `target_d`: legalise and fuse (the same passes MetaSchedule's task extraction
    runs, so database keys match), apply `database` when given, the default schedule for every kernel still
    unscheduled, then Relax's own lowering. Returns (executable, summary). `defer`: raise MeasureLater rather
    than measure a kernel (a compile beside others)."""
    import tvm
    from tvm import tirx
    from tvm.relax.transform import MetaScheduleApplyDatabase

    target = tvm.target.Target(target_d)
    fused = fuse(mod, target)
    tuned: dict[str, float | None] = {}
    slower: dict[str, tuple[float, float]] = {}  # kernel -> (record ms, default ms): the record not used
    refused: dict[str, str] = {}  # kernel -> why a record was not used (it disagrees, it does not build)
    if database is not None:
        before = fused
        with database, target, tvm.transform.PassContext(opt_level=3):
            fused = MetaScheduleApplyDatabase()(fused)
        decisions = Decisions(decisions_path, committed_decisions(target_d), defer)
        free = layout_free(before)
        for gv, func in fused.functions_items():
            if not (isinstance(func, tirx.PrimFunc) and func.attrs.get(SCHEDULED)):
                continue
            if not runs_here(target_d):  # a remote CPU: nothing to measure here, the database is trusted
                tuned[gv.name_hint] = _record_ms(database, before[gv], target_d)
                continue
            # the record against the default schedule's choice for the kernel, side by side on this machine: a
            # record from a short search, or one whose time was measured under another load, can lose to it;
            # then the kernel goes back to the default schedule's decision
            default = with_layout_free(before[gv], free.get(gv.name_hint))  # the kernel as tvm-llvm decides it
            dec = decision(gv.name_hint, default, target_d, decisions)
            rd = record_against_default(gv.name_hint, default, func, dec, target_d, decisions)
            if rd.use:
                tuned[gv.name_hint] = rd.scheduled_ms
                continue
            fused[gv] = before[gv]
            if rd.naive_ms is not None and rd.scheduled_ms is not None and rd.why.startswith("record is not faster"):
                slower[gv.name_hint] = (round(rd.scheduled_ms, 4), round(rd.naive_ms, 4))
            else:
                refused[gv.name_hint] = rd.why
    # outside any pass context: each kernel is built and run alone
    if runs_here(target_d):
        decisions = Decisions(decisions_path, committed_decisions(target_d), defer)
        fused, summary = schedule_untuned(fused, target_d, decisions, tuned)
    else:  # a remote CPU: nothing can be measured or checked here, so nothing is changed
        summary = {
            "kernels_scheduled": 0,
            "not_applied": "the target is not this host's CPU: kernels cannot be "
            "measured or checked here, so they keep their loop nests",
        }
    if database is not None:
        summary["records_slower_than_default"] = slower
        if refused:
            summary["records_refused"] = refused
    fused = prepack(fused, target, summary)
    return lower(fused, target), summary


def fuse(mod, target):
    """The Relax module legalised and fused into PrimFunc kernels (the same passes MetaSchedule's task
    extraction runs, so database keys match), constants folded."""
    import tvm
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as rp  # the CPU pipeline's own pass lists

    with target, tvm.transform.PassContext(opt_level=3):
        return tvm.transform.Sequential(
            [
                *rp.library_dispatch_passes(target),
                relax.transform.LegalizeOps(),
                relax.transform.AnnotateTIROpPattern(),
                relax.transform.FoldConstant(),
                relax.transform.FuseOps(),
                relax.transform.FuseTIR(),
            ]
        )(mod)


def lower(fused, target):
    """Relax's own lowering of a fused (and scheduled) module to an executable."""
    import tvm
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as rp

    rest = tvm.transform.Sequential(rp.dataflow_lower_passes(target) + rp.finalize_passes(target))
    with target, tvm.transform.PassContext(opt_level=3):
        return relax.build(fused, target=target, relax_pipeline=rest)


def prepack(mod, target, summary: dict):
    """Weights packed at build time: every packing block the default schedule marked (schedule.PREPACK) split
    into a kernel of its own by TVM's SplitLayoutRewritePreproc, then run on the constant weight by FoldConstant.
    The summary counts the packed weights, and any packing left to run per call (a fold that did not happen).

    The pass sees only the Relax functions and the marked kernels: TVM 0.27's SplitLayoutRewritePreproc
    aborts on any PrimFunc without a root block of compute blocks — legalised cumsum, in segnet's index-free
    unpooling, is one opaque block — even when there is nothing in it to split
    (docs/upstream/tvm_split_layout_rewrite_opaque_kernel.py)."""
    import tvm
    from tvm import relax, tirx

    marked = {gv for gv, f in mod.functions_items() if isinstance(f, tirx.PrimFunc) and _prepack_blocks(f) is not None}
    if not marked:
        return mod
    sub = tvm.IRModule({gv: f for gv, f in mod.functions_items() if gv in marked or isinstance(f, relax.Function)})
    with target, tvm.transform.PassContext(opt_level=3):
        split = relax.transform.SplitLayoutRewritePreproc()(sub)
        for gv, f in mod.functions_items():
            if gv not in marked and not isinstance(f, relax.Function):
                split[gv] = f
        n = _count_calls(split, "_weight_prepack")
        out = tvm.transform.Sequential([relax.transform.FoldConstant(), relax.transform.DeadCodeElimination()])(split)
    left = _count_calls(out, "_weight_prepack")
    summary["weights_packed_at_build"] = n - left
    if left:
        summary["weights_packed_per_call"] = left
    return out


def _prepack_blocks(func) -> list | None:
    """The kernel's blocks when one of them is marked PREPACK, else None."""
    try:
        blocks = _blocks(func)
    except Exception:  # noqa: BLE001 — a kernel without a root block (legalised cumsum): nothing of ours in it
        return None
    return blocks if any(PREPACK in blk.annotations for blk in blocks) else None


def _count_calls(mod, suffix: str) -> int:
    return sum(n for k, n in _calls(mod).items() if k.endswith(suffix))


# ------------------------------------------------------------------------------------------------------
# what the backends call


def runs_here(target_d: dict) -> bool:
    """Whether code for `target_d` can be run (and so measured) on this host: its CPU as LLVM detects it, or
    the baseline x86-64 CPU the count gate builds for; never a remote's other CPU (an AVX-512 kernel on a host
    without it is an illegal instruction)."""
    import tvm

    from harness.measure.counting import COUNT_MCPU

    host = tvm.target.Target.from_device(tvm.cpu())
    triple = str(host.attrs.get("mtriple", "")) or None
    if target_d.get("mtriple") not in (None, triple):
        return False
    return target_d.get("mcpu") in (str(host.attrs.get("mcpu", "")), COUNT_MCPU)


def decisions_path(art, target_d: dict) -> Path | None:
    """The per-machine decisions beside the compile cache (None: caching off, decided afresh each build)."""
    return None if art.cache_dir is None else decisions_file(Path(art.cache_dir), target_d)


def committed_decisions(target_d: dict) -> tuple[Path, ...]:
    """The decisions committed for this kind of machine (`make decisions`), beside its tuning database:
    tuning/tvm-<version>/<target slug>/default_schedule.jsonl. Like TVM's TopHub, a machine measured once
    spares every fresh clone on it the measuring; a decision's key holds the kernel, the target, TVM's version
    and this code, so one measured elsewhere or by other code never matches."""
    import tvm

    from harness.backends.tvm.common import db_dir

    f = db_dir(target_d, tvm.__version__) / "default_schedule.jsonl"
    try:
        meta = json.loads(f.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return ()
    # decisions of other code would never match a key: not read at all (`make decisions` measures them again)
    return (f,) if f.exists() and meta.get("code") == cache.source_digest(SOURCES) else ()


def commit_decisions(build_dir: Path, threads: int) -> Path:
    """`make decisions`: the decisions a sweep measured under `build_dir` for this host (TVM's target for it
    with `threads`), with the committed ones that are still current, become the committed ones, with what they
    were measured with (code digest, TVM version, target, CPU) beside them."""
    import platform

    import tvm

    from harness.backends.tvm.common import db_dir, host_target

    target_d = host_target(threads)
    src = decisions_file(build_dir / "compiled", target_d)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no decisions measured for {target_d} under {build_dir}")
    by_key: dict[str, bytes] = {}  # the committed ones still current, then the new: the last for a key wins
    for f in (*committed_decisions(target_d), src):
        for ln in f.read_bytes().splitlines():
            d = _checked(ln)
            if d is not None:
                by_key[d["key"]] = ln
    lines = list(by_key.values())
    out = db_dir(target_d, tvm.__version__) / "default_schedule.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    safefs.write_atomic(out, b"\n".join(lines).decode() + "\n")
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    meta = {
        "code": cache.source_digest(SOURCES),
        "tvm": tvm.__version__,
        "target": target_d,
        "cpu": cpu,
        "decisions": len(lines),
        "measured": time.strftime("%Y-%m-%d"),
    }
    safefs.write_atomic(out.with_suffix(".json"), json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return out


def decisions_file(cache_dir: Path, target_d: dict) -> Path:
    import tvm

    slug = f"{target_d.get('mcpu', 'generic')}-{target_d.get('num-cores', 'x')}c"
    safefs.component(slug, "target CPU", "the TVM target")  # a remote's CPU name is not a path
    return cache_dir / f"default-schedule-tvm-{tvm.__version__}-{slug}.jsonl"


def _sidecar(lib: Path) -> Path:
    return lib.with_name(lib.name + ".schedule.json")


def keep_summary(lib: Path | None, summary: dict) -> None:
    """The build's summary beside its cached library, so that a cache hit reports what the library holds."""
    if lib is not None:
        tmp = cache.tmp_path(_sidecar(lib))
        tmp.write_text(json.dumps(summary, sort_keys=True))
        cache.commit(tmp, _sidecar(lib))


def cached_summary(lib: Path) -> dict:
    """The summary kept beside a cached library; {} when it is missing or fails its checksum."""
    if not cache.is_valid(_sidecar(lib)):
        return {}
    try:
        return info(json.loads(_sidecar(lib).read_text()))
    except (OSError, ValueError):
        return {}


def info(summary: dict) -> dict:
    """The record's details for a build: how many kernels run the default schedule, which kept their loops."""
    return {"default_schedule": summary}


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 4 or sys.argv[1] != "commit":
        print(
            "usage: python -m harness.backends.tvm.defaults commit BUILD_DIR THREADS (make decisions)", file=sys.stderr
        )
        sys.exit(2)
    print(f"committed: {commit_decisions(Path(sys.argv[2]), int(sys.argv[3]))}")
