"""What the report says: each section built from a run as the table model (core/tables.py).

Pure functions of (run.json, records, filed extras, plots). Both renderers draw the Report built here; a
block marked `only=` is one medium's own view (the HTML's correctness matrix, latency table and plots, the
Markdown's correctness list, latency grid and detail)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd

from harness.checking.numerics import POLICY
from harness.core.records import STATUSES, Record, fmt_metric
from harness.core.rundir import Run
from harness.core.tables import (
    HTML,
    MARKDOWN,
    STAR,
    Cell,
    Column,
    Fields,
    Figure,
    Paragraph,
    Report,
    Rich,
    Section,
    Span,
    Table,
    cell,
    code,
    plain,
    rich,
    small,
    strong,
)
from harness.report.analysis import RunView, model_label, no_convtranspose
from harness.report.plots import PLOTS

NAV = (
    ("summary", "summary"),
    ("correctness", "correctness"),
    ("best per engine", "best"),
    ("TVM vs runtimes", "tvm"),
    ("compilers", "compilers"),
    ("unpooling", "unpool"),
    ("profiles", "profile"),
    ("latency", "latency"),
    ("plots", "plots"),
    ("skipped & failed", "odd"),
)
_MARK = {
    "ok": rich("ok"),
    "mismatch": rich(strong("MISMATCH")),
    "error": rich(strong("ERROR")),
    "skipped": rich("skipped"),
}
_SHORT = {
    "native": "native",
    "explicit_pads": "pads",
    "zero_insert": "zero-ins",
    "phase": "phase",
    "phase_split": "phase-split",
    "gemm_col2im": "col2im",
    "gemm_overlap_add": "ovl-add",
}


def _n(name: str) -> Column:
    return Column(name, numeric=True)


def _section(title: str | Rich, *blocks, anchor: str = "", only: str | None = None) -> Section:
    return Section(rich(title) if isinstance(title, str) else title, tuple(blocks), anchor, only)


def _para(*parts: str | Span, only: str | None = None, style: str = "") -> Paragraph:
    return Paragraph(rich(*parts), style, only)


def build_report(run: Run, extras: Mapping | None = None, plots: Mapping[str, bytes] | None = None) -> Report:
    """The report of a run directory as read (`read_run`), with any filed conformance/fuzz summaries and the
    PNG plots (name -> bytes; none: no plot section)."""
    meta, records = run.meta, list(run.records)
    v = RunView.of(meta, records)
    sections = [*summary_sections(meta, records), correctness_list(v), correctness_matrix(v)]
    if any(r.latency_ms for r in records):
        extra = [
            s
            for s in (tvm_versus_section(v), compilers_section(v), forms_section(v), profile_section(v))
            if s is not None
        ]
        sections += [best_section(v), *extra, latency_grid(v), latency_detail(v), latency_table(v)]
    if plots:
        sections.append(plots_section(plots))
    sections += [
        s
        for s in (
            no_convtranspose_section(records),
            sanitation_section(records),
            declined_section(records),
            counts_section(records),
            tuning_section(v),
            cuda_section(records),
            remote_section(records),
            conformance_section(extras or {}),
            fuzz_section(extras or {}),
        )
        if s is not None
    ]
    sections.append(odd_section(records))
    run_id = meta.get("run_id", "?")
    nav = tuple(
        (label, a) for label, a in NAV if any(s.anchor == a for s in sections)
    )  # no link to a section not there
    return Report(rich("convtx report — run ", code(run_id)), f"convtx report — {run_id}", nav, tuple(sections))


def summary_lines(meta: Mapping, records: list[Record]) -> list[tuple[str, str]]:
    """(label, text) pairs of the run summary."""
    m, v = meta.get("machine", {}), meta.get("versions", {})
    cfg = meta.get("config", {})
    t = cfg.get("timing") or {}
    tol = POLICY["float32"]
    counts = {s: sum(1 for r in records if r.status == s) for s in STATUSES}
    cal = meta.get("calibration") or {}
    if "fp32_peak_gflops" in cal:
        ceil = (
            f"fp32 peak {cal['fp32_peak_gflops']:.1f} GFLOP/s, memory {cal['mem_bandwidth_gbs']:.1f} GB/s "
            f"({cal.get('method', '')})"
        )
    else:
        ceil = f"not measured ({cal.get('error', 'run predates calibration')}): no % of peak"
    return [
        (
            "suite",
            f"{meta.get('suite', '?')} · date {meta.get('date', '?')} · commit "
            f"{(meta.get('commit') or 'unknown')[:12]}{' (dirty)' if meta.get('dirty') else ''} · "
            f"wall time {fmt_metric(meta.get('wall_s'), '.0f')} s",
        ),
        (
            "machine",
            f"{m.get('cpu_model', '?')}, {m.get('usable_cpus', '?')} usable CPUs, "
            f"{m.get('memory_gib', '?')} GiB; ISA: {' '.join(m.get('flags', [])) or '?'}",
        ),
        ("measured ceilings", ceil),
        (
            "versions",
            ", ".join(
                f"{k} {v[k]}"
                for k in ("python", "torch", "onnx", "onnxruntime", "apache-tvm", "apache-tvm-ffi", "openvino", "numpy")
                if k in v
            ),
        ),
        (
            "threads per engine",
            f"{cfg.get('threads', '?')} · timing: {_timing_text(t, records)}"
            if not cfg.get("counter")
            else f"{cfg.get('threads', '?')} · counted, not timed: {_counter_text(cfg['counter'])}",
        ),
        (
            "tolerance (float32 vs float64 reference)",
            f"rel_l2 ≤ {tol.rel_l2:g} and |out − ref| ≤ {tol.atol:g} + {tol.rtol:g}·|ref| where the reference is "
            f"finite; NaN/Inf there fails; where it is NaN/±Inf the output must hold the same",
        ),
        ("cases", f"{len(records)} — " + ", ".join(f"{n} {s}" for s, n in counts.items())),
    ]


def _timing_text(t: Mapping, records: list[Record]) -> str:
    """The stopping rule, and the precision the timed cases reached: how many stopped at the target, the median
    and the worst half-width of their medians' 95% confidence intervals."""
    if t.get("rel_ci"):
        rule = (
            f"{t.get('warmup', '?')} warm-up, then until the median's 95% CI is within ±{100 * t['rel_ci']:g}% "
            f"(≥ {t.get('min_repeats', '?')} runs and ≥ {t.get('min_time_s', '?')} s; budget {t.get('max_time_s', '?')} s)"
        )
    else:
        rule = (
            f"{t.get('warmup', '?')} warm-up, then ≥ {t.get('min_repeats', '?')} runs and ≥ {t.get('min_time_s', '?')} s "
            f"(cap {t.get('max_time_s', '?')} s)"
        )
    stops = [r.latency_ms.stop for r in records if r.latency_ms is not None and r.latency_ms.stop]
    if not stops:
        return rule
    rel = sorted(float(x.get("ci95_rel", 0.0)) for x in stops)
    by = {}
    for x in stops:
        by[x.get("by", "?")] = by.get(x.get("by", "?"), 0) + 1
    return (
        f"{rule} · precision reached: median ±{100 * rel[len(rel) // 2]:.1f}%, worst ±{100 * rel[-1]:.1f}% "
        f"(95% CI of the median, {len(rel)} timed cases; stopped by "
        + ", ".join(f"{k} {n}" for k, n in sorted(by.items()))
        + ")"
    )


def _counter_text(c: Mapping) -> str:
    return (
        f"valgrind {c.get('valgrind')} callgrind, presenting {c.get('cpu', {}).get('brand')}; "
        f"{c.get('warmup')} warm-up and {c.get('calls')} counted calls per case; "
        f"{c.get('metric_text', c.get('metric'))}; TVM built for {c.get('tvm_mcpu')}"
    )


def summary_sections(meta: Mapping, records: list[Record]) -> list[Section]:
    facts = Fields(tuple(summary_lines(meta, records)))
    return [_section((), facts, only=MARKDOWN), _section("Run summary", facts, anchor="summary", only=HTML)]


def _hidden(r: Record | None) -> bool:
    """Not shown in the case grids: not run, or a lowering skipped on a model without ConvTranspose (its native
    case, skipped for its own reason, is shown)."""
    return r is None or (no_convtranspose(r) and r.status == "skipped" and r.lowering != "native")


def _cells(v: RunView, fn) -> pd.Series:
    """`fn(record)` of every case, as a column aligned with the run's frame."""
    return pd.Series([fn(r) for r in v.frame["record"]], index=v.frame.index, dtype=object)


def _nonempty_rows(wide: pd.DataFrame) -> pd.DataFrame:
    return wide[[any(c.text for c in row) for row in wide.itertuples(index=False)]]


def _list_cell(r: Record) -> Cell:
    if _hidden(r):
        return Cell()
    if r.numerics is None:
        return Cell(_MARK[r.status], r.status)
    metrics = f" {fmt_metric(r.numerics.rel_l2, '.1e')} ({fmt_metric(r.numerics.max_abs, '.1e')})"
    return Cell(_MARK[r.status] + rich(metrics), r.status)


def correctness_list(v: RunView) -> Section:
    """Markdown: a row per model × lowering, a column per backend: verdict, rel_l2 (max abs)."""
    wide = _nonempty_rows(v.grid(_cells(v, _list_cell), ["model", "lowering"], ["backend"], fill=Cell()))
    return _section(
        "Correctness (relative L2 error vs float64 reference, max abs error)",
        Table.from_frame(wide.reset_index(), ["model", _n("batch"), "lowering", *v.backends]),
        only=MARKDOWN,
    )


def _matrix_cell(r: Record) -> Cell:
    if _hidden(r):
        return Cell(tip="not run: no ConvTranspose", numeric=False)
    if r.numerics is not None:
        tip = (
            f"{r.case_id}: rel_l2 {fmt_metric(r.numerics.rel_l2, '.2e')}, max abs "
            f"{fmt_metric(r.numerics.max_abs, '.2e')}" + (f" — {r.reason}" if r.reason else "")
        )
        return cell(fmt_metric(r.numerics.rel_l2, ".0e") + ("" if r.status == "ok" else " ✗"), style=r.status, tip=tip)
    return cell(
        {"skipped": "skip", "error": "error"}.get(r.status, r.status),
        style=r.status,
        tip=f"{r.case_id}: {r.reason}",
        numeric=False,
    )


def correctness_matrix(v: RunView) -> Section:
    """HTML: one row per model; a column group per backend with a column per lowering it ran; each cell the
    relative L2 error coloured by verdict (the case, both errors and the reason on hover)."""
    tol = POLICY["float32"]
    shown = v.grid(_cells(v, lambda r: not _hidden(r)), ["model"], ["backend", "lowering"], fill=False)
    cols = [c for c in shown.columns if shown[c].any()]
    wide = v.grid(_cells(v, _matrix_cell), ["model"], ["backend", "lowering"], fill=Cell(numeric=False))[cols]
    columns = [
        Column("model"),
        _n("batch"),
        *(Column(_SHORT.get(lw, lw), numeric=True, tip=lw, group=b) for b, lw in cols),
    ]
    return _section(
        "Correctness: model × lowering × backend",
        _para(
            f"Relative L2 error against the float64 reference (max abs error in brackets). A case passes at "
            f"rel_l2 ≤ {tol.rel_l2:g} and |out − ref| ≤ {tol.atol:g} + {tol.rtol:g}·|ref| everywhere. One row "
            f"per model, one column per backend × lowering; hover a cell for the case, both errors and the "
            f"reason of a failure or skip. Blank: not run (the eager baseline runs the PyTorch module once; a "
            f"model without ConvTranspose runs only natively)."
        ),
        _para(*(Span(s, s) for s in ("ok", "mismatch", "error", "skipped")), style="legend"),
        Table.from_frame(wide.reset_index(), columns, dense=True),
        anchor="correctness",
        only=HTML,
    )


def best_section(v: RunView) -> Section:
    """Per model × backend, the engine's fastest verified case: speed-up vs ort-cpu native, ★ or the gap."""
    f = v.frame
    overall = f[f["best_of_model"]].set_index(["label", "batch"])["median_ms"]
    mine = f[f["best_of_backend"]]
    gap = mine["median_ms"].to_numpy() / overall.reindex(pd.MultiIndex.from_frame(mine[["label", "batch"]])).to_numpy()

    def best_cell(r: Record, gap: float, is_overall: bool) -> Cell:
        sp = v.speedup(r)
        sp_text = "–" if sp is None else f"{sp:.2f}×"
        lead = f"{r.lowering} {r.median_ms:.3f} ms "
        if is_overall:
            return cell(lead, small(f"({sp_text} "), STAR, small(")"), style="best")
        return cell(lead, small(f"({sp_text}, {gap:.2f}× the best)"))

    cells = pd.Series(
        [best_cell(r, g, o) for r, g, o in zip(mine["record"], gap, mine["best_of_model"])], index=mine.index
    )
    wide = v.grid(cells, ["model"], ["backend"])
    # an engine with no verified case: the states its cases had
    states = f.pivot_table(
        index=["label", "batch"], columns="backend", values="status", aggfunc=lambda s: tuple(sorted(set(s)))
    ).reindex(index=wide.index, columns=wide.columns)
    none = states.map(
        lambda st: (
            cell("none verified ", small(f"({', '.join(st)})"), style="skipped")
            if isinstance(st, tuple) and st
            else cell("none verified", style="skipped")
        )
    )
    wide = wide.where(wide.notna(), none)
    return _section(
        "Best verified configuration per model × backend",
        _para(
            "The fastest lowering on each engine among the cases that passed the numerical check; the speed-up "
            "is against the same model's ort-cpu native case (> 1× is faster); ★ marks the best over all "
            "engines, and each engine's gap to it is shown.",
            only=MARKDOWN,
        ),
        _para(
            "On each engine, the fastest lowering among the cases that passed the numerical check; in "
            "brackets the speed-up against the same model's ort-cpu native case; ★ the best over all "
            "engines, and each other engine's gap to it.",
            only=HTML,
        ),
        Table.from_frame(wide.reset_index(), ["model", _n("batch"), *v.backends]),
        anchor="best",
    )


def latency_grid(v: RunView) -> Section:
    """Markdown: per model a lowering × backend grid of median ms and useful GFLOP/s, ★ on the best verified."""

    def grid_cell(r: Record, is_best: bool) -> Cell:
        if r.latency_ms is None:
            return Cell() if _hidden(r) else cell(r.status, style=r.status)
        bad = "" if r.status == "ok" else f" ({r.status})"
        return cell(
            f"{r.median_ms:.3f}",
            *((" ", STAR) if is_best else ()),
            f" ({fmt_metric(r.gflops, '.1f')}){bad}",
            style="best" if is_best else "",
        )

    f = v.frame
    cells = pd.Series([grid_cell(r, b) for r, b in zip(f["record"], f["best_of_model"])], index=f.index)
    wide = v.grid(cells, ["model", "lowering"], ["backend"], fill=Cell())
    tables = []
    for model, batch in v.models:
        best = v.best_verified(model, batch)
        caption = rich(
            strong(f"{model}, batch {batch}"),
            f" — best verified: {best.lowering} on {best.backend}, {best.median_ms:.3f} ms" if best else "",
        )
        rows = _nonempty_rows(wide.xs((model, batch), level=("label", "batch")))
        tables.append(Table.from_frame(rows.reset_index(), ["lowering", *map(_n, v.backends)], caption=caption))
    return _section(
        "Latency by lowering × backend (median ms; useful GFLOP/s)",
        _para(
            "Useful FLOPs count only products that land in the output, so GFLOP/s compare lowerings "
            "fairly; ★ marks the fastest case that passed the numerical check."
        ),
        *tables,
        only=MARKDOWN,
    )


def timed_frame(v: RunView) -> pd.DataFrame:
    """Every timed case in grid order (model, lowering, backend as first seen), with the columns both latency
    tables show, formatted: speed-up vs the model's ort-cpu native case, % of peak, FLOPs done/useful."""
    f = v.frame
    t = f[f["median_ms"].notna()].copy()
    rank = {
        "lowering": {x: i for i, x in enumerate(v.lowerings)},
        "backend": {x: i for i, x in enumerate(v.backends)},
    }
    order = [
        (v.models.index((lb, bt)), rank["lowering"][lw], rank["backend"][be])
        for lb, bt, lw, be in zip(t["label"], t["batch"], t["lowering"], t["backend"])
    ]
    t["_order"] = order
    t = t.sort_values("_order", kind="stable")
    base = f[(f["lowering"] == "native") & (f["backend"] == "ort-cpu")].set_index(["label", "batch"])["median_ms"]
    t["base_ms"] = base.reindex(pd.MultiIndex.from_frame(t[["label", "batch"]])).to_numpy()
    sp = t["base_ms"] / t["median_ms"]
    t["vs_ort"] = ["–" if not b or pd.isna(b) else f"{x:.2f}×" for b, x in zip(t["base_ms"], sp)]
    t["peak"] = ["–" if p is None else f"{p:.1f}" for p in map(v.pct_peak, t["record"])]
    t["waste"] = [f"{r.flops_performed / r.flops:.2f}" if r.flops and r.flops_performed else "–" for r in t["record"]]
    t["median"] = [f"{x:.3f}" for x in t["median_ms"]]
    t["spread"] = [f"{a:.3f}–{b:.3f}" for a, b in zip(t["p10_ms"], t["p90_ms"])]
    t["iqr"] = [f"{x:.3f}" for x in t["iqr_ms"]]
    t["gflops_text"] = [fmt_metric(r.gflops, ".2f") for r in t["record"]]
    t["compile"] = [fmt_metric(r.compile_s, ".2f") for r in t["record"]]
    t["verdict"] = [cell(r.status, style=r.status, tip=r.reason or "") for r in t["record"]]
    return t


# the latency tables' columns: (timed_frame column, report.md header, report.html header; None: not shown)
_LATENCY_COLUMNS = (
    ("label", "model", "model"),
    ("batch", _n("batch"), _n("batch")),
    ("lowering", "lowering", "lowering"),
    ("backend", "backend", "backend"),
    ("median", _n("median"), _n("median ms")),
    ("spread", "p10–p90", _n("p10–p90 ms")),
    ("iqr", _n("IQR"), None),
    ("n", _n("n"), _n("n")),
    ("vs_ort", _n("vs ort-cpu"), _n("vs ort-cpu native")),
    ("gflops_text", _n("GFLOP/s"), _n("useful GFLOP/s")),
    ("peak", _n("% peak"), _n("% of peak")),
    ("waste", _n("FLOPs done/useful"), _n("FLOPs done/useful")),
    ("compile", _n("compile s"), _n("compile s")),
    ("verdict", "verdict", "verdict"),
)


def _latency_frame_table(t: pd.DataFrame, medium: int) -> Table:
    cols = [(c, head[medium]) for c, *head in _LATENCY_COLUMNS if head[medium] is not None]
    return Table.from_frame(t[[c for c, _ in cols]], [h for _, h in cols])


def latency_detail(v: RunView) -> Section:
    return _section(
        "Latency detail (ms per inference; speed-up vs ort-cpu native of the same model)",
        _latency_frame_table(timed_frame(v), 0),
        only=MARKDOWN,
    )


def latency_table(v: RunView) -> Section:
    """HTML: every timed case, ★ and bold on each model's best verified one, the verdict coloured."""
    t = timed_frame(v)
    t["median"] = [cell(m, " ", STAR, style="best") if b else m for m, b in zip(t["median"], t["best_of_model"])]
    peak = f"{v.peak_gflops:.1f} GFLOP/s" if v.peak_gflops else "not measured"
    return _section(
        "Latency",
        _para(
            f"Median and p10–p90 of the per-inference wall time. Useful GFLOP/s count only the products that "
            f"land in the output; % of peak is against this run's measured fp32 peak ({peak}). FLOPs "
            f"done/useful shows the work a lowering wastes (zero insertion multiplies by zeros)."
        ),
        _latency_frame_table(t, 1),
        anchor="latency",
        only=HTML,
    )


def plots_section(plots: Mapping[str, bytes]) -> Section:
    return _section(
        "Plots",
        *(Figure(caption, plots[name], f"plots/{name}.png") for name, _, caption in PLOTS if name in plots),
        anchor="plots",
        only=HTML,
    )


def no_convtranspose_section(records: list[Record]) -> Section | None:
    no_ct = list(dict.fromkeys(model_label(r) for r in records if no_convtranspose(r)))
    if not no_ct:
        return None
    lead = f"{', '.join(no_ct)}: no ConvTranspose node, so every lowering is a no-op; only the native case runs"
    return _section(
        "Models without ConvTranspose",
        _para(lead + " and the others are recorded as skipped.", only=MARKDOWN),
        _para(lead + ".", only=HTML),
    )


def sanitation_section(records: list[Record]) -> Section | None:
    """What sanitation (harness/pipeline/sanitize.py) did to each file model, once per model."""
    seen: dict[str, dict] = {}
    for r in records:
        if r.details.get("sanitation") and model_label(r) not in seen:
            seen[model_label(r)] = r.details["sanitation"]
    if not seen:
        return None
    rows = [
        [
            code(m),
            f"{d['nodes_before']} → {d['nodes_after']}",
            ", ".join(f"{op} {n}" for op, n in d.get("folded", {}).items()),
            f"{d['opset'][0]} → {d['opset'][1]}" if d.get("opset") else d.get("opset_kept", "–"),
            d.get("validated", ""),
            d.get("uses", ""),
        ]
        for m, d in seen.items()
    ]
    return _section(
        "Sanitation of the ONNX files",
        _para(
            "Each file model is bound to its input shapes, folded (onnxscript's optimizer) and checked against the "
            "original in ONNX Runtime before any engine or lowering sees it; every case is still checked against "
            "the float64 reference of the original file."
        ),
        Table.of(["model", "nodes", "folded away", "opset", "check", "cases use"], rows),
    )


def declined_section(records: list[Record]) -> Section | None:
    rows = [
        [code(r.case_id), d["node"], d["reason"]]
        for r in records
        for d in (r.details.get("lowering") or {}).get("declined", [])
    ]
    if not rows:
        return None
    return _section("ConvTranspose nodes a lowering declined (left native)", Table.of(["case", "node", "reason"], rows))


def counts_section(records: list[Record]) -> Section | None:
    """bench --counts: per case the median estimated cycles and instructions of its counted calls, the
    spread between calls, and the simulated cache miss rates."""
    rs = [r for r in records if r.counts]
    if not rs:
        return None
    rows = []
    for r in rs:
        c = r.counts
        ev = c.events_median
        acc = sum(ev.get(k, 0) for k in ("Ir", "Dr", "Dw")) or 1
        l1 = sum(ev.get(k, 0) for k in ("I1mr", "D1mr", "D1mw"))
        ll = sum(ev.get(k, 0) for k in ("ILmr", "DLmr", "DLmw"))
        spread = (max(c.samples) - min(c.samples)) / c.median if c.median else float("nan")
        rows.append(
            [
                code(r.case_id),
                f"{c.median / 1e6:.3f}",
                f"{ev.get('Ir', 0) / 1e6:.3f}",
                f"{100 * spread:.2f}%",
                f"{100 * l1 / acc:.2f}",
                f"{100 * ll / acc:.3f}",
            ]
        )
    return _section(
        "Counts (callgrind: estimated cycles and instructions per inference)",
        Table.of(
            [
                "case",
                _n("est. cycles (M)"),
                _n("instructions (M)"),
                _n("spread between calls"),
                _n("L1 miss %"),
                _n("LL miss %"),
            ],
            rows,
        ),
        _para(
            "Counts are of the work each call does on the CPU valgrind presents, with fixed simulated caches; "
            "they do not move with the machine's load, and they do not see waiting, threading or memory "
            "behaviour beyond those caches (docs/perf-gate.md)."
        ),
    )


def tvm_versus_section(v: RunView) -> Section | None:
    """The question the TVM column answers: per model, each engine's fastest verified case, and TVM's — with the
    default CPU schedule (tvm-llvm) and with the database (tvm-llvm-tuned) — as a ratio to min(ORT, OpenVINO)."""
    if not any(b.startswith("tvm-llvm") for b in v.backends):
        return None
    engines = ["ort-cpu", "openvino-cpu", "tvm-llvm", "tvm-llvm-tuned"]
    f = v.frame
    mine = f[f["best_of_backend"] & f["backend"].isin(engines)]
    ms = v.grid(mine["median_ms"], ["model"], ["backend"]).reindex(columns=engines).astype(float)
    text = v.grid(
        pd.Series([f"{m:.3f} ({lw})" for m, lw in zip(mine["median_ms"], mine["lowering"])], index=mine.index),
        ["model"],
        ["backend"],
    ).reindex(columns=engines)
    floor = ms[["ort-cpu", "openvino-cpu"]].min(axis=1)  # the bar: the faster runtime
    share = v.grid(mine["tuned_share"].astype(object), ["model"], ["backend"]).reindex(columns=engines)

    def ratio(col: str) -> list[str]:
        return ["–" if pd.isna(x) else f"{x:.2f}×" for x in ms[col] / floor]

    table = pd.DataFrame(
        {
            "ort-cpu": text["ort-cpu"],
            "openvino-cpu": text["openvino-cpu"],
            "tvm-llvm": text["tvm-llvm"],
            "tvm-llvm ratio": ratio("tvm-llvm"),
            "tvm-llvm-tuned": text["tvm-llvm-tuned"],
            "tvm-llvm-tuned ratio": ratio("tvm-llvm-tuned"),
            "share": ["–" if pd.isna(x) else f"{x * 100:.0f}%" for x in share["tvm-llvm-tuned"]],
        },
        index=ms.index,
    ).astype(object)
    table = table.where(table.notna(), "–")
    rows = table.reset_index()
    return _section(
        "TVM against the CPU runtimes",
        _para(
            "Per model, each engine's fastest numerically verified case (median ms, its lowering); TVM's as a ratio "
            "to the faster of ONNX Runtime and OpenVINO (≤ 1× is as fast or faster). tvm-llvm is what a machine "
            "without a tuning database runs: the default CPU schedule where it was measured faster and checked "
            "right, kernel by kernel (docs/tuning.md); tvm-llvm-tuned applies the committed MetaSchedule database, "
            "and the last column is the share of its latency in tuned kernels."
        ),
        Table.from_frame(
            rows,
            [
                "model",
                _n("batch"),
                _n("ort-cpu ms"),
                _n("openvino-cpu ms"),
                _n("tvm-llvm ms"),
                _n("÷ min(ORT, OV)"),
                _n("tvm-llvm-tuned ms"),
                _n("÷ min(ORT, OV)"),
                _n("tuned share"),
            ],
        ),
        anchor="tvm",
    )


def _best_of(v: RunView, model: str, batch: int, backends: tuple[str, ...]) -> Record | None:
    """The fastest verified case of the model over several engines."""
    found = [r for b in backends if b in v.backends and (r := v.best_verified(model, batch, b)) is not None]
    return min(found, key=lambda r: (r.median_ms, r.case_id)) if found else None


def _ratio_cell(v: RunView, model: str, batch: int, backends: tuple[str, ...], ort: Record, label: bool) -> Cell:
    """The backends' fastest verified case as a ratio to ORT's, with its lowering (and IREE option set)."""
    r = _best_of(v, model, batch, backends)
    if r is None:
        states = sorted(
            {x.status for (lb, bt, _, be), x in v.by.items() if (lb, bt) == (model, batch) and be in backends}
        )
        return cell("none verified" + (f" ({', '.join(states)})" if states else ""), style="skipped")
    who = f"{r.backend.removeprefix('iree-cpu').removeprefix('-') or 'default'}, " if label else ""
    tuned = " tuned" if r.backend == "tvm-llvm-tuned" else ""
    return cell(
        f"{r.median_ms / ort.median_ms:.2f}× ",
        small(f"({who}{r.lowering}){tuned}"),
        tip=f"{r.case_id}: {r.median_ms:.3f} ms",
    )


def compilers_section(v: RunView) -> Section | None:
    """The two ML compilers beside the runtimes: per model, ONNX Runtime's fastest verified case, and OpenVINO's,
    TVM's best (default schedule or tuned) and IREE's — as it comes (iree-cpu) and with its best option set — each
    as a ratio to ORT's, with the lowering (and option set) that won and IREE's compile time."""
    iree = tuple(b for b in ("iree-cpu", "iree-cpu-cl") if b in v.backends)
    if not iree or "ort-cpu" not in v.backends:
        return None
    rows = []
    for model, batch in v.models:
        ort = v.best_verified(model, batch, "ort-cpu")
        if ort is None:
            continue
        best = _best_of(v, model, batch, iree)
        rows.append(
            [
                model,
                batch,
                f"{ort.median_ms:.3f} ({ort.lowering})",
                _ratio_cell(v, model, batch, ("openvino-cpu",), ort, label=False),
                _ratio_cell(v, model, batch, ("tvm-llvm", "tvm-llvm-tuned"), ort, label=False),
                _ratio_cell(v, model, batch, ("iree-cpu",), ort, label=False),
                _ratio_cell(v, model, batch, iree, ort, label=True),
                "–" if best is None or best.compile_s is None else f"{best.compile_s:.1f}",
            ]
        )
    if not rows:
        return None
    return _section(
        "The ML compilers (TVM, IREE) against the runtimes",
        _para(
            "Per model, ONNX Runtime's fastest numerically verified case (median ms, its lowering), and each other "
            "engine's fastest verified case as a ratio to it (< 1× is faster than ORT), in brackets the lowering "
            "that won. TVM: the faster of its default CPU schedule and the tuned database. IREE as it comes "
            "(iree-cpu: only the target CPU set) and with the best of its option sets (default, or `cl`: the "
            "channels-last preprocessing of iree-cpu-cl), with the compile time of that case's module (a cache hit "
            "shows the load)."
        ),
        Table.of(
            [
                "model",
                _n("batch"),
                _n("ort-cpu ms"),
                _n("openvino ÷ ORT"),
                _n("TVM best ÷ ORT"),
                _n("IREE default ÷ ORT"),
                _n("IREE best ÷ ORT"),
                _n("IREE compile s"),
            ],
            rows,
        ),
        anchor="compilers",
    )


def _variant_cell(v: RunView, label: str, batch: int, backend: str) -> Cell:
    """One variant on one engine: its fastest verified case (latency, the lowering where not native), else the
    states its cases had."""
    best = v.best_verified(label, batch, backend)
    if best is not None:
        via = "" if best.lowering == "native" else f" ({best.lowering})"
        rewrites = ", ".join(w.get("rewrite", "?") for w in best.details.get("rewrites") or [])
        return cell(
            f"{best.median_ms:.3f} ms{via} ",
            Span("ok", "ok"),
            small(f" via {rewrites}") if rewrites else "",
            tip=best.case_id,
        )
    mine = [r for (lb, bt, _, be), r in v.by.items() if (lb, bt, be) == (label, batch, backend) and not _hidden(r)]
    if not mine:
        return cell("–")
    states = sorted({r.status for r in mine})
    worst = next((s for s in ("error", "mismatch", "skipped") if s in states), states[0])
    first = next(r for r in mine if r.status == worst)
    return cell(f"none verified ({', '.join(states)})", style=worst, tip=f"{first.case_id}: {first.reason}")


def _form_comparisons(v: RunView, base: str, form: str, batch: int, backend: str) -> list[dict]:
    """The output comparisons (harness/checking/forms.py) between `base` and `form` on `backend`, wherever
    recorded (on the case that ran second), one per form lowering."""
    out: dict[str, dict] = {}
    for (lb, bt, _, be), r in v.by.items():
        if bt != batch or be != backend or lb not in (base, form):
            continue
        for c in r.details.get("forms") or []:
            if c.get("form", "").startswith(f"{form}/"):
                out[c["form"]] = c
    return list(out.values())


def _equal_cell(found: list[dict]) -> Cell:
    if not found:
        return cell("not compared", tip="no pair of cases of the two forms produced outputs on this engine")
    same = [c for c in found if c.get("bitwise")]
    refs = all(c.get("reference_bitwise") for c in found)
    tip = "; ".join(
        f"{c['form'].split('/')[1]}: "
        + ("bitwise" if c.get("bitwise") else f"{c['differing']} differ, max {c['max_abs']:.1e}")
        for c in found
    )
    if len(same) == len(found):
        return cell(f"bitwise ({len(found)}/{len(found)})" + ("" if refs else ", references differ!"), tip=tip)
    worst = max((c.get("max_abs", 0.0) for c in found), default=0.0)
    return cell(
        f"{len(same)}/{len(found)} bitwise; max |Δ| {worst:.1e}" + ("" if refs else ", references differ!"),
        style="mismatch" if not refs else "",
        tip=tip,
    )


def _faster_form(a: Record, b: Record, base_name: str) -> Cell:
    """Which of two forms ran faster (base `a`, ConvTranspose form `b`) and by how much; a tie where the two
    medians' 95% confidence intervals overlap (the difference is not resolved by this run's samples)."""
    ratio = a.median_ms / b.median_ms
    text = f"ConvT {ratio:.2f}×" if ratio > 1 else f"{base_name} {1 / ratio:.2f}×"
    tip = f"{a.case_id} {a.median_ms:.3f} ms against {b.case_id} {b.median_ms:.3f} ms"
    ca, cb = a.latency_ms.ci95 if a.latency_ms else None, b.latency_ms.ci95 if b.latency_ms else None
    if ca and cb and ca[0] <= cb[1] and cb[0] <= ca[1]:
        return cell(
            f"tie ({text})",
            tip=f"{tip}; the medians' 95% CIs overlap: {ca[0]:.3f}–{ca[1]:.3f} and {cb[0]:.3f}–{cb[1]:.3f} ms",
        )
    return cell(text, tip=tip)


def forms_section(v: RunView) -> Section | None:
    """A zoo family with models that are other forms of another (the unpooling variants and their ConvTranspose
    forms): per size and engine, each variant's fastest verified case side by side, which form of each pair wins,
    and whether the engine's outputs of the two forms are equal."""
    from models import MODELS

    present = {lb.split("@")[0] for lb, _ in v.models}
    families = [
        f
        for f in dict.fromkeys(s.family for s in MODELS.values() if s.form_of)
        if any(MODELS[n].family == f for n in present if n in MODELS)
    ]
    if not families:
        return None
    blocks: list = []
    for fam in families:
        names = [s.name for s in MODELS.values() if s.family == fam and s.name in present]
        sizes = sorted({(int(lb.split("@")[1]), bt) for lb, bt in v.models if lb.split("@")[0] in names})
        rows = []
        for size, batch in sizes:
            for be in v.backends:
                row: dict = {"model": f"{fam}@{size}", "batch": batch, "engine": be}
                any_case = False
                for n in names:
                    lb = f"{n}@{size}"
                    c = _variant_cell(v, lb, batch, be)
                    any_case |= plain(c.content) != "–"
                    row[n] = c
                    base = MODELS[n].form_of
                    if base is None or base not in names:
                        continue
                    a, b = v.best_verified(f"{base}@{size}", batch, be), v.best_verified(lb, batch, be)
                    if a is not None and b is not None:
                        row[f"{n} wins"] = _faster_form(a, b, base.split("_")[-1])
                    else:
                        row[f"{n} wins"] = cell("–")
                    row[f"{n} equal"] = _equal_cell(_form_comparisons(v, lb.replace(n, base, 1), lb, batch, be))
                if any_case:
                    rows.append(row)
        if not rows:
            continue
        frame = pd.DataFrame(rows)
        columns: list = [Column("model"), _n("batch"), Column("engine")]
        for c in frame.columns[3:]:
            title = c.removeprefix(f"{fam}_").replace(" wins", ": faster form").replace(" equal", ": same outputs")
            columns.append(Column(title, numeric=not c.endswith(" equal"), tip=c.split(" ")[0]))
        blocks.append(Table.from_frame(frame.fillna("–"), columns))
    if not blocks:
        return None
    return _section(
        "Unpooling variants and their ConvTranspose forms",
        _para(
            "Per engine, each variant's fastest verified case (median; in brackets the lowering where it is not "
            "native). ",
            code("_ct"),
            " models compute their base model's function with the unpooling written as a depthwise ConvTranspose "
            "(kernel = stride = 2; ones for nearest, one-hot for bed of nails), so every lowering applies to them. "
            "“Faster form” is the base form's time over the ConvTranspose form's best (ConvT n× = the ConvTranspose "
            "form is n times faster; a tie where the two medians' 95% confidence intervals overlap); “same outputs” compares the engine's outputs of the two forms on the same "
            "input, lowering by lowering, and checks that the two float64 references are equal bit for bit.",
        ),
        *blocks,
        anchor="unpool",
    )


def profile_section(v: RunView, top: int = 5) -> Section | None:
    """Where the time goes: per model, the top layers of each engine's fastest verified case, side by side,
    from the engines' own profilers (bench --profile-runs; Compiled.profile)."""
    engines = [
        b
        for b in ("ort-cpu", "openvino-cpu", "tvm-llvm", "tvm-llvm-tuned", "iree-cpu", "iree-cpu-cl")
        if b in v.backends
    ]
    blocks = []
    for model, batch in v.models:
        best = {b: v.best_verified(model, batch, b) for b in engines}
        profs = {b: (r.details.get("profile") or {}) if r else {} for b, r in best.items()}
        if not any(p.get("top") for p in profs.values()):
            continue
        head = []
        for b in engines:
            r, p = best[b], profs[b]
            head.append(f"{b}: {r.lowering}, {p['total_ms']:.3f} ms profiled" if r and p.get("top") else f"{b}: –")
        rows = []
        for i in range(top):
            row: list = [i + 1]
            for b in engines:
                t = (profs[b].get("top") or [])[i : i + 1]
                row.append(
                    cell(
                        f"{t[0]['node']} ",
                        small(f"({t[0]['op']}) {t[0]['ms']:.3f} ms, {100 * (t[0]['share'] or 0):.0f}%"),
                    )
                    if t
                    else "–"
                )
            rows.append(row)
        blocks += [_para(strong(f"{model} (batch {batch})"), " — ", "; ".join(head)), Table.of(["#", *engines], rows)]
    if not blocks:
        return None
    return _section(
        "Where the time goes: the top layers of each engine",
        _para(
            "Each engine's fastest verified case, profiled by the engine's own profiler (ONNX Runtime's "
            "profiling, OpenVINO's performance counters, TVM's Relax VM instrumentation, IREE's HAL profiling) over "
            "the run's profile inferences: the layers taking most of an inference, with ms per inference and share "
            "of the profiled total. Layers are named after the model's nodes (ORT and OpenVINO name them; a TVM "
            "kernel is matched to the node of its op kind in graph order); an IREE dispatch is a fused region, "
            "named as IREE names it after its root op."
        ),
        *blocks,
        anchor="profile",
    )


def tuning_section(v: RunView) -> Section | None:
    """Which TVM cases ran with the committed MetaSchedule database, and how much of the model it covered."""
    f = v.frame
    tuned = f[f["backend"] == "tvm-llvm-tuned"]
    if tuned.empty:
        return None
    # each tuned case beside its model's tvm-llvm case under the same lowering
    untuned = f[f["backend"] == "tvm-llvm"][["label", "batch", "lowering", "median_ms"]]
    t = tuned.merge(untuned, on=["label", "batch", "lowering"], how="left", suffixes=("", "_untuned"))
    info = [r.details.get("tuning") or {} for r in t["record"]]

    def listed(names: list[str]) -> str:
        return ", ".join(names[:4]) + (" …" if len(names) > 4 else "")

    rows = pd.DataFrame(
        {
            "case": [code(c) for c in t["case_id"]],
            "state": [i.get("state") or ("untuned" if st == "skipped" else st) for i, st in zip(info, t["status"])],
            "tasks": [f"{i.get('tasks_tuned', 0)}/{i.get('tasks', '?')}" for i in info],
            "untuned": [listed(i.get("untuned_tasks", [])) or "–" for i in info],
            "median": ["–" if pd.isna(m) else f"{m:.3f}" for m in t["median_ms"]],
            "ratio": [
                "–" if pd.isna(b) or pd.isna(m) else f"{b / m:.1f}× faster"
                for b, m in zip(t["median_ms_untuned"], t["median_ms"])
            ],
        }
    )
    return _section(
        "TVM tuning coverage (tvm-llvm-tuned)",
        _para(
            "Tuned: every task of the workload has a record in the committed database; partly tuned: the tasks "
            "listed have none and run untuned; skipped: no record at all (",
            code("convtx tune"),
            ", docs/tuning.md).",
        ),
        Table.from_frame(
            rows, ["case", "state", _n("tasks tuned"), "untuned tasks", _n("median ms"), _n("vs tvm-llvm")]
        ),
    )


def cuda_section(records: list[Record]) -> Section | None:
    """CUDA backends: where they ran, or that they were built and why they could not run here."""
    rs = [r for r in records if r.backend.endswith("-cuda")]
    if not rs:
        return None
    rows = []
    for b in dict.fromkeys(r.backend for r in rs):
        br = [r for r in rs if r.backend == b]
        ran = [r for r in br if r.status in ("ok", "mismatch")]
        built = [r for r in br if r.status == "skipped" and (r.reason or "").startswith("built, not run")]
        other = [r for r in br if r.status == "skipped" and r not in built]
        why = sorted(
            {(r.reason or "").split(": ", 1)[-1] for r in built}
            | {(r.reason or "") for r in other if "unavailable" in (r.reason or "")}
        )
        tf32 = sorted({str(r.details.get("tf32")) for r in br if r.details.get("tf32")}) or ["—"]
        kernels = sum(int(r.details.get("kernels") or 0) for r in br)
        rows.append(
            [
                b,
                len(br),
                len(ran),
                len(built),
                len(other),
                ", ".join(tf32),
                kernels,
                "; ".join(why).replace("|", "/") or "—",
            ]
        )
    return _section(
        "CUDA backends",
        Table.of(
            [
                "backend",
                _n("cases"),
                _n("ran on a GPU"),
                _n("built, not run"),
                _n("skipped otherwise"),
                "TF32",
                _n("kernels built"),
                "why not run",
            ],
            rows,
        ),
        _para(
            "Built, not run: compiled here (the library and the generated kernel source are in the compiled-"
            "artefact cache; ",
            code("convtx build"),
            " also compiles the kernels with nvcc), with no GPU to run them on. A case judged with TF32 on uses the ",
            code("tf32"),
            " tolerance policy.",
        ),
    )


def _held(r: Record) -> tuple[float, float] | None:
    """(from, to) epoch seconds during which the case held its server: session granted -> case closed."""
    start, end = r.details["remote"].get("session_at"), (r.details.get("wall") or {}).get("end")
    return (start, end) if start is not None and end is not None and end >= start else None


def remote_section(records: list[Record]) -> Section | None:
    """Remote devices (TVM RPC): which server ran how many cases, what it said it is, how busy it was, what
    failed there, and the sweep's speed-up over one device."""
    rs = [r for r in records if r.details.get("remote")]
    if not rs:
        return None
    rem = rs[0].details["remote"]
    spans = [h for h in map(_held, rs) if h]
    wall = (max(e for _, e in spans) - min(s for s, _ in spans)) if spans else 0.0
    rows = []
    busy_total = 0.0
    kinds = {json.dumps(r.details["remote"].get("machine") or {}, sort_keys=True) for r in rs}
    for server in sorted({r.details["remote"]["server"] for r in rs}):
        sr = [r for r in rs if r.details["remote"]["server"] == server]
        m = sr[0].details["remote"].get("machine") or {}
        desc = ", ".join(f"{k} {m[k]}" for k in ("cpu", "triple", "vendor", "threads") if k in m) or "not reported"
        if m.get("cuda"):
            desc += f", GPU {m['cuda'].get('name')} (sm {m['cuda'].get('compute_version')})"
        waits = sorted(r.details["remote"].get("session_wait_s") or 0.0 for r in sr)
        busy = sum(e - s for s, e in (h for h in map(_held, sr) if h))
        busy_total += busy
        rows.append(
            [
                server,
                desc,
                len(sr),
                sum(r.status == "ok" for r in sr),
                sum(r.status == "mismatch" for r in sr),
                sum(r.status == "error" for r in sr),
                sum(bool(r.details.get("retry")) for r in sr),
                f"{busy:.1f}",
                f"{max(wall - busy, 0.0):.1f}" if spans else "–",
                f"{waits[len(waits) // 2]:.2f}",
            ]
        )
    lost = [
        r
        for r in records
        if r.status == "error" and "remote " in (r.reason or "") and "failed during" in (r.reason or "")
    ]
    blocks = [
        Table.of(
            [
                "server",
                "machine (as the remote reports it)",
                _n("cases"),
                _n("ok"),
                _n("mismatch"),
                _n("error"),
                _n("retried here"),
                _n("busy s"),
                _n("idle s"),
                _n("median session wait s"),
            ],
            rows,
        ),
        _para(
            f"Remote phase: {wall:.1f} s from the first session to the last case's end; the servers were busy "
            f"{busy_total:.1f} s in all, so one device would have needed about {busy_total / wall:.2f}x as long "
            "(busy: from a case's session to its end, compile-ahead excluded)."
            if wall > 0
            else "No session times in these records (a run from before they were kept)."
        ),
        _para(
            "Compiled here, run and timed on the remote device (TVM's ",
            code("time_evaluator"),
            " there: device "
            "time per call, no network); outputs fetched back and checked here. No interleaved reference kernel on a "
            "remote device. Engines without TVM's RPC runtime are skipped in a remote run.",
        ),
    ]
    if len(kinds) > 1:
        blocks.append(
            _para(
                strong("The servers are not alike"),
                f" ({len(kinds)} kinds of machine, above): each case ran on one server and its median is that "
                "server's; compare latencies only between cases of one machine.",
            )
        )
    if lost:
        parts: list[str | Span] = ["Cases lost with their server: "]
        for i, r in enumerate(lost):
            parts += ["; " if i else "", code(r.case_id), f" ({r.reason[:160]})"]
        blocks.append(_para(*parts))
    return _section(rich(f"Remote devices (TVM RPC tracker {rem['tracker']}, key ", code(rem["key"]), ")"), *blocks)


def conformance_section(extras: Mapping) -> Section | None:
    """`convtx conformance --out RUN/conformance`: per backend, the ONNX node tests against the ledger."""
    if "conformance" not in extras:
        return None
    c = extras["conformance"]
    rows = [
        [b, t["pass"], t["xfail"], t["FAIL"], t["XPASS"], t["skipped"], t.get("not run", 0)]
        for b, t in c["table"].items()
    ]
    return _section(
        f"Conformance ({c['cases']} ONNX node tests; ledger in harness/audit/conformance.py)",
        Table.of(["backend", *map(_n, ("pass", "xfail", "FAIL", "XPASS", "skipped", "built, not run"))], rows),
    )


def fuzz_section(extras: Mapping) -> Section | None:
    """`convtx fuzz --out RUN/fuzz`: the divergence classes found, each explained by the ledger or not."""
    if "fuzz" not in extras:
        return None
    f = extras["fuzz"]
    rows = [
        [
            r["class"],
            r["backend"],
            r["lowering"],
            ", ".join(r["attributes"]),
            r["count"],
            r.get("explained_by") or strong("unexplained"),
        ]
        for r in f["classes"]
    ]
    return _section(
        f"Fuzz ({f['cases']} cases, {f['failing_cases']} failing, {len(f['classes'])} classes)",
        Table.of(["class", "engine", "lowering", "attributes involved", _n("count"), "ledger"], rows),
    )


def odd_cases(records: list[Record]) -> list[Record]:
    """Cases to list with their reasons: everything not ok, except the lowerings skipped on models that have
    no ConvTranspose (listed once per model instead)."""
    return [r for r in records if r.status != "ok" and not _hidden(r)]


def odd_section(records: list[Record]) -> Section:
    title = "Skipped, failed and mismatching cases"
    odd = odd_cases(records)
    if not odd:
        return _section(title, _para("None."), anchor="odd", only=HTML)
    return _section(
        title,
        Table.of(
            ["case", "status", "reason"],
            [[code(r.case_id), cell(r.status, style=r.status), r.reason or ""] for r in odd],
        ),
        anchor="odd",
    )
