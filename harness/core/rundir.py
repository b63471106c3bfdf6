"""A run directory: run.json + results.jsonl, locked against two writers, resumable after any kill.

A run directory may be someone else's (docs/security.md): before convtx writes into one (`lock`, which every
writer takes), a directory holding a symbolic link anywhere is refused, and the files opened in place are
opened without following links.

This is the one reader of run directories: the report, the performance gate and `bench --resume` all go
through `read_run` / `RunDir`, so a run directory means the same thing to each of them.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core import safefs
from harness.core.errors import ConvtxError
from harness.core.records import SCHEMA, Record, parse_results


@dataclass(frozen=True)
class Run:
    """A run directory as read: run.json's contents and every complete record, in file order."""

    path: Path
    meta: Mapping[str, Any]
    records: tuple[Record, ...]

    def by_case(self) -> dict[str, Record]:
        """The last record of each case id (a resumed run may hold a case once only; the last one wins)."""
        return {r.case_id: r for r in self.records}


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.meta_path = self.path / "run.json"
        self.results_path = self.path / "results.jsonl"
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """Exclusive for this process's lifetime (the kernel drops it when the process dies, even by kill -9)."""
        safefs.refuse_links_in(self.path)
        fd = safefs.open_fd(self.path / ".lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConvtxError(
                f"{self.path}: in use by another convtx process (pid {holder}); "
                f"wait for it or choose another run directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def read_meta(self) -> dict:
        """run.json, checked: valid JSON, a convtx run (plan and config), a schema this convtx reads."""
        if not self.path.is_dir():
            raise ConvtxError(f"{self.path}: not a run directory (expected reports/runs/<run-id>/)")
        if not self.meta_path.is_file():
            raise ConvtxError(f"{self.path}: no run.json (not a convtx run directory)")
        try:
            meta = json.loads(self.meta_path.read_text())
        except json.JSONDecodeError as e:
            raise ConvtxError(f"{self.meta_path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(meta, dict) or "plan" not in meta or "config" not in meta:
            raise ConvtxError(f"{self.meta_path}: not a convtx run.json (no plan or config)")
        if meta.get("schema", 0) > SCHEMA:
            raise ConvtxError(
                f"{self.meta_path}: schema {meta['schema']} is newer than this convtx "
                f"understands ({SCHEMA}); upgrade convtx"
            )
        return meta

    def read_records(self) -> list[Record]:
        """Every complete record (a torn last line, left by a killed writer, is ignored)."""
        if not self.results_path.is_file():
            raise ConvtxError(f"{self.results_path}: no such file (expected a run directory with results.jsonl)")
        return parse_results(self.results_path.read_text(encoding="utf-8"), str(self.results_path))

    def read(self) -> Run:
        return Run(self.path, self.read_meta(), tuple(self.read_records()))

    def repair_and_read(self) -> list[Record]:
        """For a writer about to append (resume): records written so far. A torn last line (a writer killed
        mid-line) is cut off first, so that appending after it cannot glue a new record to a fragment."""
        if not self.results_path.exists():
            return []
        fd = safefs.open_fd(self.results_path, os.O_RDWR)
        with os.fdopen(fd, "r+b") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
        return self.read_records()


def read_run(path: str | Path) -> Run:
    """The run directory at `path`, read and checked (one-line ConvtxError naming the file otherwise)."""
    return RunDir(Path(path)).read()


def read_results(path: Path) -> list[Record]:
    """The records of one results.jsonl file (e.g. a file outside a run directory)."""
    path = Path(path)
    if not path.is_file():
        raise ConvtxError(f"{path}: no such file (expected a run directory with results.jsonl)")
    return parse_results(path.read_text(encoding="utf-8"), str(path))
