"""The backend registry: one explicit line per backend id."""
from __future__ import annotations

from harness.backends.base import Availability, Backend, Compiled, ModelArtifact
from harness.backends.openvino import OpenVinoCpu
from harness.backends.ort import OrtCpu, OrtCuda
from harness.backends.torch_eager import TorchCpu
from harness.backends.tvm import TvmLlvm, TvmLlvmTuned
from harness.backends.tvm_cuda import TvmCuda
from harness.errors import UnknownNameError

BACKENDS: dict[str, Backend] = {
    "ort-cpu": OrtCpu(),
    "tvm-llvm": TvmLlvm(),
    "tvm-llvm-tuned": TvmLlvmTuned(),
    "openvino-cpu": OpenVinoCpu(),
    "torch-cpu": TorchCpu(),
    "tvm-cuda": TvmCuda(),
    "ort-cuda": OrtCuda(),
}


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UnknownNameError("backend", name, list(BACKENDS)) from None


__all__ = ["Availability", "Backend", "Compiled", "ModelArtifact", "BACKENDS", "get_backend"]
