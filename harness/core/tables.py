"""The report's one model: sections of paragraphs and tables, built once (report/sections.py) and drawn by
both renderers (core/markdown.py, report/html.py), so the two reports cannot say different things.

A table is named columns and rows of cells — the shape of a data frame: `Table.from_frame(df)` takes a pandas
DataFrame (the report's tables are built with pandas from the run's frame, report/frame.py), `Table.of(columns,
rows)` plain rows. A cell is rich text (spans) with an optional semantic style: a
verdict colour, the best case, a hover tip, numeric alignment. Nothing here knows Markdown or HTML.

Where the two reports differ on purpose (the HTML's correctness matrix and plots, the Markdown's latency
grid), the block says which medium it is for (`only`); everything else is the same object in both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

MARKDOWN, HTML = "markdown", "html"
VERDICTS = ("ok", "mismatch", "error", "skipped")
CELL_STYLES = ("", *VERDICTS, "best")
# how a span is set: plain, code, strong, small (secondary), star (the best-case mark), or a verdict's colour
SPAN_KINDS = ("", "code", "strong", "small", "star", *VERDICTS)


@dataclass(frozen=True)
class Span:
    """A run of text set one way."""

    text: str
    kind: str = ""

    def __post_init__(self) -> None:
        if self.kind not in SPAN_KINDS:
            raise ValueError(f"span kind {self.kind!r} not in {SPAN_KINDS}")


Rich = tuple[Span, ...]


def rich(*parts: str | Span) -> Rich:
    """Rich text from strings (plain) and spans; empty strings are dropped."""
    return tuple(p if isinstance(p, Span) else Span(p) for p in parts if p != "")


def code(text: str) -> Span:
    return Span(text, "code")


def strong(text: str) -> Span:
    return Span(text, "strong")


def small(text: str) -> Span:
    return Span(text, "small")


STAR = Span("★", "star")


def plain(text: Rich) -> str:
    """The text a reader sees, without its setting."""
    return "".join(s.text for s in text)


@dataclass(frozen=True)
class Cell:
    """One table cell. `style` colours it (a verdict, or "best"); `tip` is shown on hover where the medium can;
    `numeric` (right-aligned, tabular figures) is the column's unless set."""

    content: Rich = ()
    style: str = ""
    tip: str = ""
    numeric: bool | None = None

    def __post_init__(self) -> None:
        if self.style not in CELL_STYLES:
            raise ValueError(f"cell style {self.style!r} not in {CELL_STYLES}")

    @property
    def text(self) -> str:
        return plain(self.content)


CellLike = Cell | Span | str | int | float | None


def cell(*parts: str | Span, style: str = "", tip: str = "", numeric: bool | None = None) -> Cell:
    return Cell(rich(*parts), style, tip, numeric)


def as_cell(value: CellLike) -> Cell:
    """A cell from a plain value: a Cell as it is, a span, text, a number as `str()` writes it, None empty."""
    if isinstance(value, Cell):
        return value
    if isinstance(value, Span):
        return Cell((value,))
    return Cell(rich("" if value is None else str(value)))


@dataclass(frozen=True)
class Column:
    """A column: its header, whether its cells are numbers (right-aligned), a hover tip for the header, and
    a group: consecutive columns of one group share a spanning header above theirs (HTML)."""

    name: str
    numeric: bool = False
    tip: str = ""
    group: str = ""


@dataclass(frozen=True)
class Table:
    """Named columns and rows of cells. `caption` is a lead-in line above the table; `dense` marks a wide
    matrix (small cells, scrolled sideways where the medium can)."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: Rich = ()
    dense: bool = False
    only: str | None = None

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"table row {i} has {len(row)} cells for {len(self.columns)} columns")

    @staticmethod
    def of(columns: Sequence[Column | str], rows: Iterable[Sequence[CellLike]], **kw) -> Table:
        """A table from column names (or Columns) and rows of plain values or cells."""
        cols = tuple(c if isinstance(c, Column) else Column(c) for c in columns)
        return Table(cols, tuple(tuple(as_cell(v) for v in row) for row in rows), **kw)

    @staticmethod
    def from_frame(df: Any, columns: Sequence[Column | str] | None = None, **kw: Any) -> Table:
        """A table from a pandas DataFrame, a column per frame column, in order: `columns` names them (and says
        which are numeric) where given, else the frame's own names, a two-level column index becoming
        (group, name) and numeric dtypes numeric. Cells are `as_cell` of the values, a missing value
        (None, NaN, NA) an empty cell."""
        import pandas as pd

        if columns is None:
            cols: list[Column] = []
            for i, name in enumerate(df.columns):
                numeric = pd.api.types.is_numeric_dtype(df.dtypes.iloc[i]) and not pd.api.types.is_bool_dtype(
                    df.dtypes.iloc[i]
                )
                group, head = (str(name[0]), str(name[1])) if isinstance(name, tuple) else ("", str(name))
                cols.append(Column(head, numeric=numeric, group=group))
        else:
            cols = [c if isinstance(c, Column) else Column(c) for c in columns]
            if len(cols) != df.shape[1]:
                raise ValueError(f"{len(cols)} column names for a frame of {df.shape[1]} columns")

        def value(v: Any) -> CellLike:
            return None if not isinstance(v, Cell | Span | str) and pd.api.types.is_scalar(v) and pd.isna(v) else v

        rows = (tuple(as_cell(value(v)) for v in row) for row in df.itertuples(index=False, name=None))
        return Table(tuple(cols), tuple(rows), **kw)

    def is_numeric(self, col: int, c: Cell) -> bool:
        return self.columns[col].numeric if c.numeric is None else c.numeric


@dataclass(frozen=True)
class Paragraph:
    content: Rich
    style: str = ""  # "legend": a key to the verdict colours
    only: str | None = None


@dataclass(frozen=True)
class Fields:
    """Labelled facts (the run summary)."""

    items: tuple[tuple[str, str], ...]
    only: str | None = None


@dataclass(frozen=True)
class Figure:
    """A plot: PNG bytes, and where the same file lies in the run directory."""

    caption: str
    png: bytes
    path: str
    only: str | None = None


Block = Paragraph | Table | Fields | Figure


@dataclass(frozen=True)
class Section:
    """A titled part of the report (an empty title: untitled); `anchor` is its link target where the medium
    has links."""

    title: Rich
    blocks: tuple[Block, ...]
    anchor: str = ""
    only: str | None = None


@dataclass(frozen=True)
class Report:
    """The whole report: its heading, a short name (a browser tab's), links to its main sections as
    (label, anchor), and the sections in order."""

    title: Rich
    name: str
    nav: tuple[tuple[str, str], ...]
    sections: tuple[Section, ...]

    def for_medium(self, medium: str) -> tuple[Section, ...]:
        """The sections, and in each the blocks, that `medium` shows."""
        return tuple(
            replace(s, blocks=tuple(b for b in s.blocks if b.only in (None, medium)))
            for s in self.sections
            if s.only in (None, medium)
        )

    def shared_tables(self) -> list[Table]:
        """The tables both media show: the same objects in report.md and report.html."""
        return [b for s in self.sections if s.only is None for b in s.blocks if isinstance(b, Table) and b.only is None]
