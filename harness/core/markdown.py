"""report.md: the report model (core/tables.py) as Markdown that fits a PR comment. Pure: Report -> text."""

from __future__ import annotations

from harness.core import text as esc
from harness.core.tables import MARKDOWN, Block, Cell, Fields, Figure, Paragraph, Report, Rich, Table


def _span(s) -> str:
    if s.kind == "code":
        return esc.markdown_code(s.text)
    if s.kind == "strong":
        return f"**{esc.markdown_line(s.text)}**"
    return esc.markdown_line(s.text)


def text(r: Rich) -> str:
    """Rich text on one Markdown line; every span's text escaped (harness/core/text.py): text from files (node
    names, run ids, reasons) cannot open a tag, a link or code, nor end a table cell or the line."""
    return "".join(_span(s) for s in r)


def cell_text(c: Cell) -> str:
    return text(c.content)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table_lines(t: Table) -> list[str]:
    L = [text(t.caption), ""] if t.caption else []
    L.append(_row([esc.markdown_line(c.name) for c in t.columns]))
    L.append("|" + "".join("---:|" if c.numeric else "---|" for c in t.columns))
    L += [_row([cell_text(c) for c in row]) for row in t.rows]
    return L


def block_lines(b: Block) -> list[str]:
    if isinstance(b, Table):
        return table_lines(b)
    if isinstance(b, Fields):
        return [f"- **{esc.markdown_line(k)}**: {esc.markdown_line(v)}" for k, v in b.items]
    if isinstance(b, Figure):
        return [f"![{esc.markdown_line(b.caption)}]({esc.markdown_line(b.path).replace(' ', '%20')})"]
    assert isinstance(b, Paragraph)
    return [text(b.content)]


def render_markdown(report: Report) -> str:
    L = [f"# {text(report.title)}", ""]
    for s in report.for_medium(MARKDOWN):
        if s.title:
            L += [f"## {text(s.title)}", ""]
        for b in s.blocks:
            L += block_lines(b) + [""]
    return "\n".join(L)
