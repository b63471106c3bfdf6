"""report.html: the report model (core/tables.py) as one self-contained file (styles inline, plots embedded
as PNG data URIs). Pure: Report -> text; the same report gives the same bytes."""

from __future__ import annotations

import base64

from harness.core import text as esc
from harness.core.tables import HTML, VERDICTS, Block, Cell, Fields, Figure, Paragraph, Report, Rich, Table

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

_TAG = {"code": "code", "strong": "strong", "small": "small"}


def _e(x) -> str:
    return esc.html(x)


def _attrs(cls: str = "", title: str = "", **more: str) -> str:
    pairs = [("class", cls), ("title", title), *more.items()]
    return "".join(f' {k}="{_e(v)}"' for k, v in pairs if v)


def text(r: Rich) -> str:
    out = []
    for s in r:
        if s.kind in _TAG:
            out.append(f"<{_TAG[s.kind]}>{_e(s.text)}</{_TAG[s.kind]}>")
        elif s.kind == "star" or s.kind in VERDICTS:
            out.append(f'<span class="{s.kind}">{_e(s.text)}</span>')
        else:
            out.append(_e(s.text))
    return "".join(out)


def _td(t: Table, col: int, c: Cell) -> str:
    cls = " ".join(x for x in (c.style, "n" if t.is_numeric(col, c) else "") if x)
    return f"<td{_attrs(cls, c.tip)}>{text(c.content)}</td>"


def _head(t: Table) -> str:
    """One header row; two where columns are grouped (a spanning header over each group's columns)."""
    if not any(c.group for c in t.columns):
        return "<tr>" + "".join(f"<th{_attrs(title=c.tip)}>{_e(c.name)}</th>" for c in t.columns) + "</tr>"
    top, sub, i = [], [], 0
    while i < len(t.columns):
        c = t.columns[i]
        if not c.group:
            top.append(f'<th rowspan="2"{_attrs(title=c.tip)}>{_e(c.name)}</th>')
            i += 1
            continue
        n = next((j for j in range(i, len(t.columns)) if t.columns[j].group != c.group), len(t.columns)) - i
        top.append(f'<th colspan="{n}" style="text-align:center">{_e(c.group)}</th>')
        sub += [f"<th{_attrs(title=g.tip)}>{_e(g.name)}</th>" for g in t.columns[i : i + n]]
        i += n
    return "<tr>" + "".join(top) + "</tr><tr>" + "".join(sub) + "</tr>"


def table_html(t: Table) -> str:
    body = "".join("<tr>" + "".join(_td(t, i, c) for i, c in enumerate(row)) + "</tr>" for row in t.rows)
    html = f"<table{_attrs('matrix' if t.dense else '')}><thead>{_head(t)}</thead><tbody>{body}</tbody></table>"
    if t.dense:
        html = f'<div class="wide">{html}</div>'
    return (f"<p>{text(t.caption)}</p>\n" if t.caption else "") + html


def block_html(b: Block) -> str:
    if isinstance(b, Table):
        return table_html(b)
    if isinstance(b, Fields):
        return '<dl class="summary">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in b.items) + "</dl>"
    if isinstance(b, Figure):
        data = base64.b64encode(b.png).decode("ascii")
        return (
            f'<figure><img alt="{_e(b.caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(b.caption)} (also <code>{_e(b.path)}</code>)</figcaption></figure>"
        )
    assert isinstance(b, Paragraph)
    return f"<p{_attrs(b.style)}>{text(b.content)}</p>"


def render_html(report: Report) -> str:
    P = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(report.name)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{text(report.title)}</h1>",
        "<nav>" + "".join(f'<a href="#{_e(anchor)}">{_e(label)}</a>' for label, anchor in report.nav) + "</nav>",
    ]
    for s in report.for_medium(HTML):
        if s.title:
            P.append(f"<h2{_attrs(id=s.anchor)}>{text(s.title)}</h2>")
        P += [block_html(b) for b in s.blocks]
    P.append("</body></html>")
    return "\n".join(P) + "\n"
