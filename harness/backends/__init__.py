"""The backend registry: one explicit line per backend id."""
from __future__ import annotations

from harness.backends.base import Availability, Backend, Compiled, ModelArtifact
from harness.backends.openvino import OpenVinoCpu
from harness.backends.ort import OrtCpu
from harness.backends.torch_eager import TorchCpu
from harness.backends.tvm import TvmLlvm, TvmLlvmTuned
from harness.errors import UnknownNameError

BACKENDS: dict[str, Backend] = {
    "ort-cpu": OrtCpu(),
    "tvm-llvm": TvmLlvm(),
    "tvm-llvm-tuned": TvmLlvmTuned(),
    "openvino-cpu": OpenVinoCpu(),
    "torch-cpu": TorchCpu(),
}


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UnknownNameError("backend", name, list(BACKENDS)) from None


__all__ = ["Availability", "Backend", "Compiled", "ModelArtifact", "BACKENDS", "get_backend"]
