"""report.html: one self-contained file (styles inline, plots embedded as PNG data URIs).

Pure: (run.json dict, records, extras, plots) -> text. The same inputs give the same bytes."""
from __future__ import annotations

import base64
from html import escape

from harness.checking.numerics import POLICY
from harness.report.analysis import RunView, model_label, no_convtranspose
from harness.report.markdown import (counts_lines, cuda_lines, extras_lines, odd_cases, remote_lines, summary_lines,
                                     tuning_lines)
from harness.report.plots import PLOTS
from harness.core.records import Record, fmt_metric

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1280px;color:#222;
     padding:0 16px;font-size:14px;line-height:1.4}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:3px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:12.5px}
th,td{border:1px solid #d0d0d0;padding:3px 7px;vertical-align:top}
th{background:#f3f3f3;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ok{background:#dff3df} .mismatch{background:#f9c9c9;font-weight:600} .error{background:#fbdcb8;font-weight:600}
.skipped{background:#ececec;color:#666} .best{font-weight:700} .star{color:#b8860b}
dl.summary{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:10px 0}
dl.summary dt{font-weight:600;color:#555} dl.summary dd{margin:0}
figure{margin:10px 0 22px} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:12px;color:#555}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;border:1px solid #ccc;font-size:12px}
nav a{margin-right:12px}
.wide{overflow-x:auto;max-width:100%} table.matrix td,table.matrix th{padding:2px 4px;font-size:11px}
small{color:#666}
"""


def _e(x) -> str:
    return escape(str(x), quote=True)


def _cell(text: str, cls: str = "", title: str = "", numeric: bool = False) -> str:
    classes = " ".join(c for c in (cls, "n" if numeric else "") if c)
    attrs = (f' class="{classes}"' if classes else "") + (f' title="{_e(title)}"' if title else "")
    return f"<td{attrs}>{text}</td>"


def _table(head: list[str], rows: list[str]) -> str:
    return ("<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


_SHORT = {"native": "native", "explicit_pads": "pads", "zero_insert": "zero-ins", "phase": "phase",
          "gemm_col2im": "col2im", "gemm_overlap_add": "ovl-add"}


def _correctness(v: RunView) -> str:
    """One row per model; a column group per backend with a column per lowering it ran; each cell is the
    relative L2 error coloured by verdict (the reason on hover)."""
    cols = [(b, lw) for b in v.backends for lw in v.lowerings
            if any((r := v.get(m, bt, lw, b)) is not None and not (r.status == "skipped" and no_convtranspose(r))
                   for m, bt in v.models)]
    groups: dict[str, int] = {}
    for b, _ in cols:
        groups[b] = groups.get(b, 0) + 1
    head1 = "<tr><th rowspan=2>model</th><th rowspan=2>batch</th>" + "".join(
        f'<th colspan="{n}" style="text-align:center">{_e(b)}</th>' for b, n in groups.items()) + "</tr>"
    head2 = "<tr>" + "".join(f'<th title="{_e(lw)}">{_e(_SHORT.get(lw, lw))}</th>' for _, lw in cols) + "</tr>"
    rows = []
    for model, batch in v.models:
        cells = []
        for b, lw in cols:
            r = v.get(model, batch, lw, b)
            if r is None or (no_convtranspose(r) and r.status == "skipped"):
                cells.append(_cell("", title="not run: no ConvTranspose" if r is not None else ""))
            elif r.numerics:
                err = fmt_metric(r.numerics.get("rel_l2"), ".0e")
                tip = f"{r.case_id}: rel_l2 {fmt_metric(r.numerics.get('rel_l2'), '.2e')}, max abs " \
                      f"{fmt_metric(r.numerics.get('max_abs'), '.2e')}" + (f" — {r.reason}" if r.reason else "")
                cells.append(_cell(_e(err) + ("" if r.status == "ok" else " ✗"), r.status, tip, numeric=True))
            else:
                cells.append(_cell(_e({"skipped": "skip", "error": "error"}.get(r.status, r.status)), r.status,
                                   f"{r.case_id}: {r.reason}"))
        rows.append(f"<tr><td>{_e(model)}</td><td class=n>{batch}</td>" + "".join(cells) + "</tr>")
    return (f'<div class="wide"><table class="matrix"><thead>{head1}{head2}</thead><tbody>{"".join(rows)}'
            f"</tbody></table></div>")


def _best(v: RunView) -> str:
    rows = []
    for model, batch in v.models:
        cells = []
        for c in v.best_per_backend(model, batch):
            if c.record is None:
                states = f" <small>({_e(', '.join(c.states))})</small>" if c.states else ""
                cells.append(_cell("none verified" + states, "skipped"))
                continue
            sp = "–" if c.speedup is None else f"{c.speedup:.2f}×"
            mark = " <span class=star>★</span>" if c.is_overall else f" <small>{c.gap:.2f}× the best</small>"
            cells.append(_cell(f"{_e(c.record.lowering)} {c.record.latency_ms['median']:.3f} ms "
                               f"<small>({sp})</small>{mark}", "best" if c.is_overall else ""))
        rows.append(f"<tr><td>{_e(model)}</td><td class=n>{batch}</td>" + "".join(cells) + "</tr>")
    return _table(["model", "batch", *v.backends], rows)


def _latency(v: RunView) -> str:
    rows = []
    for model, batch in v.models:
        best = v.best_verified(model, batch)
        for lw in v.lowerings:
            for b in v.backends:
                r = v.get(model, batch, lw, b)
                if not r or not r.latency_ms:
                    continue
                lat, sp, pk = r.latency_ms, v.speedup(r), v.pct_peak(r)
                waste = f"{r.flops_performed / r.flops:.2f}" if r.flops and r.flops_performed else "–"
                star = " <span class=star>★</span>" if r is best else ""
                rows.append(
                    "<tr>" + _cell(_e(model)) + _cell(str(batch), numeric=True) + _cell(_e(lw)) + _cell(_e(b))
                    + _cell(f"{lat['median']:.3f}{star}", "best" if r is best else "", numeric=True)
                    + _cell(f"{lat['p10']:.3f}–{lat['p90']:.3f}", numeric=True)
                    + _cell(str(lat["n"]), numeric=True)
                    + _cell("–" if sp is None else f"{sp:.2f}×", numeric=True)
                    + _cell(_e(fmt_metric(r.gflops, ".2f")), numeric=True)
                    + _cell("–" if pk is None else f"{pk:.1f}", numeric=True)
                    + _cell(waste, numeric=True)
                    + _cell(_e(fmt_metric(r.compile_s, ".2f")), numeric=True)
                    + _cell(_e(r.status), r.status, r.reason or "") + "</tr>")
    return _table(["model", "batch", "lowering", "backend", "median ms", "p10–p90 ms", "n",
                   "vs ort-cpu native", "useful GFLOP/s", "% of peak", "FLOPs done/useful", "compile s",
                   "verdict"], rows)


def _md_table_to_html(lines: list[str]) -> str:
    """The conformance and fuzz sections are shared with report.md: convert their Markdown tables."""
    out, rows = [], []
    for line in lines + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
            continue
        if rows:
            out.append(_table(rows[0], ["<tr>" + "".join(_cell(_e(c.replace("**", "").replace("`", ""))) for c in r) + "</tr>"
                                        for r in rows[1:]]))
            rows = []
        if line.startswith("## "):
            out.append(f"<h2>{_e(line[3:])}</h2>")
        elif line:
            out.append(f"<p>{_e(line)}</p>")
    return "\n".join(out)


def render_html(meta: dict, records: list[Record], extras: dict | None, plots: dict[str, bytes]) -> str:
    v = RunView.of(meta, records)
    tol = POLICY["float32"]
    P = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         f"<title>convtx report — {_e(meta.get('run_id', '?'))}</title>", f"<style>{CSS}</style></head><body>",
         f"<h1>convtx report — run <code>{_e(meta.get('run_id', '?'))}</code></h1>",
         '<nav><a href="#summary">summary</a><a href="#correctness">correctness</a><a href="#best">best '
         'per engine</a><a href="#latency">latency</a><a href="#plots">plots</a><a href="#odd">skipped &amp; '
         'failed</a></nav>',
         '<h2 id="summary">Run summary</h2><dl class="summary">']
    P += [f"<dt>{_e(k)}</dt><dd>{_e(val)}</dd>" for k, val in summary_lines(meta, records)]
    P.append("</dl>")

    P.append('<h2 id="correctness">Correctness: model × lowering × backend</h2>')
    P.append(f"<p>Relative L2 error against the float64 reference (max abs error in brackets). A case passes at "
             f"rel_l2 ≤ {tol.rel_l2:g} and |out − ref| ≤ {tol.atol:g} + {tol.rtol:g}·|ref| everywhere. One row per "
             f"model, one column per backend × lowering; hover a cell for the case, both errors and the reason "
             f"of a failure or skip. Blank: not run (the eager baseline runs the PyTorch module once; a model "
             f"without ConvTranspose runs only natively).</p>")
    P.append('<p class="legend"><span class="ok">ok</span><span class="mismatch">mismatch</span>'
             '<span class="error">error</span><span class="skipped">skipped</span></p>')
    P.append(_correctness(v))

    if any(r.latency_ms for r in records):
        P.append('<h2 id="best">Best verified configuration per model × backend</h2>')
        P.append("<p>On each engine, the fastest lowering among the cases that passed the numerical check; in "
                 "brackets the speed-up against the same model's ort-cpu native case; ★ the best over all "
                 "engines, and each other engine's gap to it.</p>")
        P.append(_best(v))
        P.append('<h2 id="latency">Latency</h2>')
        peak = f"{v.peak_gflops:.1f} GFLOP/s" if v.peak_gflops else "not measured"
        P.append(f"<p>Median and p10–p90 of the per-inference wall time. Useful GFLOP/s count only the products "
                 f"that land in the output; % of peak is against this run's measured fp32 peak ({peak}). "
                 f"FLOPs done/useful shows the work a lowering wastes (zero insertion multiplies by zeros).</p>")
        P.append(_latency(v))

    if plots:
        P.append('<h2 id="plots">Plots</h2>')
        for name, _, caption in PLOTS:
            if name in plots:
                data = base64.b64encode(plots[name]).decode("ascii")
                P.append(f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{_e(caption)} (also <code>plots/{name}.png</code>)</figcaption></figure>")

    no_ct = list(dict.fromkeys(model_label(r) for r in records if no_convtranspose(r)))
    if no_ct:
        P.append("<h2>Models without ConvTranspose</h2>")
        P.append(f"<p>{_e(', '.join(no_ct))}: no ConvTranspose node, so every lowering is a no-op; only the "
                 f"native case runs.</p>")
    declined = [(r, d) for r in records for d in (r.details.get("lowering") or {}).get("declined", [])]
    if declined:
        P.append("<h2>ConvTranspose nodes a lowering declined (left native)</h2>")
        P.append(_table(["case", "node", "reason"], [
            "<tr>" + _cell(f"<code>{_e(r.case_id)}</code>") + _cell(_e(d["node"])) + _cell(_e(d["reason"]))
            + "</tr>" for r, d in declined]))
    ex = counts_lines(records) + tuning_lines(records) + cuda_lines(records) + remote_lines(records) + extras_lines(extras or {})
    if ex:
        P.append(_md_table_to_html(ex))

    odd = odd_cases(records)
    P.append('<h2 id="odd">Skipped, failed and mismatching cases</h2>')
    if odd:
        P.append(_table(["case", "status", "reason"], [
            "<tr>" + _cell(f"<code>{_e(r.case_id)}</code>") + _cell(_e(r.status), r.status)
            + _cell(_e(r.reason or "")) + "</tr>" for r in odd]))
    else:
        P.append("<p>None.</p>")
    P.append("</body></html>")
    return "\n".join(P) + "\n"
