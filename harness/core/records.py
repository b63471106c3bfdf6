"""The result record (one JSON object per line in results.jsonl) and run.json, as DESIGN.md specifies."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.core.errors import ConvtxError

SCHEMA = 1
STATUSES = ("ok", "mismatch", "error", "skipped")


@dataclass(frozen=True)
class Record:
    """One case's result. `numerics` and `latency_ms` are None when not measured (skipped, error,
    validate-only). Fields beyond DESIGN.md's (size, threads, compile/run details) are additions."""

    run_id: str
    case_id: str
    model: str
    lowering: str
    backend: str
    batch: int
    input_shapes: dict[str, list[int]]
    dtype: str
    status: str
    reason: str = ""
    numerics: dict | None = None
    latency_ms: dict | None = None
    compile_s: float | None = None
    flops: int | None = None
    gflops: float | None = None
    flops_performed: int | None = None   # FLOPs the lowered graph performs (flops: the useful ones)
    size: int | None = None          # zoo models: the spatial size it was built at
    min_bytes: int | None = None     # compulsory memory traffic (inputs + weights + outputs): roofline x-axis
    threads: int | None = None
    counts: dict | None = None       # bench --counts: callgrind's counts per call (harness/counting.py)
    details: dict = field(default_factory=dict)  # engine-specific: target, providers, exporter, ...
    schema: int = SCHEMA

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} not in {STATUSES}")

    def to_json(self) -> dict:
        return _finite(asdict(self))

    @staticmethod
    def from_json(d: dict) -> "Record":
        if d.get("schema", 0) > SCHEMA:
            raise ConvtxError(f"record {d.get('case_id')!r} has schema {d['schema']}, newer than this "
                              f"convtx understands ({SCHEMA}); upgrade convtx")
        known = Record.__dataclass_fields__
        return Record(**{k: v for k, v in d.items() if k in known})


def _finite(obj):
    """JSON has no Inf/NaN: write them as strings ("inf", "nan") so every reader can parse the line."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def fmt_metric(v, spec: str = ".2e") -> str:
    """A metric read from a record: a float, a non-finite one (written as "inf"/"nan"), or absent."""
    if v is None:
        return "–"
    return v if isinstance(v, str) else format(v, spec)


def case_id(model: str, lowering: str, backend: str, batch: int) -> str:
    return f"{model}/{lowering}/{backend}/b{batch}"


class ResultsWriter:
    """Appends records durably: each line is flushed and fsync'ed before the next case starts."""

    def __init__(self, path: Path):
        self.path = path
        self._f = open(path, "a", encoding="utf-8")

    def append(self, rec: Record) -> None:
        self._f.write(json.dumps(rec.to_json(), sort_keys=True) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_results(path: Path) -> list[Record]:
    """All complete records; a torn last line (a killed writer) is ignored."""
    if not path.exists():
        raise ConvtxError(f"{path}: no such file (expected a run directory with results.jsonl)")
    records = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            if no >= len(lines) - 1:   # the last line, cut short by a kill
                continue
            raise ConvtxError(f"{path}:{no}: not a JSON record") from None
        records.append(Record.from_json(d))
    return records


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite(obj), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
