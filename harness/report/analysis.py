"""What the Markdown and HTML reports share: the run's records as a pandas frame (report/frame.py) arranged for
tables — the axes in first-seen order, the best verified case per model and per model × engine (a groupby),
speed-ups and % of peak.

Pure functions of (run.json, records)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.core.records import Record
from harness.report.frame import frame_of_records

KEYS = ["label", "batch", "lowering", "backend"]


def model_label(r: Record) -> str:
    return f"{r.model}@{r.size}" if r.size else r.model


def no_convtranspose(r: Record) -> bool:
    return (r.details.get("lowering") or {}).get("convtranspose_nodes") == 0


@dataclass(frozen=True)
class RunView:
    """The records of one run arranged for tables. `frame` is the run's DataFrame (frame.COLUMNS) with the
    grid's keys as plain text/ints (`label` model@size, `batch`, `lowering`, `backend`), `case_id` and the
    typed `record` itself, one row per case, in the run's order; `best_of_model` / `best_of_backend` mark the
    fastest verified case of its model / of its model on its engine."""

    frame: Any
    models: tuple[tuple[str, int], ...]  # (model label, batch)
    lowerings: tuple[str, ...]
    backends: tuple[str, ...]
    by: dict  # (label, batch, lowering, backend) -> Record
    best: dict  # (label, batch) and (label, batch, backend) -> the fastest verified Record
    peak_gflops: float | None
    mem_gbs: float | None

    @staticmethod
    def of(meta: dict, records: list[Record]) -> RunView:
        cal = meta.get("calibration") or {}
        df = frame_of_records(meta, records)
        df["label"] = [model_label(r) for r in records]
        df["batch"] = [r.batch for r in records]
        df["lowering"] = df["lowering"].astype(object)
        df["backend"] = df["backend"].astype(object)
        df["case_id"] = [r.case_id for r in records]
        df["record"] = records
        df = df.drop_duplicates(KEYS, keep="last")
        # the fastest verified case: ties go to the smaller case id
        ok = df[(df["status"] == "ok") & df["median_ms"].notna()].sort_values(["median_ms", "case_id"], kind="stable")
        best: dict = {}
        for col, keys in (("best_of_model", ["label", "batch"]), ("best_of_backend", ["label", "batch", "backend"])):
            first = ok.groupby(keys, sort=False).head(1)
            df[col] = df.index.isin(first.index)
            for row in first.itertuples(index=False):
                best[tuple(getattr(row, k) for k in keys)] = row.record
        return RunView(
            frame=df,
            models=tuple(dict.fromkeys(zip(df["label"], df["batch"]))),
            lowerings=tuple(dict.fromkeys(df["lowering"])),
            backends=tuple(dict.fromkeys(df["backend"])),
            by=_lookup(df),
            best=best,
            peak_gflops=cal.get("fp32_peak_gflops"),
            mem_gbs=cal.get("mem_bandwidth_gbs"),
        )

    def get(self, model: str, batch: int, lowering: str, backend: str) -> Record | None:
        return self.by.get((model, batch, lowering, backend))

    def best_verified(self, model: str, batch: int, backend: str | None = None) -> Record | None:
        """The fastest case of the model (on `backend`, or on any) that passed the numerical check."""
        return self.best.get((model, batch) if backend is None else (model, batch, backend))

    def baseline_ms(self, model: str, batch: int) -> float | None:
        r = self.get(model, batch, "native", "ort-cpu")
        return r.median_ms if r else None

    def speedup(self, r: Record) -> float | None:
        """How many times faster than the same model's ort-cpu native case (> 1: faster)."""
        base = self.baseline_ms(model_label(r), r.batch)
        return base / r.median_ms if base and r.median_ms is not None else None

    def pct_peak(self, r: Record) -> float | None:
        return 100.0 * r.gflops / self.peak_gflops if r.gflops and self.peak_gflops else None

    def grid(self, values: Any, index: list[str], columns: list[str], fill: Any = None) -> Any:
        """A value per case (a Series indexed like `frame`, or like a subset of it) pivoted to index × columns
        (axes: "model" (label, batch), "lowering", "backend"), rows and columns in the run's first-seen order
        over every combination of the axes (missing: `fill`)."""
        import pandas as pd

        axes = {
            "model": self.models,
            "lowering": self.lowerings,
            "backend": self.backends,
        }

        def product(names: list[str]) -> Any:
            parts = [list(axes["model"]) if n == "model" else [(x,) for x in axes[n]] for n in names]
            tuples = [()]
            for p in parts:
                tuples = [t + x for t in tuples for x in p]
            flat = [n2 for n in names for n2 in (["label", "batch"] if n == "model" else [n])]
            if len(flat) == 1:
                return pd.Index([t[0] for t in tuples], name=flat[0], dtype=object)
            return pd.MultiIndex.from_tuples(tuples, names=flat)

        ix, cx = product(index), product(columns)
        rows = self.frame.loc[values.index]  # the cases `values` has a value for
        long = pd.DataFrame({**{k: rows[k] for k in [*ix.names, *cx.names]}, "v": values})
        wide = long.pivot(index=_names(ix), columns=_names(cx), values="v")
        wide = wide.reindex(index=ix, columns=cx)
        return wide.astype(object).where(wide.notna(), fill) if fill is not None else wide


def _names(ix: Any) -> Any:
    return ix.names[0] if ix.nlevels == 1 else list(ix.names)


def _lookup(df: Any) -> dict:
    return {
        (lb, int(bt), lw, be): r
        for lb, bt, lw, be, r in zip(df["label"], df["batch"], df["lowering"], df["backend"], df["record"])
    }
