"""Text that came from a file, made safe for the medium it is shown in — the one place that does it.

A model's node names, a run id, a reason string, a `batch` field: all of it comes from files that may have
been received from someone else (docs/security.md). Each medium has one function here and every writer of
that medium goes through it: the HTML report (`html`), Markdown (`markdown_line` for lines and table cells,
`markdown_code`) and the terminal (`terminal`, `TerminalStream` for the CLI's streams).
Plot labels are drawn with matplotlib's mathtext off (`text.parse_math`, harness/report/plots.py).
"""

from __future__ import annotations

import html as _html
import re

# C0 and C1 controls and DEL, except tab: ESC starts the ANSI sequences that move the cursor or recolour the
# terminal, CR rewrites a line; the bidirectional overrides (U+202A-E, U+2066-9) reorder what is shown
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(m: re.Match) -> str:
    c = m.group(0)
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def terminal(s: object) -> str:
    """For a terminal: every control character shown as its escape (`\\x1b`), so it cannot act."""
    return _CONTROL.sub(_visible, str(s))


def html(s: object) -> str:
    """For HTML text and attribute values."""
    return _html.escape(terminal(s), quote=True)


_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|])")  # what can end a cell, open a link/tag/code or emphasis


def markdown_line(s: object) -> str:
    """For Markdown running text and pipe-table cells: one line (a `|` or a line break cannot end a cell), Markdown's and HTML's special characters escaped (GitHub renders
    inline HTML, so `<` matters as much as `|`)."""
    return _MD_SPECIAL.sub(r"\\\1", terminal(s).replace("\t", " "))


def markdown_code(s: object) -> str:
    """For inline code in Markdown: backticks cannot close it early, a `|` cannot end a table cell."""
    t = terminal(s).replace("`", "'").replace("|", "\\|")
    return f"`{t}`"


class TerminalStream:
    """A text stream that shows control characters as escapes (line breaks stay): the CLI's stdout and
    stderr, so that no print of a node name, reason or path can drive the terminal."""

    def __init__(self, stream):
        self._s = stream

    def write(self, s: str) -> int:
        self._s.write("\n".join(terminal(part) for part in s.split("\n")))
        return len(s)

    def __getattr__(self, name):
        return getattr(self._s, name)
