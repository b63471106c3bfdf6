"""Is there a CUDA GPU here, and if not, exactly why not? Cheap: the driver API through ctypes, no engine.

The answer decides only device selection: the CUDA backends build the same way with or without a GPU, and
run (through the same code) where `probe().runnable`.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

# The architecture CUDA code is built for when there is no device to ask: A100 (compute capability 8.0),
# the oldest data-centre GPU with TF32 and the one most CI GPUs are; `--cuda-arch` changes it.
DEFAULT_ARCH = "sm_80"


@dataclass(frozen=True)
class CudaProbe:
    driver: bool
    devices: tuple[dict, ...] = field(default_factory=tuple)  # {index, name, arch}
    driver_version: int | None = None
    reason: str = ""  # why not runnable, when not

    @property
    def runnable(self) -> bool:
        return self.driver and bool(self.devices)


@functools.lru_cache(maxsize=1)
def probe() -> CudaProbe:
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        return CudaProbe(False, reason=f"no NVIDIA driver (libcuda.so.1: {str(e).split(':')[-1].strip()})")
    rc = lib.cuInit(0)
    version = ctypes.c_int(0)
    lib.cuDriverGetVersion(ctypes.byref(version))
    if rc != 0:
        # 100 = CUDA_ERROR_NO_DEVICE, 999 = unknown (often a driver/library mismatch)
        why = "no CUDA device" if rc == 100 else f"cuInit failed with CUDA error {rc}"
        return CudaProbe(True, (), version.value, f"NVIDIA driver {version.value} present, but {why}")
    count = ctypes.c_int(0)
    lib.cuDeviceGetCount(ctypes.byref(count))
    devices = []
    for i in range(count.value):
        dev = ctypes.c_int(0)
        lib.cuDeviceGet(ctypes.byref(dev), i)
        name = ctypes.create_string_buffer(256)
        lib.cuDeviceGetName(name, 256, dev)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        lib.cuDeviceGetAttribute(ctypes.byref(major), 75, dev)  # COMPUTE_CAPABILITY_MAJOR
        lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)  # COMPUTE_CAPABILITY_MINOR
        devices.append(
            {"index": i, "name": name.value.decode(errors="replace"), "arch": f"sm_{major.value}{minor.value}"}
        )
    if not devices:
        return CudaProbe(True, (), version.value, f"NVIDIA driver {version.value} present, but no CUDA device")
    return CudaProbe(True, tuple(devices), version.value)


def arch_for(requested: str | None) -> tuple[str, str]:
    """(arch, where it came from)."""
    if requested:
        return requested, "--cuda-arch"
    p = probe()
    if p.devices:
        return p.devices[0]["arch"], f"device 0 ({p.devices[0]['name']})"
    return DEFAULT_ARCH, f"default (no device to ask: {p.reason})"


def nvcc_path() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    for cand in ("/usr/local/cuda/bin/nvcc", *sorted(str(p) for p in Path("/usr/local").glob("cuda-*/bin/nvcc"))):
        if os.access(cand, os.X_OK):
            return cand
    return None
