"""The backend registry: one explicit line per backend id."""

from __future__ import annotations

from harness.backends.base import Availability, Backend, Compiled, ModelArtifact
from harness.backends.iree import IreeCpu, IreeCpuChannelsLast, IreeCuda
from harness.backends.openvino import OpenVinoCpu
from harness.backends.ort import OrtCpu, OrtCuda
from harness.backends.torch_eager import TorchCpu
from harness.backends.tvm.cuda import TvmCuda
from harness.backends.tvm.llvm import TvmLlvm
from harness.backends.tvm.tuning import TvmLlvmTuned
from harness.core.config import RunConfig
from harness.core.errors import UnknownNameError

BACKENDS: dict[str, Backend] = {
    "ort-cpu": OrtCpu(),
    "tvm-llvm": TvmLlvm(),
    "tvm-llvm-tuned": TvmLlvmTuned(),
    "openvino-cpu": OpenVinoCpu(),
    "torch-cpu": TorchCpu(),
    "iree-cpu": IreeCpu(),
    "iree-cpu-cl": IreeCpuChannelsLast(),
    "tvm-cuda": TvmCuda(),
    "ort-cuda": OrtCuda(),
    "iree-cuda": IreeCuda(),
}


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UnknownNameError("backend", name, list(BACKENDS)) from None


def compile_case(backend: Backend, art: ModelArtifact, cfg: RunConfig) -> Compiled:
    """Compile `art` where the case runs: on this machine, or (`cfg.rpc_tracker`) for a device that TVM's RPC
    tracker hands out, through harness/backends/tvm/remote.py."""
    if cfg.rpc_tracker and cfg.rpc_machine is not None:  # a remote sweep's compile-ahead: no session
        from harness.backends.tvm.remote import build_for_machine

        return build_for_machine(backend, art, cfg)
    if cfg.rpc_tracker:
        from harness.backends.tvm.remote import compile_remote

        return compile_remote(backend, art, cfg)
    return backend.compile(art, cfg)


__all__ = ["Availability", "Backend", "Compiled", "ModelArtifact", "BACKENDS", "compile_case", "get_backend"]
