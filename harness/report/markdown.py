"""report.md: fits a PR comment. Pure: (run.json dict, records, extras) -> text."""
from __future__ import annotations

from harness.checking.numerics import POLICY
from harness.report.analysis import RunView, model_label, no_convtranspose
from harness.core.records import Record, fmt_metric

_MARK = {"ok": "ok", "mismatch": "**MISMATCH**", "error": "**ERROR**", "skipped": "skipped"}


def _num(v, fmt: str = ".3g") -> str:
    return fmt_metric(v, fmt)


def summary_lines(meta: dict, records: list[Record]) -> list[tuple[str, str]]:
    """(label, text) pairs of the run summary, shared by the Markdown and HTML reports."""
    m, v = meta.get("machine", {}), meta.get("versions", {})
    cfg = meta.get("config", {})
    t = cfg.get("timing") or {}
    tol = POLICY["float32"]
    counts = {s: sum(1 for r in records if r.status == s) for s in _MARK}
    cal = meta.get("calibration") or {}
    if "fp32_peak_gflops" in cal:
        ceil = (f"fp32 peak {cal['fp32_peak_gflops']:.1f} GFLOP/s, memory {cal['mem_bandwidth_gbs']:.1f} GB/s "
                f"({cal.get('method', '')})")
    else:
        ceil = f"not measured ({cal.get('error', 'run predates calibration')}): no % of peak"
    return [
        ("suite", f"{meta.get('suite', '?')} · date {meta.get('date', '?')} · commit "
                  f"{(meta.get('commit') or 'unknown')[:12]}{' (dirty)' if meta.get('dirty') else ''} · "
                  f"wall time {_num(meta.get('wall_s'), '.0f')} s"),
        ("machine", f"{m.get('cpu_model', '?')}, {m.get('usable_cpus', '?')} usable CPUs, "
                    f"{m.get('memory_gib', '?')} GiB; ISA: {' '.join(m.get('flags', [])) or '?'}"),
        ("measured ceilings", ceil),
        ("versions", ", ".join(f"{k} {v[k]}" for k in ("python", "torch", "onnx", "onnxruntime", "apache-tvm",
                                                        "apache-tvm-ffi", "openvino", "numpy") if k in v)),
        ("threads per engine", f"{cfg.get('threads', '?')} · timing: {t.get('warmup', '?')} warm-up, then ≥ "
                               f"{t.get('min_repeats', '?')} runs and ≥ {t.get('min_time_s', '?')} s "
                               f"(cap {t.get('max_time_s', '?')} s)" if not cfg.get("counter") else
                               f"{cfg.get('threads', '?')} · counted, not timed: "
                               f"{_counter_text(cfg['counter'])}"),
        ("tolerance (float32 vs float64 reference)",
         f"rel_l2 ≤ {tol.rel_l2:g} and |out − ref| ≤ {tol.atol:g} + {tol.rtol:g}·|ref|; NaN/Inf where the "
         f"reference is finite fails"),
        ("cases", f"{len(records)} — " + ", ".join(f"{n} {s}" for s, n in counts.items())),
    ]


def _counter_text(c: dict) -> str:
    return (f"valgrind {c.get('valgrind')} callgrind, presenting {c.get('cpu', {}).get('brand')}; "
            f"{c.get('warmup')} warm-up and {c.get('calls')} counted calls per case; "
            f"{c.get('metric_text', c.get('metric'))}; TVM built for {c.get('tvm_mcpu')}")


def counts_lines(records: list[Record]) -> list[str]:
    """bench --counts: per case the median estimated cycles and instructions of its counted calls, the
    spread between calls, and the simulated cache miss rates."""
    rs = [r for r in records if r.counts]
    if not rs:
        return []
    L = ["## Counts (callgrind: estimated cycles and instructions per inference)", "",
         "| case | est. cycles (M) | instructions (M) | spread between calls | L1 miss % | LL miss % |",
         "|---|---:|---:|---:|---:|---:|"]
    for r in rs:
        c = r.counts
        ev = c.get("events_median") or {}
        acc = sum(ev.get(k, 0) for k in ("Ir", "Dr", "Dw")) or 1
        l1 = sum(ev.get(k, 0) for k in ("I1mr", "D1mr", "D1mw"))
        ll = sum(ev.get(k, 0) for k in ("ILmr", "DLmr", "DLmw"))
        spread = (max(c["samples"]) - min(c["samples"])) / c["median"] if c.get("median") else float("nan")
        L.append(f"| `{r.case_id}` | {c['median'] / 1e6:.3f} | {ev.get('Ir', 0) / 1e6:.3f} | {100 * spread:.2f}% | "
                 f"{100 * l1 / acc:.2f} | {100 * ll / acc:.3f} |")
    L += ["", "Counts are of the work each call does on the CPU valgrind presents, with fixed simulated caches; "
              "they do not move with the machine's load, and they do not see waiting, threading or memory "
              "behaviour beyond those caches (docs/perf-gate.md).", ""]
    return L


def _header(meta: dict, records: list[Record]) -> list[str]:
    L = [f"# convtx report — run `{meta.get('run_id', '?')}`", ""]
    L += [f"- **{k}**: {v}" for k, v in summary_lines(meta, records)]
    L.append("")
    return L


def _correctness(v: RunView) -> list[str]:
    L = ["## Correctness (relative L2 error vs float64 reference, max abs error)", "",
         "| model | batch | lowering | " + " | ".join(v.backends) + " |",
         "|---|---:|---|" + "---|" * len(v.backends)]
    for model, batch in v.models:
        for lw in v.lowerings:
            cells = []
            for b in v.backends:
                r = v.get(model, batch, lw, b)
                if r is None or (no_convtranspose(r) and r.status == "skipped"):
                    cells.append("")
                elif r.numerics:
                    cells.append(f"{_MARK[r.status]} {_num(r.numerics.get('rel_l2'), '.1e')} "
                                 f"({_num(r.numerics.get('max_abs'), '.1e')})")
                else:
                    cells.append(_MARK[r.status])
            if any(cells):
                L.append(f"| {model} | {batch} | {lw} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def _best_table(v: RunView) -> list[str]:
    L = ["## Best verified configuration per model × backend", "",
         "The fastest lowering on each engine among the cases that passed the numerical check; the speed-up "
         "is against the same model's ort-cpu native case (> 1× is faster); ★ marks the best over all "
         "engines, and each engine's gap to it is shown.", "",
         "| model | batch | " + " | ".join(v.backends) + " |",
         "|---|---:|" + "---|" * len(v.backends)]
    for model, batch in v.models:
        cells = []
        for c in v.best_per_backend(model, batch):
            if c.record is None:
                cells.append("none verified" + (f" ({', '.join(c.states)})" if c.states else ""))
                continue
            sp = "–" if c.speedup is None else f"{c.speedup:.2f}×"
            star = " ★" if c.is_overall else f", {c.gap:.2f}× the best"
            cells.append(f"{c.record.lowering} {c.record.latency_ms['median']:.3f} ms ({sp}{star})")
        L.append(f"| {model} | {batch} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def _latency_grid(v: RunView) -> list[str]:
    L = ["## Latency by lowering × backend (median ms; useful GFLOP/s)", "",
         "Useful FLOPs count only products that land in the output, so GFLOP/s compare lowerings "
         "fairly; ★ marks the fastest case that passed the numerical check.", ""]
    for model, batch in v.models:
        best = v.best_verified(model, batch)
        L.append(f"**{model}, batch {batch}**" + (f" — best verified: {best.lowering} on {best.backend}, "
                                                   f"{best.latency_ms['median']:.3f} ms" if best else ""))
        L.append("")
        L.append("| lowering | " + " | ".join(v.backends) + " |")
        L.append("|---|" + "---:|" * len(v.backends))
        for lw in v.lowerings:
            cells = []
            for b in v.backends:
                r = v.get(model, batch, lw, b)
                if r is None or not r.latency_ms:
                    skip_noct = r is not None and no_convtranspose(r) and r.status == "skipped"
                    cells.append("" if r is None or skip_noct else r.status)
                    continue
                star = " ★" if r is best else ""
                bad = "" if r.status == "ok" else f" ({r.status})"
                cells.append(f"{r.latency_ms['median']:.3f}{star} ({_num(r.gflops, '.1f')}){bad}")
            if any(cells):
                L.append(f"| {lw} | " + " | ".join(cells) + " |")
        L.append("")
    return L


def _latency_detail(v: RunView) -> list[str]:
    L = ["## Latency detail (ms per inference; speed-up vs ort-cpu native of the same model)", "",
         "| model | batch | lowering | backend | median | p10–p90 | IQR | n | vs ort-cpu | GFLOP/s | % peak "
         "| FLOPs done/useful | compile s | verdict |",
         "|---|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for model, batch in v.models:
        for lw in v.lowerings:
            for b in v.backends:
                r = v.get(model, batch, lw, b)
                if not r or not r.latency_ms:
                    continue
                lat = r.latency_ms
                sp = v.speedup(r)
                pk = v.pct_peak(r)
                waste = f"{r.flops_performed / r.flops:.2f}" if r.flops and r.flops_performed else "–"
                L.append(f"| {model} | {batch} | {lw} | {b} | {lat['median']:.3f} | "
                         f"{lat['p10']:.3f}–{lat['p90']:.3f} | {lat['iqr']:.3f} | {lat['n']} | "
                         f"{'–' if sp is None else f'{sp:.2f}×'} | {_num(r.gflops, '.2f')} | "
                         f"{'–' if pk is None else f'{pk:.1f}'} | {waste} | {_num(r.compile_s, '.2f')} | "
                         f"{r.status} |")
    L.append("")
    return L


def odd_cases(records: list[Record]) -> list[Record]:
    """Cases to list with their reasons: everything not ok, except the lowerings skipped on models that have
    no ConvTranspose (listed once per model instead)."""
    return [r for r in records if r.status != "ok" and not (r.status == "skipped" and no_convtranspose(r))]


def tuning_lines(records: list[Record]) -> list[str]:
    """Which TVM cases ran with the committed MetaSchedule database, and how much of the model it covered."""
    rows = [r for r in records if r.backend == "tvm-llvm-tuned"]
    if not rows:
        return []
    L = ["## TVM tuning coverage (tvm-llvm-tuned)", "",
         "Tuned: every task of the workload has a record in the committed database; partly tuned: the tasks "
         "listed have none and run untuned; skipped: no record at all (`convtx tune`, docs/tuning.md).", "",
         "| case | state | tasks tuned | untuned tasks | median ms | vs tvm-llvm |", "|---|---|---:|---|---:|---:|"]
    by = {(model_label(r), r.batch, r.lowering, r.backend): r for r in records}
    for r in rows:
        t = r.details.get("tuning") or {}
        state = t.get("state") or ("untuned" if r.status == "skipped" else r.status)
        untuned = ", ".join(t.get("untuned_tasks", [])[:4]) + (" …" if len(t.get("untuned_tasks", [])) > 4 else "")
        base = by.get((model_label(r), r.batch, r.lowering, "tvm-llvm"))
        ratio = (f"{base.latency_ms['median'] / r.latency_ms['median']:.1f}× faster"
                 if base and base.latency_ms and r.latency_ms else "–")
        med = f"{r.latency_ms['median']:.3f}" if r.latency_ms else "–"
        L.append(f"| `{r.case_id}` | {state} | {t.get('tasks_tuned', 0)}/{t.get('tasks', '?')} | {untuned or '–'} | "
                 f"{med} | {ratio} |")
    L.append("")
    return L


def extras_lines(extras: dict) -> list[str]:
    L: list[str] = []
    if "conformance" in extras:
        c = extras["conformance"]
        L.append(f"## Conformance ({c['cases']} ONNX node tests; ledger in harness/audit/conformance.py)")
        L.append("")
        L.append("| backend | pass | xfail | FAIL | XPASS | skipped | built, not run |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for b, t in c["table"].items():
            L.append(f"| {b} | {t['pass']} | {t['xfail']} | {t['FAIL']} | {t['XPASS']} | {t['skipped']} | "
                     f"{t.get('not run', 0)} |")
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
    return L


def cuda_lines(records: list[Record]) -> list[str]:
    """CUDA backends: where they ran, or that they were built and why they could not run here."""
    rs = [r for r in records if r.backend.endswith("-cuda")]
    if not rs:
        return []
    L = ["## CUDA backends", "",
         "| backend | cases | ran on a GPU | built, not run | skipped otherwise | TF32 | kernels built | why not run |",
         "|---|---:|---:|---:|---:|---|---:|---|"]
    for b in dict.fromkeys(r.backend for r in rs):
        br = [r for r in rs if r.backend == b]
        ran = [r for r in br if r.status in ("ok", "mismatch")]
        built = [r for r in br if r.status == "skipped" and (r.reason or "").startswith("built, not run")]
        other = [r for r in br if r.status == "skipped" and r not in built]
        why = sorted({(r.reason or "").split(": ", 1)[-1] for r in built} |
                     {(r.reason or "") for r in other if "unavailable" in (r.reason or "")})
        tf32 = sorted({str(r.details.get("tf32")) for r in br if r.details.get("tf32")}) or ["—"]
        kernels = sum(int(r.details.get("kernels") or 0) for r in br)
        L.append(f"| {b} | {len(br)} | {len(ran)} | {len(built)} | {len(other)} | {', '.join(tf32)} | {kernels} | "
                 f"{'; '.join(why).replace('|', '/') or '—'} |")
    L += ["", "Built, not run: compiled here (the library and the generated kernel source are in the compiled-"
              "artefact cache; `convtx build` also compiles the kernels with nvcc), with no GPU to run them on. "
              "A case judged with TF32 on uses the `tf32` tolerance policy.", ""]
    return L


def remote_lines(records: list[Record]) -> list[str]:
    """Remote devices (TVM RPC): which server ran how many cases, what it said it is, and what failed there."""
    rs = [r for r in records if (r.details or {}).get("remote")]
    if not rs:
        return []
    rem = rs[0].details["remote"]
    L = [f"## Remote devices (TVM RPC tracker {rem['tracker']}, key `{rem['key']}`)", "",
         "| server | machine (as the remote reports it) | cases | ok | mismatch | error | median session wait s |",
         "|---|---|---:|---:|---:|---:|---:|"]
    for server in sorted({r.details["remote"]["server"] for r in rs}):
        sr = [r for r in rs if r.details["remote"]["server"] == server]
        m = sr[0].details["remote"].get("machine") or {}
        desc = ", ".join(f"{k} {m[k]}" for k in ("cpu", "triple", "vendor", "threads") if k in m) or "not reported"
        if m.get("cuda"):
            desc += f", GPU {m['cuda'].get('name')} (sm {m['cuda'].get('compute_version')})"
        waits = sorted(r.details["remote"].get("session_wait_s") or 0.0 for r in sr)
        L.append(f"| {server} | {desc} | {len(sr)} | {sum(r.status == 'ok' for r in sr)} | "
                 f"{sum(r.status == 'mismatch' for r in sr)} | {sum(r.status == 'error' for r in sr)} | "
                 f"{waits[len(waits) // 2]:.2f} |")
    lost = [r for r in records if r.status == "error" and "remote " in (r.reason or "") and "failed during" in
            (r.reason or "")]
    L.append("")
    L.append("Compiled here, run and timed on the remote device (TVM's `time_evaluator` there: device time per "
             "call, no network); outputs fetched back and checked here. No interleaved reference kernel on a "
             "remote device. Engines without TVM's RPC runtime are skipped in a remote run.")
    if lost:
        L.append("")
        L.append("Cases lost with their server: " + "; ".join(f"`{r.case_id}` ({r.reason[:160]})" for r in lost))
    L.append("")
    return L


def render_markdown(meta: dict, records: list[Record], extras: dict | None = None) -> str:
    v = RunView.of(meta, records)
    L = _header(meta, records)
    L += _correctness(v)
    if any(r.latency_ms for r in records):
        L += _best_table(v)
        L += _latency_grid(v)
        L += _latency_detail(v)

    no_ct = list(dict.fromkeys(model_label(r) for r in records if no_convtranspose(r)))
    if no_ct:
        L.append("## Models without ConvTranspose")
        L.append("")
        L.append(f"{', '.join(no_ct)}: no ConvTranspose node, so every lowering is a no-op; only the native "
                 f"case runs and the others are recorded as skipped.")
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

    L += counts_lines(records)
    L += tuning_lines(records)
    L += cuda_lines(records)
    L += remote_lines(records)
    L += extras_lines(extras or {})

    odd = odd_cases(records)
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
