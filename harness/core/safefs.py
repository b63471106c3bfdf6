"""Writing into folders that came from someone else (a received run directory, a restored build cache).

Two rules, for every file convtx writes (docs/security.md):

- **Never through a link.** A file is written by creating a fresh temporary file in the target folder
  (`mkstemp`: exclusive creation, so a planted link cannot be followed) and renaming it over the name; a file
  that is opened in place (a lock, an append-only log or results file) is opened with `O_NOFOLLOW`. A link
  where convtx writes is refused with one line naming it, because a received folder holding one is either a
  mistake or an attack, and neither is for convtx to resolve.
- **Never under a name a file chose.** A name read from a received file (a model name in run.json, an `mcpu`
  a remote reported) becomes a path component only through `component`, which refuses separators, `..`,
  control characters and anything outside a small alphabet.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

from harness.core.errors import ConvtxError

_COMPONENT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._@+=, -]{0,198}[A-Za-z0-9._@+=,-])?")
MODE = 0o644
_UMASK = os.umask(0o022)  # read once, at import (os.umask both sets and returns), and put back
os.umask(_UMASK)


def component(name: str, what: str, where: str | Path) -> str:
    """`name` as one path component, or a one-line error naming `where` (the file it came from)."""
    if not isinstance(name, str) or not _COMPONENT.fullmatch(name) or ".." in name:
        raise ConvtxError(
            f"{where}: {what} {name!r} cannot be a file name (letters, digits, inner spaces and ._@+=,- only; "
            f"no separators, no '..')"
        )
    return name


def refuse_link(path: Path) -> Path:
    path = Path(path)
    if path.is_symlink():
        raise ConvtxError(
            f"{path}: is a symbolic link; convtx does not write through links (a received run directory or "
            f"cache may hold one: remove it and run again)"
        )
    return path


def ensure_dir(path: Path) -> Path:
    """`path` as a real folder (created with its parents where missing); a link there is refused."""
    path = Path(path)
    refuse_link(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def refuse_links_in(folder: Path, what: str = "run directory") -> None:
    """A received folder convtx is about to write into: refused, naming the first, if it holds any link."""
    folder = Path(folder)
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in sorted(dirs + files):
            p = Path(root) / name
            if p.is_symlink():
                raise ConvtxError(
                    f"{p}: is a symbolic link inside the {what} {folder}; convtx does not write into a folder "
                    f"holding links (a received run directory may carry one: remove it and run again)"
                )


def private_tmp(path: Path) -> Path:
    """A fresh, exclusively created, empty file beside `path` (same filesystem, so a rename is atomic), for
    writers that take a path (onnx.save, TVM's export_library); its name keeps `path`'s suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # a linked folder is followed: the names in it are ours
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.fchmod(fd, MODE & ~_UMASK)
    os.close(fd)
    return Path(name)


def replace(tmp: Path, path: Path) -> Path:
    """Rename `tmp` over `path` (a link at `path` is refused, not followed or replaced)."""
    refuse_link(path)
    os.replace(tmp, path)
    return Path(path)


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write `data` to `path` all at once (a reader sees the old file or the new one, never half of it)."""
    path = Path(path)
    refuse_link(path)
    tmp = private_tmp(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        return replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def open_fd(path: Path, flags: int, mode: int = MODE) -> int:
    """os.open without following a link at the last component (one-line error naming it)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            refuse_link(Path(path))
        raise


def open_append(path: Path, binary: bool = False):
    """A file opened for appending (created if missing), never through a link."""
    fd = open_fd(Path(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return os.fdopen(fd, "ab") if binary else os.fdopen(fd, "a", encoding="utf-8")
