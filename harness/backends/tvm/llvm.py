"""Apache TVM (Relax): ONNX -> relax.frontend.onnx.from_onnx -> relax.build -> VirtualMachine, on LLVM/CPU.

Untuned: `relax.build` legalises operators to TIR loop nests without scheduling them, so this backend is
what a user gets from TVM out of the box; tuning is a separate step (and a separate record field).
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
        from tvm import relax

        lib = cache_path(art, target_d, tvm.__version__)
        if lib is not None and cache.is_valid(lib):
            return lib, None, engine_info(target_d, "hit")
        ex = relax.build(
            relax_module(art.onnx_path, art.input_shapes, art.input_dtypes), target=tvm.target.Target(target_d)
        )
        export_cached(ex, lib)
        return lib, ex, engine_info(target_d, "miss" if lib else "off")
