"""Building a Relax module for the CPU with the default schedule (harness/backends/tvm/schedule.py) wherever
the MetaSchedule database has no record — and only where it is faster and right.

Each fused kernel the database does not cover is scheduled in each of the schedule's forms that applies
(schedule.FORMS), and the scheduled kernels and the unscheduled one are built alone, run on the same random
inputs and timed side by side on this machine. The fastest scheduled one is used when its outputs agree with
the unscheduled kernel's (float outputs within `RTOL` of the largest magnitude, others exactly) and it is
faster; otherwise the kernel keeps its loop nest, and the build says which and why. The decision is kept in a per-machine file beside the compile cache, keyed by the kernel's
structural hash, the target, the TVM version and the schedule's source, so a kernel is measured once per
machine, not once per model that contains it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness.backends.tvm.schedule import SCHEDULED
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


def _timed(rts: list, args, dev) -> tuple[list[float], list[list[np.ndarray]]]:
    """Every kernel (the unscheduled one first) on copies of the same inputs, then timed in alternation
    (A B C A B C ...), the minimum of each: a load on the machine slows every round alike instead of deciding
    for one. A kernel whose first call took over 0.1 s is timed by single calls, two rounds (the first call
    paid page faults); the others by TVM's time evaluator, 7 rounds of 3 repeats of at least 5 ms each (the
    warm minimum) — also when the loop nest beside them is slow, so a fast kernel's time is not one cold call."""
    import tvm

    outs, tens, slow = [], [], []
    for rt in rts:
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


def _agree(naive: list[np.ndarray], sched: list[np.ndarray]) -> float:
    """The worst relative difference over every argument after the call — the inputs are the same copies in
    both, so this is the outputs' (inf where shapes, NaN placement or integers differ)."""
    worst = 0.0
    for a, b in zip(naive, sched):
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
            built.append((form, _build_kernel(sched.with_attr("global_symbol", "main"), target), outcome))
        except Exception as e:  # noqa: BLE001 — TVM refusing to build a scheduled kernel: that form is out, say why
            failed.append(f"{form}: scheduled kernel does not build: {str(e).strip().splitlines()[-1][:160]}")
    rules = forms[0][2].blocks
    if not built:
        why = "; ".join(failed) or "no rule applies"
        return Decision(name, False, why, _time_alone(naive_rt, args, dev), None, None, rules)
    times, outs = _timed([naive_rt, *(rt for _, rt, _ in built)], args, dev)
    t_n, tried = times[0], []
    for (form, _, outcome), t_s, out_s in zip(built, times[1:], outs[1:]):
        tried.append((form, t_s, _agree(outs[0], out_s), outcome.blocks))
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
    func = func.with_attr("global_symbol", "main")
    default = schedule_func(func, target_d, dec.form)[0] if dec.use else func
    target, dev = tvm.target.Target(target_d), tvm.cpu(0)
    try:
        rts = [_build_kernel((default or func).with_attr("global_symbol", "main"), target)]
        rts.append(_build_kernel(tuned.with_attr("global_symbol", "main"), target))
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
        (t_d, t_r), outs = _timed(rts, _random_args(func), dev)
        err = _agree(outs[0], outs[1])
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
    line for a key wins."""

    def __init__(self, path: Path | None):
        self.path = path
        self.known: dict[str, dict] = {}
        if path is not None and path.exists():
            for raw in path.read_bytes().splitlines():
                d = _checked(raw)
                if d is not None:
                    self.known[d["key"]] = d

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
    calls = _calls(mod)
    used, kept = [], []
    naive_ms = default_ms = 0.0
    for gv, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc) or func.attrs.get(SCHEDULED):
            continue
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


def build(mod, target_d: dict, decisions_path: Path | None, database=None):
    """relax.build of `mod` for `target_d`: legalise and fuse (the same passes MetaSchedule's task extraction
    runs, so database keys match), apply `database` when given, the default schedule for every kernel still
    unscheduled, then Relax's own lowering. Returns (executable, summary)."""
    import tvm
    from tvm import relax, tirx
    from tvm.relax.backend.cpu_generic import pipeline as rp  # the CPU pipeline's own pass lists
    from tvm.relax.transform import MetaScheduleApplyDatabase

    target = tvm.target.Target(target_d)
    with target, tvm.transform.PassContext(opt_level=3):
        fused = tvm.transform.Sequential(
            [
                *rp.library_dispatch_passes(target),
                relax.transform.LegalizeOps(),
                relax.transform.AnnotateTIROpPattern(),
                relax.transform.FoldConstant(),
                relax.transform.FuseOps(),
                relax.transform.FuseTIR(),
            ]
        )(mod)
    tuned: dict[str, float | None] = {}
    slower: dict[str, tuple[float, float]] = {}  # kernel -> (record ms, default ms): the record not used
    refused: dict[str, str] = {}  # kernel -> why a record was not used (it disagrees, it does not build)
    if database is not None:
        before = fused
        with database, target, tvm.transform.PassContext(opt_level=3):
            fused = MetaScheduleApplyDatabase()(fused)
        decisions = Decisions(decisions_path)
        for gv, func in fused.functions_items():
            if not (isinstance(func, tirx.PrimFunc) and func.attrs.get(SCHEDULED)):
                continue
            if not runs_here(target_d):  # a remote CPU: nothing to measure here, the database is trusted
                tuned[gv.name_hint] = _record_ms(database, before[gv], target_d)
                continue
            # the record against the default schedule's choice for the kernel, side by side on this machine: a
            # record from a short search, or one whose time was measured under another load, can lose to it;
            # then the kernel goes back to the default schedule's decision
            dec = decision(gv.name_hint, before[gv], target_d, decisions)
            rd = record_against_default(gv.name_hint, before[gv], func, dec, target_d, decisions)
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
        fused, summary = schedule_untuned(fused, target_d, Decisions(decisions_path), tuned)
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
    rest = tvm.transform.Sequential(rp.dataflow_lower_passes(target) + rp.finalize_passes(target))
    with target, tvm.transform.PassContext(opt_level=3):
        ex = relax.build(fused, target=target, relax_pipeline=rest)
    return ex, summary


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
