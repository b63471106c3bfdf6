"""Exceptions that the CLI turns into one line on stderr and exit status 2."""


class ConvtxError(Exception):
    """Bad usage or bad input: the message is one line naming the value or file and what was expected."""


class UnknownNameError(ConvtxError):
    """A name that is not in a registry; the message lists the known names."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]):
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(known)}")
        self.kind, self.name, self.known = kind, name, tuple(known)


class BadModelError(ConvtxError):
    """An ONNX file that cannot be used: missing, empty, not a model, fails the checker, bad shapes."""


def first_line(e: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message` — an engine's or a library's exception as one line for a record."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:limit] if text else ''}"
