"""`convtx optimize`: per ConvTranspose node, the fastest lowering that passes the numerical policy on one
backend — measured, not guessed — written out as one ONNX model with a JSON sidecar explaining each choice.

Procedure (every measurement is a full case: compile, run, compare with the float64 reference, time):
1. the model as it is (all native) — the baseline;
2. per node n and lowering L: the model with only n lowered by L (every other node native); the gain of
   (n, L) is baseline − that latency, kept only when the case passed the numerical check;
3. per node, the lowering with the largest gain that beats the node's measurement noise (the baseline's
   p10–p90 half-width), else native;
4. the combined model is measured and checked; if it fails the check, or a single lowering applied to every
   node is faster, that is what is written instead, and the sidecar says so.
Everything runs in the same worker process per backend as `bench`, so a crash is one failed candidate.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from harness.core.errors import ConvtxError


def _variant(prep, build: Path, name: str, choice: dict[str, str], options: dict | None = None) -> str:
    """The model with node -> lowering applied (nodes not named stay native) in the form the engine asks
    (`options`: Backend.lowering_options), cached by content."""
    import hashlib

    import onnx

    from harness.core import cache
    from harness.core.onnx_io import model_digest
    from harness.lowerings import get_lowering
    from harness.pipeline.case import LOWERING_SOURCES

    key = hashlib.sha256(
        model_digest(prep.onnx_path).encode()
        + json.dumps(sorted(choice.items())).encode()
        + cache.source_digest(LOWERING_SOURCES).encode()
        + (json.dumps(sorted(options.items())).encode() if options else b"")
    ).hexdigest()[:16]
    out = build / "optimize" / f"{Path(prep.onnx_path).stem}-{name}-{key}.onnx"
    if cache.is_valid(out):
        return str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load(prep.onnx_path)
    for lowering in sorted(set(choice.values())):
        if lowering == "native":
            continue
        nodes = frozenset(n for n, lw in choice.items() if lw == lowering)
        res = get_lowering(lowering).apply(model, only=nodes, options=options)
        model = res.model
        if res.declined:
            raise ConvtxError(f"{lowering} declined {', '.join(d[0] for d in res.declined)}")
    tmp = cache.tmp_path(out)
    onnx.save(model, str(tmp))
    cache.commit(tmp, out)
    return str(out)


def optimize(ref, backend: str, cfg, build: Path, lowerings: list[str], prep, say) -> tuple[str, dict]:
    import onnx

    from harness.backends import BACKENDS
    from harness.core.records import finite_json
    from harness.pipeline.case import case_key
    from harness.pipeline.sweep import run_case_isolated
    from harness.pipeline.worker import WorkerClient

    model = onnx.load(prep.onnx_path)
    nodes = [n.name or n.output[0] for n in model.graph.node if n.op_type == "ConvTranspose"]
    if not nodes:
        raise ConvtxError(f"{ref.label}: no ConvTranspose node; nothing to choose")
    options = BACKENDS[backend].lowering_options
    avail = BACKENDS[backend].availability()
    if not avail:
        raise ConvtxError(f"{backend} unavailable: {avail.reason}")
    w = WorkerClient(backend, BACKENDS[backend].worker_env(cfg), build / "logs" / f"worker-optimize-{backend}.log")
    measured: dict[str, dict] = {}

    def measure(name: str, choice: dict[str, str]) -> dict:
        try:
            path = _variant(prep, build, name, choice, options)
        except ConvtxError as e:
            rec = {"status": "declined", "reason": str(e)}
            measured[name] = rec
            return rec
        p = replace(prep, onnx_path=path)
        r = run_case_isolated(
            w, p, "native", backend, cfg, "optimize", build, case_key(p, name, backend, cfg, "optimize")
        )
        rec = {
            "status": r.status,
            "reason": r.reason,
            "ms": r.latency_ms.median if r.latency_ms else None,
            "p10": r.latency_ms.p10 if r.latency_ms else None,
            "p90": r.latency_ms.p90 if r.latency_ms else None,
            # the sidecar is strict JSON: a non-finite error is written as "inf"/"nan", as in a record
            "rel_l2": finite_json(r.numerics.rel_l2) if r.numerics else None,
            "choice": choice,
        }
        measured[name] = rec
        ms = f" {rec['ms']:.3f} ms" if rec["ms"] is not None else ""
        say(f"[optimize] {name}: {r.status}{ms}" + (f" — {r.reason}" if r.status != "ok" and r.reason else ""))
        return rec

    try:
        base = measure("native", {})
        if base["status"] != "ok":
            raise ConvtxError(
                f"{ref.label} on {backend}: the unmodified model does not pass ({base['status']}: "
                f"{base['reason']}); nothing to optimise against"
            )
        noise = (base["p90"] - base["p10"]) / 2
        per_node = []
        for n in nodes:
            cands = {}
            for lw in lowerings:
                if lw == "native":
                    continue
                rec = measure(f"{n}={lw}".replace("/", "_"), {n: lw})
                cands[lw] = {
                    **{k: rec.get(k) for k in ("status", "ms", "rel_l2", "reason")},
                    "gain_ms": (base["ms"] - rec["ms"]) if rec.get("ms") is not None else None,
                }
            ok = {lw: c for lw, c in cands.items() if c["status"] == "ok" and c["gain_ms"] is not None}
            best = max(ok, key=lambda lw: ok[lw]["gain_ms"], default=None)
            chosen = best if best is not None and ok[best]["gain_ms"] > noise else "native"
            why = (
                f"{chosen}: {ok[chosen]['gain_ms']:.3f} ms faster than native on this node"
                if chosen != "native"
                else "native: no lowering that passes beat the baseline by more than its p10-p90 noise "
                f"({noise:.3f} ms)"
            )
            per_node.append({"node": n, "chosen": chosen, "why": why, "candidates": cands})
        choice = {p["node"]: p["chosen"] for p in per_node}
        combined = measure("optimized", choice) if any(v != "native" for v in choice.values()) else base
        uniform = {}
        for lw in lowerings:
            if lw != "native":
                uniform[lw] = measure(f"all={lw}", {n: lw for n in nodes})
        if any(v != "native" for v in choice.values()):
            final_name, final, note = "optimized", combined, "per-node choices combined"
        else:
            final_name, final, note = "native", base, "no lowering beat the original on any node"
        ok_uniform = {lw: r for lw, r in uniform.items() if r["status"] == "ok" and r.get("ms") is not None}
        best_uniform = min(ok_uniform, key=lambda lw: ok_uniform[lw]["ms"], default=None)
        if combined["status"] != "ok":
            final_name, final, choice = "native", base, {n: "native" for n in nodes}
            note = f"the combined model failed the check ({combined['reason']}); the original is written"
        # a uniform lowering replaces the per-node result only when clearly faster: its p90 below their p10
        if best_uniform and final.get("p10") is not None and ok_uniform[best_uniform]["p90"] < final["p10"]:
            final_name, final = f"all={best_uniform}", ok_uniform[best_uniform]
            choice = {n: best_uniform for n in nodes}
            note = f"{best_uniform} on every node measured faster than the per-node combination"
    finally:
        w.close()
    path = _variant(prep, build, "final", choice, options)
    sidecar = {
        "model": ref.label,
        "backend": backend,
        "threads": cfg.threads,
        "lowerings_tried": lowerings,
        **({"lowering_options": options} if options else {}),
        "baseline_ms": base["ms"],
        "baseline_noise_ms": noise,
        "final": final_name,
        "final_ms": final["ms"],
        "final_rel_l2": final.get("rel_l2"),
        "speedup": base["ms"] / final["ms"] if final["ms"] else None,
        "decision": note,
        "choice": choice,
        "nodes": per_node,
        "uniform": {lw: {k: r.get(k) for k in ("status", "ms", "rel_l2", "reason")} for lw, r in uniform.items()},
    }
    return path, sidecar


def choose_option_set(results: dict[str, tuple[str, dict]]) -> tuple[str, str, dict]:
    """`optimize` over several backends (an engine's option sets, e.g. iree-cpu,iree-cpu-cl): backend -> (model
    path, sidecar) of each; the fastest final model wins. Returns (backend, path, sidecar), the sidecar gaining
    `option_sets`: per backend its final, latency, speed-up and decision, and why the winner won."""
    timed = {b: r for b, r in results.items() if r[1].get("final_ms") is not None}
    if not timed:
        raise ConvtxError(f"no backend of {', '.join(results)} produced a verified, timed model")
    best = min(timed, key=lambda b: (timed[b][1]["final_ms"], b))
    path, side = timed[best]
    per = {
        b: {k: sc.get(k) for k in ("final", "final_ms", "baseline_ms", "speedup", "decision", "choice")}
        for b, (_, sc) in results.items()
    }
    others = ", ".join(f"{b} {per[b]['final_ms']:.3f} ms" for b in timed if b != best)
    return (
        best,
        path,
        {
            **side,
            "option_sets": per,
            "option_set_decision": f"{best} ({side['final']}) {side['final_ms']:.3f} ms"
            + (f" against {others}" if others else ""),
        },
    )
