"""A run directory: run.json + results.jsonl, locked against two writers, resumable after any kill."""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from harness.core.errors import ConvtxError
from harness.core.records import SCHEMA, Record, read_results


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.meta_path = self.path / "run.json"
        self.results_path = self.path / "results.jsonl"
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """Exclusive for this process's lifetime (the kernel drops it when the process dies, even by kill -9)."""
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConvtxError(f"{self.path}: in use by another convtx process (pid {holder}); "
                              f"wait for it or choose another run directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def read_meta(self) -> dict:
        if not self.meta_path.exists():
            raise ConvtxError(f"{self.path}: no run.json (not a convtx run directory)")
        try:
            meta = json.loads(self.meta_path.read_text())
        except json.JSONDecodeError as e:
            raise ConvtxError(f"{self.meta_path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(meta, dict) or "plan" not in meta or "config" not in meta:
            raise ConvtxError(f"{self.meta_path}: not a convtx run.json (no plan or config)")
        if meta.get("schema", 0) > SCHEMA:
            raise ConvtxError(f"{self.meta_path}: schema {meta['schema']} is newer than this convtx "
                              f"understands ({SCHEMA}); upgrade convtx")
        return meta

    def repair_and_read(self) -> list[Record]:
        """Records written so far. A torn last line (a writer killed mid-line) is cut off first, so that
        appending after it cannot glue a new record to a fragment."""
        if not self.results_path.exists():
            return []
        data = self.results_path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.results_path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
        return read_results(self.results_path)
