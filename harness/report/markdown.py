"""report.md: fits a PR comment. Pure: (run.json dict, records) -> text."""
from __future__ import annotations

from harness.numerics import POLICY
from harness.results import Record, fmt_metric

_MARK = {"ok": "ok", "mismatch": "**MISMATCH**", "error": "**ERROR**", "skipped": "skipped"}


def _num(v, fmt: str = ".3g") -> str:
    return fmt_metric(v, fmt)


def _model_label(r: Record) -> str:
    return f"{r.model}@{r.size}" if r.size else r.model


def _header(meta: dict, records: list[Record]) -> list[str]:
    m, v = meta.get("machine", {}), meta.get("versions", {})
    cfg = meta.get("config", {})
    t = cfg.get("timing") or {}
    tol = POLICY["float32"]
    counts = {s: sum(1 for r in records if r.status == s) for s in _MARK}
    return [
        f"# convtx report — run `{meta.get('run_id', '?')}`",
        "",
        f"- **suite**: {meta.get('suite', '?')} · **date**: {meta.get('date', '?')} · **commit**: "
        f"`{(meta.get('commit') or 'unknown')[:12]}`{' (dirty)' if meta.get('dirty') else ''} · "
        f"**wall time**: {_num(meta.get('wall_s'), '.0f')} s",
        f"- **machine**: {m.get('cpu_model', '?')}, {m.get('usable_cpus', '?')} usable CPUs, "
        f"{m.get('memory_gib', '?')} GiB; ISA: {' '.join(m.get('flags', [])) or '?'}",
        "- **versions**: " + ", ".join(f"{k} {v[k]}" for k in ("python", "torch", "onnx", "onnxruntime",
                                                               "apache-tvm", "apache-tvm-ffi", "numpy") if k in v),
        f"- **threads per engine**: {cfg.get('threads', '?')} · **timing**: {t.get('warmup', '?')} warm-up, "
        f"then ≥ {t.get('min_repeats', '?')} runs and ≥ {t.get('min_time_s', '?')} s "
        f"(cap {t.get('max_time_s', '?')} s)",
        f"- **tolerance (float32 vs float64 reference)**: rel_l2 ≤ {tol.rel_l2:g} and |out − ref| ≤ "
        f"{tol.atol:g} + {tol.rtol:g}·|ref|; NaN/Inf where the reference is finite fails",
        f"- **cases**: {len(records)} — " + ", ".join(f"{n} {s}" for s, n in counts.items()),
        "",
    ]


def render_markdown(meta: dict, records: list[Record], extras: dict | None = None) -> str:
    L = _header(meta, records)
    models = list(dict.fromkeys((_model_label(r), r.batch) for r in records))
    backends = list(dict.fromkeys(r.backend for r in records))
    lowerings = list(dict.fromkeys(r.lowering for r in records))
    by = {(_model_label(r), r.batch, r.lowering, r.backend): r for r in records}

    L.append("## Correctness (relative L2 error vs float64 reference, max abs error)")
    L.append("")
    L.append("| model | batch | lowering | " + " | ".join(backends) + " |")
    L.append("|---|---:|---|" + "---|" * len(backends))
    for model, batch in models:
        for lw in lowerings:
            cells = []
            for b in backends:
                r = by.get((model, batch, lw, b))
                if r is None:
                    cells.append("")
                elif r.numerics:
                    cells.append(f"{_MARK[r.status]} {_num(r.numerics.get('rel_l2'), '.1e')} "
                                 f"({_num(r.numerics.get('max_abs'), '.1e')})")
                else:
                    cells.append(_MARK[r.status])
            if any(cells):
                L.append(f"| {model} | {batch} | {lw} | " + " | ".join(cells) + " |")
    L.append("")

    timed = [r for r in records if r.latency_ms]
    if timed:
        L.append("## Latency by lowering × backend (median ms; useful GFLOP/s)")
        L.append("")
        L.append("Useful FLOPs count only products that land in the output, so GFLOP/s compare lowerings "
                 "fairly; ★ marks the fastest case that passed the numerical check.")
        L.append("")
        for model, batch in models:
            cand = [r for r in timed if (_model_label(r), r.batch) == (model, batch) and r.status == "ok"]
            best = min(cand, key=lambda r: r.latency_ms["median"]) if cand else None
            L.append(f"**{model}, batch {batch}**" + (f" — best verified: {best.lowering} on {best.backend}, "
                                                       f"{best.latency_ms['median']:.3f} ms" if best else ""))
            L.append("")
            L.append("| lowering | " + " | ".join(backends) + " |")
            L.append("|---|" + "---:|" * len(backends))
            for lw in lowerings:
                cells = []
                for b in backends:
                    r = by.get((model, batch, lw, b))
                    if r is None or not r.latency_ms:
                        cells.append("" if r is None else r.status)
                        continue
                    star = " ★" if r is best else ""
                    bad = "" if r.status == "ok" else f" ({r.status})"
                    cells.append(f"{r.latency_ms['median']:.3f}{star} ({_num(r.gflops, '.1f')}){bad}")
                if any(cells):
                    L.append(f"| {lw} | " + " | ".join(cells) + " |")
            L.append("")

        L.append("## Latency detail (ms per inference; speed-up vs ort-cpu native of the same model)")
        L.append("")
        L.append("| model | batch | lowering | backend | median | p10–p90 | IQR | n | vs ort-cpu | GFLOP/s "
                 "| FLOPs done/useful | compile s | verdict |")
        L.append("|---|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
        for model, batch in models:
            base = by.get((model, batch, "native", "ort-cpu"))
            base_med = base.latency_ms["median"] if base and base.latency_ms else None
            for lw in lowerings:
                for b in backends:
                    r = by.get((model, batch, lw, b))
                    if not r or not r.latency_ms:
                        continue
                    lat = r.latency_ms
                    speed = f"{base_med / lat['median']:.2f}×" if base_med else "–"
                    waste = f"{r.flops_performed / r.flops:.2f}" if r.flops and r.flops_performed else "–"
                    L.append(f"| {model} | {batch} | {lw} | {b} | {lat['median']:.3f} | "
                             f"{lat['p10']:.3f}–{lat['p90']:.3f} | {lat['iqr']:.3f} | {lat['n']} | {speed} | "
                             f"{_num(r.gflops, '.2f')} | {waste} | {_num(r.compile_s, '.2f')} | {r.status} |")
        L.append("")

    no_ct = sorted({_model_label(r) for r in records
                    if (r.details.get("lowering") or {}).get("convtranspose_nodes") == 0})
    if no_ct:
        L.append("## Models without ConvTranspose")
        L.append("")
        L.append(f"{', '.join(no_ct)}: no ConvTranspose node, so every lowering is a no-op (the cases are "
                 f"still benchmarked).")
        L.append("")

    declined = [(r, d) for r in records for d in (r.details.get("lowering") or {}).get("declined", [])]
    if declined:
        L.append("## ConvTranspose nodes a lowering declined (left native)")
        L.append("")
        L.append("| case | node | reason |")
        L.append("|---|---|---|")
        for r, d in declined:
            L.append(f"| `{r.case_id}` | {d['node']} | {d['reason']} |")
        L.append("")

    extras = extras or {}
    if "conformance" in extras:
        c = extras["conformance"]
        L.append(f"## Conformance ({c['cases']} ONNX node tests; ledger in harness/conformance.py)")
        L.append("")
        L.append("| backend | pass | xfail | FAIL | XPASS | skipped |")
        L.append("|---|---:|---:|---:|---:|---:|")
        for b, t in c["table"].items():
            L.append(f"| {b} | {t['pass']} | {t['xfail']} | {t['FAIL']} | {t['XPASS']} | {t['skipped']} |")
        L.append("")
    if "fuzz" in extras:
        f = extras["fuzz"]
        L.append(f"## Fuzz ({f['cases']} cases, {f['failing_cases']} failing, {len(f['classes'])} classes)")
        L.append("")
        L.append("| class | engine | lowering | attributes involved | count | ledger |")
        L.append("|---|---|---|---|---:|---|")
        for r in f["classes"]:
            L.append(f"| {r['class']} | {r['backend']} | {r['lowering']} | {', '.join(r['attributes'])} | "
                     f"{r['count']} | {r.get('explained_by') or '**unexplained**'} |")
        L.append("")

    odd = [r for r in records if r.status != "ok"]
    if odd:
        L.append("## Skipped, failed and mismatching cases")
        L.append("")
        L.append("| case | status | reason |")
        L.append("|---|---|---|")
        for r in odd:
            reason = (r.reason or "").replace("|", "\\|").replace("\n", " ")
            L.append(f"| `{r.case_id}` | {r.status} | {reason} |")
        L.append("")
    return "\n".join(L)
