"""report.md: the report model (report/tables.py) as Markdown that fits a PR comment. Pure: Report -> text."""

from __future__ import annotations

from harness.report.tables import MARKDOWN, Block, Cell, Fields, Figure, Paragraph, Report, Rich, Table

_SET = {"code": "`{}`", "strong": "**{}**"}


def text(r: Rich) -> str:
    return "".join(_SET.get(s.kind, "{}").format(s.text) for s in r)


def cell_text(c: Cell) -> str:
    """A cell on one line of a pipe table: `|` escaped, line breaks as spaces."""
    return text(c.content).replace("|", "\\|").replace("\n", " ")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table_lines(t: Table) -> list[str]:
    L = [text(t.caption), ""] if t.caption else []
    L.append(_row([c.name for c in t.columns]))
    L.append("|" + "".join("---:|" if c.numeric else "---|" for c in t.columns))
    L += [_row([cell_text(c) for c in row]) for row in t.rows]
    return L


def block_lines(b: Block) -> list[str]:
    if isinstance(b, Table):
        return table_lines(b)
    if isinstance(b, Fields):
        return [f"- **{k}**: {v}" for k, v in b.items]
    if isinstance(b, Figure):
        return [f"![{b.caption}]({b.path})"]
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
