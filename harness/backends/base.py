"""The backend contract: two phases, `compile` then `run`/`time`.

A public method validates, one `_impl` hook does the work. Heavy engines are imported inside the hooks.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harness.core.config import RunConfig, TimingConfig
from harness.core.records import Counts
from harness.measure.timing import measure, measure_interleaved, slowed


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.available


@dataclass(frozen=True)
class ModelArtifact:
    """What a backend compiles: an ONNX file (one lowering's variant) and, for zoo models, how to rebuild
    the PyTorch module (for the eager baseline)."""

    onnx_path: str
    input_shapes: dict[str, tuple[int, ...]]  # in graph input order
    input_dtypes: dict[str, str]
    zoo_model: str | None = None  # registry name
    zoo_size: int | None = None
    seed: int = 0
    cache_dir: str | None = None  # where compiled artefacts may be cached (content-addressed)


class BackendUnavailable(RuntimeError):
    """Raised by compile() when the backend cannot run here; the case becomes `skipped`."""


class BuiltNotRun(BackendUnavailable):
    """The case was compiled (its facts in `info`) but there is no device to run it on here."""

    def __init__(self, reason: str, info: dict):
        super().__init__(f"built, not run: {reason}")
        self.info = info


class MeasureLater(Exception):
    """A compile that must measure something on this machine (harness/backends/tvm/defaults.py: a kernel with no
    kept default-schedule decision) while it runs beside other compiles (RunConfig.defer_measurement), whose
    timings would be disturbed: the sweep compiles the case again, alone, when the machine is quiet."""


class UnsupportedModel(RuntimeError):
    """The engine cannot take this model (e.g. an op it has no converter for); the case is `skipped`."""


@dataclass(frozen=True)
class LayerTime:
    """One layer of an engine's profile: the model's node it maps to (its ONNX name; for TVM, by the order of
    the ops of its kind: docs/design.md), the op, and the mean time per inference."""

    node: str
    op: str
    ms: float
    engine_name: str  # the engine's own name of the layer or kernel


def profile_summary(layers: list[LayerTime], top: int = 12) -> dict:
    """The record's `details.profile`: total, and the `top` layers by time with their share (layers that map to
    the same node are summed)."""
    merged: dict[tuple[str, str], list] = {}
    for lt in layers:
        m = merged.setdefault((lt.node, lt.op), [0.0, []])
        m[0] += lt.ms
        if lt.engine_name not in m[1]:
            m[1].append(lt.engine_name)
    total = sum(v[0] for v in merged.values())
    rows = sorted(merged.items(), key=lambda kv: -kv[1][0])
    return {
        "total_ms": round(total, 4),
        "layers": len(merged),
        "top": [
            {
                "node": node,
                "op": op,
                "ms": round(ms, 4),
                "share": round(ms / total, 4) if total else None,
                "engine": ", ".join(names[:3]),
            }
            for (node, op), (ms, names) in rows[:top]
        ],
    }


@dataclass
class Compiled:
    """A compiled model. `info` carries engine details recorded with each result (target, threads...)."""

    input_names: tuple[str, ...]
    info: dict = field(default_factory=dict)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs as numpy arrays, in graph output order."""
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise ValueError(f"missing inputs {missing}; the model takes {list(self.input_names)}")
        return self._run_impl(feeds)

    def time(self, feeds: dict[str, np.ndarray], cfg: TimingConfig) -> list[float]:
        """Raw per-call latencies in ms. Input conversion to the engine's tensors is done once,
        outside the timed region; each timed call blocks until its outputs are ready."""
        return measure(self._prepare(feeds), cfg)

    def time_interleaved(
        self,
        feeds: dict[str, np.ndarray],
        cfg: TimingConfig,
        reference: Callable[[], object],
        slowdown_pct: float = 0.0,
    ) -> tuple[list[float], list[float], dict]:
        """`time` with a reference kernel timed between the calls (timing.measure_interleaved): (case samples,
        reference samples, injection facts). `slowdown_pct` > 0 is the gate's power measurement only: each
        call then also busy-waits, calibrated to make it that much slower (timing.slowed)."""
        fn = self._prepare(feeds)
        injected = {}
        if slowdown_pct:
            fn = slowed(fn, slowdown_pct)
            injected = {"extra_ms_per_call": fn.extra_ns / 1e6, "calibrated_pct": fn.measured_pct}
        samples, ref = measure_interleaved(fn, cfg, reference)
        return samples, ref, injected

    def count(self, feeds: dict[str, np.ndarray], build_dir, slowdown_pct: float = 0.0) -> Counts:
        """bench --counts, in a worker under callgrind: the record's `counts` (harness/measure/counting.py)."""
        from harness.measure.counting import count_case

        return count_case(self._prepare(feeds), build_dir, slowdown_pct)

    def profile(self, feeds: dict[str, np.ndarray], runs: int = 10) -> list[LayerTime]:
        """Per layer, its time per inference over `runs` inferences after one warm-up, from the engine's own
        profiler (ONNX Runtime's profiling, OpenVINO's performance counters, TVM's Relax VM profiler), each
        mapped to the model's node where the engine says which (`profile_summary` makes the record's form)."""
        raise NotImplementedError(f"{type(self).__name__} has no per-layer profiler")

    def close(self) -> None:
        """Release what the compiled model holds beyond memory (a remote session); called when the case ends."""

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def _prepare(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        raise NotImplementedError


class Backend:
    """One engine on one target. Subclasses set the class attributes and implement the hooks."""

    id: str = ""
    engine: str = ""
    device: str = "cpu"
    requires: tuple[str, ...] = ()  # importable modules needed
    zoo_only: bool = False
    # part of the default set for arbitrary ONNX files (validate, conformance, fuzz); a tuned configuration
    # whose database only covers tuned workloads is not
    file_default: bool = True
    # runs on a remote device through TVM's RPC tracker (bench/validate --rpc-tracker; harness/backends/tvm/remote.py)
    remote_capable: bool = False
    # bench --counts: compile in a native worker first (the build is cached), so the worker under valgrind
    # only loads it — compiling under valgrind would take many minutes (TVM)
    compile_before_counting: bool = False
    # its compile is expensive and cached by content: a sweep builds its cases first, in parallel across the
    # cores, and times them afterwards one at a time (harness/pipeline/ahead.py)
    compiles_ahead: bool = False
    # graph rewrites (harness/lowerings, by name) the engine needs before it can take a model: applied by the
    # case after the lowering, recorded in the record's details and checked like any lowering
    needs_rewrites: tuple[str, ...] = ()
    # how the lowerings should emit for this engine (harness/lowerings/common.py LOWERING_OPTIONS), where an op the
    # default form uses is wrong on it: part of the lowered model's cache key and of the record's details.lowering
    lowering_options: dict[str, str] = {}

    def availability(self) -> Availability:
        """Cheap: no heavy import. Says why not when the backend cannot run here."""
        for mod in self.requires:
            if importlib.util.find_spec(mod) is None:
                return Availability(False, f"python package {mod!r} is not installed")
        return self._availability_impl()

    def _availability_impl(self) -> Availability:
        return Availability(True)

    def load(self) -> None:
        """Import the engine, so that its import time is not counted as compile time."""
        for mod in self.requires:
            importlib.import_module(mod)

    def worker_env(self, cfg: RunConfig) -> dict[str, str]:
        """Environment the worker process needs before the engine is imported (thread pools)."""
        return {}

    def compile(self, art: ModelArtifact, cfg: RunConfig) -> Compiled:
        """Compile for this machine (a remote run goes through `harness.backends.compile_case`)."""
        self.check(art, cfg)
        if cfg.rpc_tracker:
            raise BackendUnavailable(f"{self.id}: a remote run is compiled by harness.backends.compile_case")
        return self._compile_impl(art, cfg)

    def check(self, art: ModelArtifact, cfg: RunConfig) -> None:
        """Raise BackendUnavailable / UnsupportedModel when this case cannot be compiled here (or remotely)."""
        avail = self.availability()
        if not avail:
            raise BackendUnavailable(avail.reason)
        if cfg.rpc_tracker and not self.remote_capable:
            raise BackendUnavailable(
                f"{self.id} runs on this machine only: a remote run (--rpc-tracker) covers the "
                f"TVM backends, which have TVM's RPC runtime on the device"
            )
        if cfg.counter and self.device != "cpu":
            raise BackendUnavailable(
                f"{self.id} runs on a GPU: callgrind (bench --counts) counts CPU work only; "
                f"time it (bench without --counts)"
            )
        if self.zoo_only and art.zoo_model is None:
            raise UnsupportedModel(f"{self.id} runs zoo models only (it needs the PyTorch module)")

    def _compile_impl(self, art: ModelArtifact, cfg: RunConfig) -> Compiled:
        raise NotImplementedError
