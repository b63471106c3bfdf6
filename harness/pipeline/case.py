"""One case: (prepared model, lowering, backend) -> compile, run, compare, time -> Record.

Runs inside a worker process; everything that can go wrong becomes the record's status and reason.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from pathlib import Path

from harness.backends import ModelArtifact, compile_case, get_backend
from harness.backends.base import BackendUnavailable, MeasureLater, UnsupportedModel
from harness.checking import forms
from harness.core import cache
from harness.core.config import RunConfig
from harness.core.onnx_io import model_digest
from harness.core.records import CaseKey, Numerics, OutputNumerics, Record, case_id
from harness.lowerings import get_lowering
from harness.pipeline.prepare import ModelRef, Prepared

# The code that produces a lowered model: its source is part of the lowered model's cache key
# (cache.source_digest), so a change to a lowering never reuses a model lowered the old way.
_HARNESS = Path(__file__).resolve().parents[1]
LOWERING_SOURCES = (*sorted((_HARNESS / "lowerings").glob("*.py")), _HARNESS / "core" / "convtranspose.py")


def _performed_flops(path: str, prep: Prepared) -> int | None:
    import onnx

    from harness.core.onnx_io import fix_input_shapes
    from harness.measure.flops import count_flops

    return count_flops(fix_input_shapes(onnx.load(path), prep.input_shapes), useful=False)


def lowered_path(prep: Prepared, lowering: str, build_dir: Path, options: dict | None = None) -> tuple[str, dict]:
    """The ONNX variant for `lowering` and its summary (nodes lowered / declined with reasons, the engine's
    lowering options that applied), content-addressed by the source bytes, the lowering's name, the options and
    the lowering code (LOWERING_SOURCES)."""
    import onnx

    if lowering == "native":
        n = prep.conv_transpose_nodes
        return prep.onnx_path, {"convtranspose_nodes": n, "lowered": 0, "declined": []}
    src = model_digest(prep.onnx_path).encode()
    code = cache.source_digest(LOWERING_SOURCES)
    opts = json.dumps(sorted((options or {}).items())).encode() if options else b""
    key = hashlib.sha256(src + b"\0" + lowering.encode() + b"\0" + code.encode() + opts).hexdigest()[:20]
    out = build_dir / "lowered" / f"{Path(prep.onnx_path).stem}-{lowering}-{key}.onnx"
    meta = out.with_suffix(".json")
    if cache.is_valid(out) and cache.is_valid(meta):
        return str(out), json.loads(meta.read_text())
    result = get_lowering(lowering).apply(onnx.load(prep.onnx_path), options=options)
    onnx.checker.check_model(result.model)
    tmp = cache.tmp_path(out)
    onnx.save_model(result.model, str(tmp))
    cache.commit(tmp, out)
    tmp_meta = cache.tmp_path(meta)
    tmp_meta.write_text(json.dumps(result.summary()))
    cache.commit(tmp_meta, meta)
    return str(out), result.summary()


def rewritten_path(path: str, names: tuple[str, ...], build_dir: Path) -> tuple[str, list[dict]]:
    """`path` with the engine's rewrites (harness.lowerings.REWRITES) applied where they apply, and what each
    did; content-addressed like a lowered model. Unchanged (and []) when none applies."""
    import onnx

    from harness.lowerings import get_rewrite

    model = None
    todo = []
    for name in names:
        applies, _ = get_rewrite(name)
        model = model or onnx.load(path)
        if applies(model):
            todo.append(name)
    if not todo:
        return path, []
    code = cache.source_digest(LOWERING_SOURCES)
    key = hashlib.sha256(model_digest(path).encode() + b"\0" + ",".join(todo).encode() + b"\0" + code.encode())
    out = build_dir / "lowered" / f"{Path(path).stem}-{'+'.join(todo)}-{key.hexdigest()[:20]}.onnx"
    meta = out.with_suffix(".json")
    if cache.is_valid(out) and cache.is_valid(meta):
        return str(out), json.loads(meta.read_text())
    summaries = []
    for name in todo:
        res = get_rewrite(name)[1](model)
        model = res.model
        summaries.append(res.summary())
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.tmp_path(out)
    onnx.save_model(model, str(tmp))
    cache.commit(tmp, out)
    tmp_meta = cache.tmp_path(meta)
    tmp_meta.write_text(json.dumps(summaries))
    cache.commit(tmp_meta, meta)
    return str(out), summaries


def _profile(compiled, feeds, runs: int) -> dict:
    """The record's details.profile (backends/base.py `profile_summary`), or why there is none: a profile
    that fails does not fail the case, whose numbers are already measured."""
    from harness.backends.base import profile_summary

    try:
        return profile_summary(compiled.profile(feeds, runs))
    except NotImplementedError as e:
        return {"unavailable": str(e)}
    except Exception as e:  # noqa: BLE001 — an engine's profiler failing: said in the record, the case stands
        return {"unavailable": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"}


def case_key(
    prep: Prepared | tuple[ModelRef, int], lowering: str, backend: str, cfg: RunConfig, run_id: str
) -> CaseKey:
    """What every record of this case carries, whatever becomes of it — built here only. `prep` is the
    prepared model, or (ref, batch) when it could not be prepared (then the shapes are the reference's own
    and nothing is counted)."""
    ref, batch = (prep.ref, prep.batch) if isinstance(prep, Prepared) else prep
    done = prep if isinstance(prep, Prepared) else None
    shapes = done.input_shapes if done else dict(ref.shapes)
    return CaseKey(
        run_id=run_id,
        case_id=case_id(ref.label, lowering, backend, batch),
        model=ref.name,
        lowering=lowering,
        backend=backend,
        batch=batch,
        input_shapes={k: tuple(v) for k, v in shapes.items()},
        dtype="float32",
        size=ref.size,
        threads=cfg.threads,
        flops=done.flops if done else None,
        min_bytes=done.min_bytes if done else None,
    )


def numerics_of(cmp, policy: str) -> Numerics:
    """A record's `numerics` from a comparison (harness/checking/numerics.py) under `policy`."""
    return Numerics(
        max_abs=cmp.max_abs,
        max_rel=cmp.max_rel,
        rel_l2=cmp.rel_l2,
        atol=cmp.atol,
        rtol=cmp.rtol,
        rel_l2_tol=cmp.rel_l2_tol,
        policy=policy,
        passed=cmp.passed,
        outputs=tuple(
            OutputNumerics(
                index=o.index,
                passed=o.passed,
                shape=tuple(o.shape),
                ref_shape=tuple(o.ref_shape),
                max_abs=o.max_abs,
                rel_l2=o.rel_l2,
                mismatches=o.mismatches,
                worst_index=tuple(o.worst_index) if o.worst_index else None,
                nonfinite=o.nonfinite,
            )
            for o in cmp.outputs
        ),
    )


def _known_in_graph(path: str, backend: str, lowering: str, details: dict) -> str:
    """For a mismatch or an engine error: the graph-ledger entries (harness/checking/known.py) the model the case ran holds — put
    in `details.known` and said in the reason, with the reproducer; '' when none."""
    import onnx

    from harness.checking.known import graph_matches

    try:
        found = graph_matches(backend, lowering, onnx.load(path, load_external_data=False))
    except Exception:  # noqa: BLE001 — the ledger explains; failing to read it changes no verdict
        return ""
    if not found:
        return ""
    details["known"] = [{"id": e.id, "reproducer": e.reproducer} for e in found]
    return "".join(f" — known: {e.id} ({e.reproducer})" for e in found)


def case_artifact(prep: Prepared, lowering: str, backend, cfg: RunConfig, build_dir: Path, details: dict):
    """What `backend` compiles for this case: the model under `lowering`, rewritten where the engine needs it
    (`details` gains `lowering` and `rewrites`), with the compile cache under `build_dir`."""
    path, lowered = lowered_path(prep, lowering, build_dir, backend.lowering_options)
    details["lowering"] = lowered
    if backend.needs_rewrites:
        path, rewrites = rewritten_path(path, backend.needs_rewrites, build_dir)
        if rewrites:
            details["rewrites"] = rewrites
    return ModelArtifact(
        path,
        prep.input_shapes,
        prep.input_dtypes,
        prep.ref.name if prep.ref.is_zoo else None,
        prep.ref.size,
        cfg.seed,
        cache_dir=str(build_dir / "compiled"),
    )


def run_case(prep: Prepared, lowering: str, backend_id: str, cfg: RunConfig, run_id: str, build_dir: Path) -> Record:
    key = case_key(prep, lowering, backend_id, cfg, run_id)
    details: dict = {"reference": prep.reference, "onnx": Path(prep.onnx_path).name}
    if prep.export:
        details["exporter"] = prep.export.get("exporter")
        if prep.export.get("fallback_reason"):
            details["export_fallback"] = prep.export["fallback_reason"]
        details["exporters"] = {
            k: {f: v[f] for f in ("status", "reason", "rel_l2") if f in v}
            for k, v in (prep.export.get("exporters") or {}).items()
        }
    if prep.sanitation:
        details["sanitation"] = prep.sanitation
    backend = get_backend(backend_id)
    held: list = []
    start = time.time()
    try:
        rec = _run_case(prep, lowering, backend, cfg, build_dir, key, details, held)
    finally:
        for c in held:
            c.close()  # e.g. a remote session goes back to the tracker's pool
    # when the case held its worker (and a remote server): epoch seconds, for overlap and busy-time accounting
    return rec.with_details(wall={"start": round(start, 3), "end": round(time.time(), 3)})


def _run_case(
    prep: Prepared, lowering: str, backend, cfg: RunConfig, build_dir: Path, key: CaseKey, details: dict, held: list
) -> Record:
    stage = "lower"
    art = None
    try:
        art = case_artifact(prep, lowering, backend, cfg, build_dir, details)
        low = details["lowering"]
        if lowering != "native" and low.get("convtranspose_nodes", 0) and not low.get("lowered"):
            # nothing was lowered: the graph is the native one, and its native case measures it — not this name
            n = low["convtranspose_nodes"]
            why = low["declined"][0]["reason"] if low.get("declined") else "no reason given"
            return key.record(
                "skipped", f"{lowering} declined every ConvTranspose ({n} of {n}; first: {why})", details=details
            )
        flops_performed = _performed_flops(art.onnx_path, prep)
        stage = "compile"
        if backend.availability():
            backend.load()  # engine import time is not compile time
        t0 = time.perf_counter()
        try:
            compiled = compile_case(backend, art, cfg)
        except BackendUnavailable as e:  # e.g. CUDA: built here, no device to run it on
            if getattr(e, "info", None):
                details.update(e.info)
                details["compile_s"] = time.perf_counter() - t0
            raise
        compile_s = time.perf_counter() - t0
        held.append(compiled)
        details.update(compiled.info)
        if cfg.compile_only:
            return key.record(
                "ok", "built (compile only)", compile_s=compile_s, flops_performed=flops_performed, details=details
            )
        feeds, refs = prep.load_data()
        stage = "run"
        outs = compiled.run(feeds)
        details.update(compiled.info)  # facts learnt while running (device self-checks)
        from harness.checking.numerics import compare

        policy = compiled.info.get("numerics_policy", "float32")
        cmp = compare(outs, refs, policy)
        if prep.ref.is_zoo and forms.in_pair(key.model):  # the same function written another way: compared
            found = forms.check(
                key.model,
                prep.ref.size,
                key.batch,
                lowering,
                key.backend,
                outs,
                refs,
                build_dir,
                key.run_id,
                lambda m, lw: case_id(f"{m}@{prep.ref.size}", lw, key.backend, key.batch),
            )
            if found:
                details["forms"] = found
        latency = None
        gflops = None
        counts = None
        if cfg.counter:  # bench --counts: callgrind's counts instead of the clock
            stage = "count"
            from fnmatch import fnmatchcase

            pct = next((p for pat, p in cfg.inject_slowdown if fnmatchcase(key.case_id, pat)), 0.0)
            counts = compiled.count(feeds, build_dir, pct)
            if pct:
                details["injected_slowdown"] = {**counts.injected, "kind": "counts"}
        elif cfg.timing is not None:
            stage = "time"
            from fnmatch import fnmatchcase

            from harness.measure.timing import ReferenceKernel, latency_of

            pct = next((p for pat, p in cfg.inject_slowdown if fnmatchcase(key.case_id, pat)), 0.0)
            samples, ref, injected = compiled.time_interleaved(feeds, cfg.timing, ReferenceKernel(), pct)
            # with the same case expressed against fixed work timed in between its calls (harness/perfgate/compare.py);
            # none for a remote device: the kernel runs here, the case there (harness/backends/tvm/remote.py)
            latency = latency_of(samples, ref or None, cfg.timing)
            if pct:
                details["injected_slowdown"] = {
                    "pct": pct,
                    **injected,
                    "note": "test-only busy-wait (bench --inject-slowdown)",
                }
            if prep.flops:
                gflops = prep.flops / (latency.median / 1e3) / 1e9
            if cfg.profile_runs and cmp.passed:
                stage = "profile"
                details["profile"] = _profile(compiled, feeds, cfg.profile_runs)
        reason = cmp.reason
        if not cmp.passed:
            reason += _known_in_graph(art.onnx_path, key.backend, lowering, details)
        return key.record(
            "ok" if cmp.passed else "mismatch",
            reason,
            numerics=numerics_of(cmp, policy),
            latency_ms=latency,
            counts=counts,
            compile_s=compile_s,
            gflops=gflops,
            flops_performed=flops_performed,
            details=details,
        )
    except MeasureLater as e:  # a compile-ahead beside others: compiled again alone (harness/pipeline/sweep.py)
        details["deferred"] = str(e)
        return key.record("skipped", f"deferred: {e}", details=details)
    except (BackendUnavailable, UnsupportedModel) as e:
        return key.record("skipped", str(e), details=details, compile_s=details.pop("compile_s", None))
    except Exception as e:  # noqa: BLE001 — an engine's failure is this case's result
        tb = traceback.format_exc().strip().splitlines()
        details["traceback_tail"] = tb[-8:]
        msg = str(e).strip().splitlines()
        # TVM's internal errors end with a long traceback: the failed check is the line that says what broke
        text = next((ln.strip() for ln in msg if "Check failed" in ln), msg[-1] if msg else "")
        known = _known_in_graph(art.onnx_path, key.backend, lowering, details) if art is not None else ""
        if getattr(e, "retryable", False):  # a remote server lost mid-case: the sweep may run it elsewhere
            details["remote_lost"] = {"server": getattr(e, "server", None), "stage": stage}
        return key.record("error", f"{stage}: {type(e).__name__}: {text}"[:500] + known, details=details)
