"""Apache TVM (Relax): ONNX -> relax.frontend.onnx.from_onnx -> relax.build -> VirtualMachine, on LLVM/CPU.

Untuned, but not unscheduled: Relax's CPU pipeline legalises operators to TIR loop nests and schedules none of
them (serial, scalar code), so every kernel gets the default CPU schedule (harness/backends/tvm/schedule.py)
where it is measured faster and checked right on this machine (harness/backends/tvm/defaults.py); the rest
keep their loop nests. This is what `tvm-llvm` means on a machine without a tuning database; the MetaSchedule
database is `tvm-llvm-tuned` (harness/backends/tvm/tuning.py).
The runtime's thread pool size is fixed at import time from TVM_NUM_THREADS, which the sweep sets in the
worker's environment from the run's configuration (TVM's default is half the logical CPUs).
"""

from __future__ import annotations

from harness.backends.base import ModelArtifact
from harness.backends.tvm.common import TvmBackend, cache_path, engine_info, export_cached, relax_module
from harness.core import cache
from harness.core.config import RunConfig


class TvmLlvm(TvmBackend):
    id = "tvm-llvm"

    def _build(self, art: ModelArtifact, cfg: RunConfig, target_d: dict):
        """The library is cached in build/compiled, keyed by model, shapes, target and TVM version."""
        import tvm

        from harness.backends.tvm import defaults

        lib = cache_path(art, target_d, tvm.__version__)
        if lib is not None and cache.is_valid(lib):
            return lib, None, {**engine_info(target_d, "hit"), **defaults.cached_summary(lib)}
        mod = relax_module(art.onnx_path, art.input_shapes, art.input_dtypes)
        ex, summary = defaults.build(mod, target_d, defaults.decisions_path(art, target_d), defer=cfg.defer_measurement)
        export_cached(ex, lib)
        defaults.keep_summary(lib, summary)
        return lib, ex, {**engine_info(target_d, "miss" if lib else "off"), **defaults.info(summary)}
