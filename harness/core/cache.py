"""Content-addressed cache entries that a kill can never leave half-trusted.

An entry is `path` plus `path.sha256` holding the digest of its bytes. It is written to a temporary file,
renamed into place, and only then is the digest file written (also by rename). A reader trusts an entry
only when both exist and the digest matches: a kill at any moment, or a corrupted file, means a rebuild.
A cache may be restored from someone else's (CI): temporary files are created fresh (never a guessable name
a link could be planted under) and a link where an entry goes is refused (harness/core/safefs.py).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from harness.core import safefs


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def tmp_path(path: Path) -> Path:
    """A fresh, private temporary file beside `path` (same filesystem, so the rename is atomic)."""
    return safefs.private_tmp(Path(path))


def commit(tmp: Path, path: Path) -> Path:
    """Move a fully written `tmp` into place as `path` and record its digest."""
    digest = _digest(tmp)
    safefs.replace(tmp, path)
    safefs.write_atomic(_sidecar(path), digest + "\n")
    return path


def is_valid(path: Path) -> bool:
    """True when `path` was committed and its bytes still match; a bad entry is removed."""
    side = _sidecar(path)
    if not path.exists() or not side.exists():
        return False
    if path.is_symlink() or side.is_symlink():  # not an entry convtx committed (commit refuses links)
        invalidate(path)
        return False
    if side.read_text().strip() == _digest(path):
        return True
    invalidate(path)
    return False


def invalidate(path: Path) -> None:
    for p in (path, _sidecar(path)):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


@functools.cache
def source_digest(paths: tuple[Path, ...]) -> str:
    """The digest of the source files of the code that builds a cached artefact (read once per process):
    part of the artefact's key, so a change to how it is built never reuses an entry built the old way."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode() + b"\0" + Path(p).read_bytes() + b"\0")
    return h.hexdigest()[:16]
