"""The report's plots as PNG bytes (matplotlib, Agg): same records, same bytes.

- latency: per model, grouped bars (lowering groups, one bar per backend), median with p10–p90 whiskers,
  log scale; a hatched bar did not pass the numerical check.
- errors: heatmap of log10 relative L2 error, (model, lowering) × backend, with the tolerance marked.
- roofline: useful GFLOP/s against arithmetic intensity (useful FLOPs per compulsory byte), under the
  measured fp32 peak and memory-bandwidth ceilings.
"""

from __future__ import annotations

import io
import math

from harness.checking.numerics import POLICY
from harness.report.analysis import RunView, no_convtranspose

COLOURS = {
    "ort-cpu": "#1f77b4",
    "tvm-llvm": "#ff7f0e",
    "torch-cpu": "#2ca02c",
    "openvino-cpu": "#9467bd",
    "ort-cuda": "#17becf",
    "tvm-cuda": "#d62728",
}
MARKERS = {
    "native": "o",
    "explicit_pads": "s",
    "zero_insert": "v",
    "phase": "D",
    "phase_split": "X",
    "gemm_col2im": "^",
    "gemm_overlap_add": "P",
}
_EXTRA = ["#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]


def _colour(backend: str, backends: tuple[str, ...]) -> str:
    return COLOURS.get(backend) or _EXTRA[backends.index(backend) % len(_EXTRA)]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # text.parse_math off: labels are plain text (a model name with `$` once started mathtext and crashed)
    plt.rcParams.update({"font.size": 8, "svg.hashsalt": "convtx", "figure.dpi": 100, "text.parse_math": False})
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def latency_png(v: RunView) -> bytes | None:
    timed = v.frame[v.frame["median_ms"].notna()]
    with_latency = set(zip(timed["label"], timed["batch"]))
    models = [mb for mb in v.models if mb in with_latency]
    if not models:
        return None
    plt = _plt()
    from matplotlib import ticker

    ncols = min(3, len(models))
    nrows = math.ceil(len(models) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.0 * nrows), squeeze=False)
    for ax in axes.flat[len(models) :]:
        ax.set_visible(False)
    for ax, (model, batch) in zip(axes.flat, models):
        lws = [
            lw
            for lw in v.lowerings
            if any((r := v.get(model, batch, lw, b)) and r.latency_ms is not None for b in v.backends)
        ]
        bks = [
            b for b in v.backends if any((r := v.get(model, batch, lw, b)) and r.latency_ms is not None for lw in lws)
        ]
        width = 0.8 / max(1, len(bks))
        for j, b in enumerate(bks):
            xs, ys, lo, hi, hatch = [], [], [], [], []
            for i, lw in enumerate(lws):
                r = v.get(model, batch, lw, b)
                if r is None or r.latency_ms is None:
                    continue
                lat = r.latency_ms
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(lat.median)
                lo.append(lat.median - lat.p10)
                hi.append(lat.p90 - lat.median)
                hatch.append(r.status != "ok")
            bars = ax.bar(
                xs,
                ys,
                width,
                color=_colour(b, v.backends),
                label=b,
                yerr=[lo, hi],
                error_kw={"elinewidth": 0.8, "capsize": 1.5},
            )
            for bar, bad in zip(bars, hatch):
                if bad:
                    bar.set_hatch("xxx")
                    bar.set_edgecolor("#b00000")
        ax.set_yscale("log")
        lo_y, hi_y = ax.get_ylim()
        if hi_y / lo_y < 30:  # a narrow range: widen it so the bars read as bars, ticks as numbers
            mid = math.sqrt(lo_y * hi_y)
            ax.set_ylim(mid / 6, mid * 6)
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xticks(range(len(lws)))
        ax.set_xticklabels([lw.replace("_", "\n", 1) for lw in lws], fontsize=7)
        ax.set_title(f"{model} (batch {batch})", fontsize=9)
        ax.set_ylabel("ms (median, p10–p90)")
        ax.grid(axis="y", which="both", alpha=0.25)
        ax.legend(fontsize=6.5, loc="best")
    fig.suptitle(
        "Latency per inference, by lowering and backend (log scale; hatched: failed the numerical check)", fontsize=10
    )
    fig.tight_layout()
    return _png(fig)


def error_heatmap_png(v: RunView) -> bytes | None:
    rows = []
    for model, batch in v.models:
        for lw in v.lowerings:
            rs = [v.get(model, batch, lw, b) for b in v.backends]
            if any(r is not None and not (r.status == "skipped" and no_convtranspose(r)) for r in rs):
                rows.append((f"{model} b{batch} · {lw}", rs))
    if not rows:
        return None
    import numpy as np

    plt = _plt()
    tol = POLICY["float32"].rel_l2
    data = np.full((len(rows), len(v.backends)), np.nan)
    for i, (_, rs) in enumerate(rows):
        for j, r in enumerate(rs):
            if r is not None and r.numerics is not None:
                e = r.numerics.rel_l2  # non-finite (inf, nan) and None are drawn as off the scale
                data[i, j] = (
                    math.log10(e) if e is not None and e > 0 and math.isfinite(e) else (-12.0 if e == 0 else 3.0)
                )
    fig, ax = plt.subplots(figsize=(3.2 + 1.3 * len(v.backends), 1.4 + 0.2 * len(rows)))
    cmap = plt.get_cmap("RdYlGn_r").with_extremes(bad="#dddddd")
    lo = math.log10(tol) - 4
    im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=lo, vmax=math.log10(tol) + 2, aspect="auto")
    for i, (_, rs) in enumerate(rows):
        for j, r in enumerate(rs):
            if r is None:
                text = ""
            elif r.numerics is not None:
                text = f"{data[i, j]:.1f}" + ("" if r.status == "ok" else " FAIL")
            else:
                text = {"skipped": "skip", "error": "error"}.get(r.status, r.status)
            dark = r is not None and r.numerics is not None and data[i, j] > math.log10(tol) + 0.5
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=6.5,
                color="white"
                if dark
                else ("#b00000" if r is not None and r.status in ("mismatch", "error") else "black"),
                fontweight="bold" if r is not None and r.status != "ok" else "normal",
            )
    ax.set_xticks(range(len(v.backends)))
    ax.set_xticklabels(v.backends)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([name for name, _ in rows], fontsize=6.5)
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.set_label("log10 relative L2 error vs float64")
    cb.ax.axhline(math.log10(tol), color="black", linewidth=1.5)
    ax.set_title(
        f"log10 rel. L2 error vs float64 (tolerance {tol:g}: black line on the scale;\n"
        f"FAIL: failed the check; grey: not run)",
        fontsize=9,
    )
    fig.tight_layout()
    return _png(fig)


def roofline_png(v: RunView) -> bytes | None:
    pts = [r for r in v.frame["record"] if r.latency_ms is not None and r.gflops and r.min_bytes]
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ais = [r.flops / r.min_bytes for r in pts]
    x0, x1 = min(ais) / 2, max(ais) * 2
    if v.peak_gflops and v.mem_gbs:
        import numpy as np

        xs = np.logspace(math.log10(x0), math.log10(x1), 200)
        ax.plot(
            xs,
            np.minimum(v.peak_gflops, v.mem_gbs * xs),
            color="black",
            linewidth=1.2,
            label=f"measured ceilings: {v.peak_gflops:.0f} GFLOP/s, {v.mem_gbs:.0f} GB/s",
        )
    for b in v.backends:
        for lw in v.lowerings:
            sel = [r for r in pts if r.backend == b and r.lowering == lw]
            if not sel:
                continue
            ax.scatter(
                [r.flops / r.min_bytes for r in sel],
                [r.gflops for r in sel],
                s=22,
                color=_colour(b, v.backends),
                marker=MARKERS.get(lw, "o"),
                edgecolors=["#b00000" if r.status != "ok" else "none" for r in sel],
                label=f"{b} · {lw}",
                alpha=0.85,
            )
    best = {}
    for r in pts:
        key = (r.model, r.size, r.batch)
        if r.status == "ok" and (key not in best or r.gflops > best[key].gflops):
            best[key] = r
    for r in sorted(best.values(), key=lambda r: r.case_id):
        ax.annotate(
            f"{r.model}@{r.size}" if r.size else r.model,
            (r.flops / r.min_bytes, r.gflops),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x0, x1)
    ax.set_xlabel("arithmetic intensity: useful FLOPs per compulsory byte (inputs + weights + outputs)")
    ax.set_ylabel("useful GFLOP/s")
    ax.grid(which="both", alpha=0.25)
    ax.legend(fontsize=6, ncol=2, loc="lower right")
    ax.set_title("Roofline: each case's useful GFLOP/s (labels: the fastest verified case per model)", fontsize=9)
    fig.tight_layout()
    return _png(fig)


PLOTS = (
    ("latency", latency_png, "Latency by lowering and backend"),
    ("errors", error_heatmap_png, "Numerical error heatmap"),
    ("roofline", roofline_png, "Roofline"),
)


def render_plots(v: RunView) -> dict[str, bytes]:
    out = {}
    for name, fn, _ in PLOTS:
        png = fn(v)
        if png is not None:
            out[name] = png
    return out
