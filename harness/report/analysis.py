"""What the Markdown and HTML reports share: grouping records, the best verified case, speed-ups, % of peak.

Pure functions of (run.json, records)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.records import Record


def model_label(r: Record) -> str:
    return f"{r.model}@{r.size}" if r.size else r.model


def no_convtranspose(r: Record) -> bool:
    return (r.details.get("lowering") or {}).get("convtranspose_nodes") == 0


@dataclass(frozen=True)
class RunView:
    """The records of one run arranged for tables: the axes in first-seen order and a lookup."""

    records: tuple[Record, ...]
    models: tuple[tuple[str, int], ...]  # (model label, batch)
    lowerings: tuple[str, ...]
    backends: tuple[str, ...]
    by: dict  # (label, batch, lowering, backend) -> Record
    peak_gflops: float | None
    mem_gbs: float | None

    @staticmethod
    def of(meta: dict, records: list[Record]) -> RunView:
        cal = meta.get("calibration") or {}
        return RunView(
            records=tuple(records),
            models=tuple(dict.fromkeys((model_label(r), r.batch) for r in records)),
            lowerings=tuple(dict.fromkeys(r.lowering for r in records)),
            backends=tuple(dict.fromkeys(r.backend for r in records)),
            by={(model_label(r), r.batch, r.lowering, r.backend): r for r in records},
            peak_gflops=cal.get("fp32_peak_gflops"),
            mem_gbs=cal.get("mem_bandwidth_gbs"),
        )

    def get(self, model: str, batch: int, lowering: str, backend: str) -> Record | None:
        return self.by.get((model, batch, lowering, backend))

    def of_model(self, model: str, batch: int) -> list[Record]:
        return [r for r in self.records if (model_label(r), r.batch) == (model, batch)]

    def best_verified(self, model: str, batch: int, backend: str | None = None) -> Record | None:
        """The fastest case of the model (on `backend`, or on any) that passed the numerical check."""
        cand = [
            r
            for r in self.of_model(model, batch)
            if r.status == "ok" and r.latency_ms is not None and (backend is None or r.backend == backend)
        ]
        return min(cand, key=lambda r: (r.median_ms, r.case_id)) if cand else None

    def baseline_ms(self, model: str, batch: int) -> float | None:
        r = self.get(model, batch, "native", "ort-cpu")
        return r.median_ms if r else None

    def speedup(self, r: Record) -> float | None:
        """How many times faster than the same model's ort-cpu native case (> 1: faster)."""
        base = self.baseline_ms(model_label(r), r.batch)
        return base / r.median_ms if base and r.median_ms is not None else None

    def pct_peak(self, r: Record) -> float | None:
        return 100.0 * r.gflops / self.peak_gflops if r.gflops and self.peak_gflops else None

    def best_per_backend(self, model: str, batch: int) -> list[BestCell]:
        """One cell per backend for the "best verified configuration" tables of both reports."""
        overall = self.best_verified(model, batch)
        cells = []
        for b in self.backends:
            r = self.best_verified(model, batch, b)
            if r is None:
                states = tuple(sorted({x.status for x in self.of_model(model, batch) if x.backend == b}))
                cells.append(BestCell(b, None, states, None, None, False))
            else:
                cells.append(BestCell(b, r, (), self.speedup(r), r.median_ms / overall.median_ms, r is overall))
        return cells


@dataclass(frozen=True)
class BestCell:
    backend: str
    record: Record | None  # the engine's fastest verified case, None when none passed
    states: tuple[str, ...]  # when None: the statuses the engine's cases had
    speedup: float | None  # vs the model's ort-cpu native case
    gap: float | None  # latency / the best over all engines
    is_overall: bool
