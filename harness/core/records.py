"""The result record — one JSON object per line of results.jsonl — and its parts, as frozen, typed dataclasses.

Every part has one `to_json()` (a plain dict, the file format of docs/design.md) and one `from_json(d)`;
nothing else in the harness builds or parses a record's JSON. `schema` is written on every line: a reader
refuses a newer schema and reads every older one (schema 0 = written before the field existed).

JSON has no Inf/NaN: non-finite floats are written as the strings "inf", "-inf", "nan" (so every line is
strict JSON) and read back as floats.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.core.errors import ConvtxError

SCHEMA = 1
STATUSES = ("ok", "mismatch", "error", "skipped")


def finite_json(obj):
    """`obj` with non-finite floats as the strings "inf"/"-inf"/"nan" (strict JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def _num(v: Any) -> float | None:
    """An optional float field read back: None, a number, or a non-finite float written as a string. A number
    stays as JSON gave it (an int stays an int), so that writing the record back gives the same line."""
    if v is None:
        return None
    return _req(v)


def _count(v: Any, what: str) -> int:
    """An integer field of a record read from a file (a `<script>` here once reached report.html raw)."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{what} must be an integer, not {type(v).__name__} {str(v)[:40]!r}")
    return v


def _req(v: Any) -> float:
    """A float field that a record must have: a number, or a non-finite float written as a string."""
    if isinstance(v, str):
        return float(v)  # "inf", "-inf", "nan"
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise TypeError(f"expected a number, got {v!r}")
    return v


def _known(cls, d: Mapping[str, Any]) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass(frozen=True)
class OutputNumerics:
    """One output of a case against its float64 reference."""

    index: int
    passed: bool
    shape: tuple[int, ...]
    ref_shape: tuple[int, ...]
    max_abs: float | None
    rel_l2: float | None
    mismatches: int
    worst_index: tuple[int, ...] | None
    nonfinite: int

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "passed": self.passed,
            "shape": list(self.shape),
            "ref_shape": list(self.ref_shape),
            "max_abs": self.max_abs,
            "rel_l2": self.rel_l2,
            "mismatches": self.mismatches,
            "worst_index": list(self.worst_index) if self.worst_index is not None else None,
            "nonfinite": self.nonfinite,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> OutputNumerics:
        return OutputNumerics(
            index=d["index"],
            passed=d["passed"],
            shape=tuple(d["shape"]),
            ref_shape=tuple(d["ref_shape"]),
            max_abs=_num(d.get("max_abs")),
            rel_l2=_num(d.get("rel_l2")),
            mismatches=d.get("mismatches", 0),
            worst_index=tuple(d["worst_index"]) if d.get("worst_index") is not None else None,
            nonfinite=d.get("nonfinite", 0),
        )


@dataclass(frozen=True)
class Numerics:
    """A case's outputs against the float64 reference under a tolerance policy (harness/checking/numerics.py).
    Whole-case metrics are the worst over the outputs."""

    max_abs: float | None
    max_rel: float | None
    rel_l2: float | None
    atol: float
    rtol: float
    rel_l2_tol: float
    policy: str
    passed: bool
    outputs: tuple[OutputNumerics, ...] = ()

    def to_json(self) -> dict:
        return {
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "rel_l2": self.rel_l2,
            "atol": self.atol,
            "rtol": self.rtol,
            "rel_l2_tol": self.rel_l2_tol,
            "policy": self.policy,
            "passed": self.passed,
            "outputs": [o.to_json() for o in self.outputs],
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Numerics:
        return Numerics(
            max_abs=_num(d.get("max_abs")),
            max_rel=_num(d.get("max_rel")),
            rel_l2=_num(d.get("rel_l2")),
            atol=_req(d["atol"]),
            rtol=_req(d["rtol"]),
            rel_l2_tol=_req(d["rel_l2_tol"]),
            policy=d.get("policy", "float32"),
            passed=d["passed"],
            outputs=tuple(OutputNumerics.from_json(o) for o in d.get("outputs") or ()),
        )


@dataclass(frozen=True)
class ReferenceTiming:
    """The fixed reference kernel timed between a case's calls (harness/measure/timing.py), in ms."""

    kernel: str
    median: float
    n: int
    samples: tuple[float, ...]

    def to_json(self) -> dict:
        return {"kernel": self.kernel, "median": self.median, "n": self.n, "samples": list(self.samples)}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> ReferenceTiming:
        return ReferenceTiming(
            kernel=d["kernel"],
            median=_req(d["median"]),
            n=d["n"],
            samples=tuple(_req(s) for s in d.get("samples") or ()),
        )


@dataclass(frozen=True)
class Latency:
    """Per-inference wall-clock statistics of a timed case, all in milliseconds, with the raw samples."""

    samples: tuple[float, ...]
    median: float
    mean: float
    stdev: float
    min: float
    p10: float
    p90: float
    p99: float
    iqr: float
    n: int
    reference: ReferenceTiming | None = None  # none on a remote device (the kernel would run here)
    ratio_to_reference: float | None = None  # median / reference.median: the machine-independent form
    ci95: tuple[float, float] | None = None  # distribution-free 95% confidence interval of the median (ms)
    stop: Mapping[str, Any] | None = None  # the stopping rule and what ended it: rule, by, ci95_rel, target_rel

    def to_json(self) -> dict:
        d = {
            "samples": list(self.samples),
            "median": self.median,
            "mean": self.mean,
            "stdev": self.stdev,
            "min": self.min,
            "p10": self.p10,
            "p90": self.p90,
            "p99": self.p99,
            "iqr": self.iqr,
            "n": self.n,
            "reference": self.reference.to_json() if self.reference else None,
            "ratio_to_reference": self.ratio_to_reference,
        }
        if self.ci95 is not None:  # written by the runs that know it (older records read back unchanged)
            d["ci95"] = list(self.ci95)
        if self.stop is not None:
            d["stop"] = dict(self.stop)
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Latency:
        return Latency(
            samples=tuple(_req(s) for s in d.get("samples") or ()),
            median=_req(d["median"]),
            mean=_req(d["mean"]),
            stdev=_req(d["stdev"]),
            min=_req(d["min"]),
            p10=_req(d["p10"]),
            p90=_req(d["p90"]),
            p99=_req(d["p99"]),
            iqr=_req(d["iqr"]),
            n=_count(d.get("n", len(d.get("samples") or ())), "latency_ms.n"),
            reference=ReferenceTiming.from_json(d["reference"]) if d.get("reference") else None,
            ratio_to_reference=_num(d.get("ratio_to_reference")),
            ci95=(_req(d["ci95"][0]), _req(d["ci95"][1])) if d.get("ci95") else None,
            stop=dict(d["stop"]) if isinstance(d.get("stop"), Mapping) else None,
        )


@dataclass(frozen=True)
class Counts:
    """`bench --counts`: a case's calls counted under valgrind's callgrind (harness/measure/counting.py).
    `samples` are the metric per counted call (estimated cycles), `ir` the instructions per call."""

    tool: str
    metric: str
    samples: tuple[float, ...]
    median: float
    ir: tuple[int, ...]
    events_median: Mapping[str, float]
    calls: int
    warmup: int
    injected: Mapping[str, Any] | None = None

    def to_json(self) -> dict:
        return {
            "tool": self.tool,
            "metric": self.metric,
            "samples": list(self.samples),
            "median": self.median,
            "ir": list(self.ir),
            "events_median": dict(self.events_median),
            "calls": self.calls,
            "warmup": self.warmup,
            "injected": dict(self.injected) if self.injected is not None else None,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Counts:
        return Counts(
            tool=d["tool"],
            metric=d["metric"],
            samples=tuple(_req(s) for s in d["samples"]),
            median=_req(d["median"]),
            ir=tuple(d.get("ir") or ()),
            events_median=dict(d.get("events_median") or {}),
            calls=d.get("calls", len(d["samples"])),
            warmup=d.get("warmup", 0),
            injected=d.get("injected"),
        )


@dataclass(frozen=True, kw_only=True)
class _CaseFields:
    """The fields that identify a case and that every record of it carries, whatever its outcome."""

    run_id: str
    case_id: str
    model: str
    lowering: str
    backend: str
    batch: int
    input_shapes: Mapping[str, tuple[int, ...]]
    dtype: str = "float32"
    size: int | None = None  # zoo models: the spatial size it was built at
    threads: int | None = None
    flops: int | None = None  # useful FLOPs: products that land in the output, the same for every lowering
    min_bytes: int | None = None  # compulsory memory traffic (inputs + weights + outputs): roofline x-axis


@dataclass(frozen=True, kw_only=True)
class CaseKey(_CaseFields):
    """A case's identity, built once per case (`harness.pipeline.case.case_key`) and spread into each Record
    made for it."""

    def record(self, status: str, reason: str = "", **parts) -> Record:
        """A Record of this case with the given outcome (the other fields of Record as keywords)."""
        base = {f.name: getattr(self, f.name) for f in fields(_CaseFields)}
        base.update(parts)
        return Record(status=status, reason=reason, **base)


@dataclass(frozen=True, kw_only=True)
class Record(_CaseFields):
    """One case's result: its identity (the fields of CaseKey) and its outcome. `numerics` and `latency_ms`
    are None when not measured (skipped, error, validate-only, counted). `details` holds the engine's and the
    pipeline's facts (docs/design.md lists the keys the harness writes; engines add their own)."""

    status: str
    reason: str = ""
    numerics: Numerics | None = None
    latency_ms: Latency | None = None
    compile_s: float | None = None
    gflops: float | None = None
    flops_performed: int | None = None  # FLOPs the lowered graph performs (flops: the useful ones)
    counts: Counts | None = None  # bench --counts: callgrind's counts per call
    details: Mapping[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} not in {STATUSES}")

    @property
    def passed(self) -> bool:
        """The numerical check ran and passed."""
        return self.numerics is not None and self.numerics.passed

    @property
    def median_ms(self) -> float | None:
        return self.latency_ms.median if self.latency_ms is not None else None

    def with_details(self, **extra) -> Record:
        return replace(self, details={**self.details, **extra})

    def to_json(self) -> dict:
        return finite_json(
            {
                "run_id": self.run_id,
                "case_id": self.case_id,
                "model": self.model,
                "lowering": self.lowering,
                "backend": self.backend,
                "batch": self.batch,
                "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
                "dtype": self.dtype,
                "status": self.status,
                "reason": self.reason,
                "numerics": self.numerics.to_json() if self.numerics is not None else None,
                "latency_ms": self.latency_ms.to_json() if self.latency_ms is not None else None,
                "compile_s": self.compile_s,
                "flops": self.flops,
                "gflops": self.gflops,
                "flops_performed": self.flops_performed,
                "size": self.size,
                "min_bytes": self.min_bytes,
                "threads": self.threads,
                "counts": self.counts.to_json() if self.counts is not None else None,
                "details": _plain(self.details),
                "schema": self.schema,
            }
        )

    def to_line(self) -> str:
        """The record as one line of results.jsonl (sorted keys, no newline)."""
        return json.dumps(self.to_json(), sort_keys=True)

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Record:
        schema = d.get("schema", 0)
        if schema > SCHEMA:
            raise ConvtxError(
                f"record {d.get('case_id')!r} has schema {schema}, newer than this "
                f"convtx understands ({SCHEMA}); upgrade convtx"
            )
        kw = _known(Record, d)
        _check_types(kw)
        kw["input_shapes"] = {k: tuple(v) for k, v in (d.get("input_shapes") or {}).items()}
        kw["numerics"] = Numerics.from_json(d["numerics"]) if d.get("numerics") else None
        kw["latency_ms"] = Latency.from_json(d["latency_ms"]) if d.get("latency_ms") else None
        kw["counts"] = Counts.from_json(d["counts"]) if d.get("counts") else None
        for k in ("compile_s", "gflops"):
            kw[k] = _num(d.get(k))
        kw["details"] = dict(d.get("details") or {})
        kw["schema"] = schema
        return Record(**kw)


_STR_FIELDS = ("run_id", "case_id", "model", "lowering", "backend", "dtype", "status", "reason")
_INT_FIELDS = ("batch", "size", "threads", "flops", "min_bytes", "flops_performed", "schema")
_REQUIRED = ("run_id", "case_id", "model", "lowering", "backend", "batch", "status")


def _check_types(kw: dict) -> None:
    """A record read from a file (possibly someone else's): identity fields have their types, so that no
    string reaches a place that expects a number (a `batch` of `<script>` once reached report.html raw)."""
    for k in _REQUIRED:
        if kw.get(k) is None:
            raise ValueError(f"{k} is missing")
    for k in _STR_FIELDS:
        if k in kw and kw[k] is not None and not isinstance(kw[k], str):
            raise ValueError(f"{k} must be a string, not {type(kw[k]).__name__}")
    for k in _INT_FIELDS:
        v = kw.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise ValueError(f"{k} must be an integer, not {type(v).__name__} {str(v)[:40]!r}")
    shapes = kw.get("input_shapes") or {}
    if not isinstance(shapes, Mapping) or not all(
        isinstance(n, str) and isinstance(v, (list, tuple)) and all(isinstance(x, int) for x in v)
        for n, v in shapes.items()
    ):
        raise ValueError("input_shapes must map input names to lists of integers")


def _plain(obj):
    """Mappings and tuples in `details` as JSON's dicts and lists."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def fmt_metric(v, spec: str = ".2e") -> str:
    """A metric read from a record: a float (finite or not), a non-finite one written as a string, or absent."""
    if v is None:
        return "–"
    return v if isinstance(v, str) else format(v, spec)


def case_id(model: str, lowering: str, backend: str, batch: int) -> str:
    return f"{model}/{lowering}/{backend}/b{batch}"


class ResultsWriter:
    """Appends records durably: each line is flushed and fsync'ed before the next case starts."""

    def __init__(self, path: Path):
        from harness.core import safefs

        self.path = path
        self._f = safefs.open_append(path)

    def append(self, rec: Record) -> None:
        self._f.write(rec.to_line() + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def parse_results(text: str, where: str) -> list[Record]:
    """Records of a results.jsonl's text. An unterminated last line (a writer killed mid-line) is ignored; any
    other line that is not a record is a one-line error naming `where` and the line."""
    records = []
    lines = text.split("\n")
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            if no == len(lines):  # no newline after it: cut short by a kill
                continue
            raise ConvtxError(f"{where}:{no}: not a result record") from None
        if not isinstance(d, dict):
            raise ConvtxError(f"{where}:{no}: not a result record (a JSON {type(d).__name__}, not an object)")
        try:
            records.append(Record.from_json(d))
        except ConvtxError as e:
            raise ConvtxError(f"{where}:{no}: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise ConvtxError(f"{where}:{no}: not a result record ({type(e).__name__}: {e})") from None
    return records


def write_json_atomic(path: Path, obj) -> None:
    from harness.core import safefs

    safefs.write_atomic(path, json.dumps(finite_json(obj), indent=2, sort_keys=True) + "\n")
