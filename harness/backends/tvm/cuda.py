"""Apache TVM (Relax) for CUDA: ONNX -> from_onnx -> relax.build for a CUDA target -> exported library.

`relax.build` on a target with the "gpu" key runs TVM's CUDA pipeline (relax/backend/cuda/pipeline.py):
legalise, fuse, then dlight's default GPU schedules (Matmul, GEMV, Reduction, GeneralReduction, Fallback),
so every kernel is bound to threads. The build needs no GPU: without a CUDA runtime TVM keeps each kernel's
CUDA C source in the library, compiled when the library is loaded where a GPU is. The library and the
kernel source are kept (build/compiled, and `convtx build --out DIR`).

Where a GPU is (harness/measure/cuda.py), the same library is loaded onto `tvm.cuda(0)` and run and timed through
the same Compiled class as on the CPU (inputs copied to the device once, each timed call synchronised).
Where none is, compile raises BuiltNotRun: the case is a `skipped` record "built, not run: <why>", with the
build's facts. The code generator's fast math is turned off (TVM_CUDA_NVCC_NO_FAST_MATH=1) so results are
judged like any float32 engine's.
"""

from __future__ import annotations

import re

from harness.backends.base import Availability, Compiled, ModelArtifact
from harness.backends.tvm.common import BuiltNotRun, TvmBackend, TvmCompiled, cache_path, llvm_target, relax_module
from harness.core import cache
from harness.core.config import RunConfig
from harness.measure import cuda

PIPELINE = "relax CUDA default pipeline: legalise, fuse, dlight (Matmul, GEMV, Reduction, GeneralReduction, Fallback)"


def cuda_target(arch: str) -> dict:
    # dlight reads these; without max_shared_memory_per_block it warns and assumes 48 KiB anyway
    return {"kind": "cuda", "arch": arch, "max_shared_memory_per_block": 49152, "max_threads_per_block": 1024}


# A generic host: the exported library must load on the GPU machine's CPU, not only on this one's.
HOST = {"kind": "llvm"}


def kernel_source(ex) -> str:
    """The CUDA C source of every kernel in a built executable (its CUDA module, found in the import tree)."""
    mods = ex.mod._collect_from_import_tree(lambda m: m.kind == "cuda")
    return "\n".join(m.inspect_source() for m in mods)


def count_kernels(src: str) -> int:
    return len(re.findall(r'extern "C" __global__', src))


class TvmCuda(TvmBackend):
    id = "tvm-cuda"
    device = "cuda"
    file_default = False  # chosen explicitly (or by the cuda suite): it builds where nothing runs it

    def _availability_impl(self):
        p = cuda.probe()
        return Availability(True, "" if p.runnable else f"builds here; cannot run: {p.reason}")

    def worker_env(self, cfg: RunConfig) -> dict[str, str]:
        env = {"TVM_CUDA_NVCC_NO_FAST_MATH": "1"}
        # TVM compiles the kernels when the library is loaded; its default (NVRTC) needs the cuda-bindings
        # package, nvcc does not
        import importlib.util

        if importlib.util.find_spec("cuda") is None:
            env["TVM_CUDA_COMPILE_MODE"] = "nvcc"
        return env

    def _compile_impl(self, art: ModelArtifact, cfg: RunConfig) -> Compiled:
        import tvm
        from tvm import relax

        arch, arch_from = cuda.arch_for(cfg.cuda_arch)
        lib, ex, info = self._build_cuda(art, cfg, arch, arch_from, HOST)
        if cfg.compile_only:  # `convtx build`: the artefacts are the result
            return Compiled(tuple(art.input_shapes), info)
        p = cuda.probe()
        if not p.runnable:
            raise BuiltNotRun(p.reason, info)
        dev = tvm.cuda(0)
        if not dev.exist:
            raise BuiltNotRun(
                f"{p.devices[0]['name']} present, but TVM's CUDA runtime (libtvm_runtime_cuda) did "
                f"not load in this TVM build",
                info,
            )
        if lib is None:
            raise BuiltNotRun("no compiled-artefact directory to export the library to", info)
        vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib)), dev)
        info["device"] = p.devices[0]
        return TvmCudaCompiled(vm, dev, list(art.input_shapes), info)

    def _build_cuda(self, art: ModelArtifact, cfg: RunConfig, arch: str, arch_from: str, host: dict):
        """(library path or None, executable when freshly built else None, info): the CUDA build, with its
        kernel source kept beside the library (both committed cache entries)."""
        import tvm
        from tvm import relax

        target_d = cuda_target(arch)
        lib = cache_path(art, {**target_d, "host": host, "pipeline": "default-dlight-1"}, tvm.__version__)
        src_path = lib.with_suffix(".cu") if lib is not None else None
        state = "hit" if lib is not None and cache.is_valid(lib) and cache.is_valid(src_path) else "miss"
        ex = None
        if state == "miss":
            ex = relax.build(
                relax_module(art.onnx_path, art.input_shapes, art.input_dtypes, fast_math=False),
                target=tvm.target.Target(target_d, host=host),
            )
            src = kernel_source(ex)
            if lib is not None:
                tmp = cache.tmp_path(src_path)
                tmp.write_text(src)
                cache.commit(tmp, src_path)
                tmp = cache.tmp_path(lib)
                ex.export_library(str(tmp))
                cache.commit(tmp, lib)
        else:
            src = src_path.read_text()
        info = {
            "engine_version": tvm.__version__,
            "target": target_d,
            "host_target": host,
            "arch_from": arch_from,
            "pipeline": PIPELINE,
            "tuned": "untuned (dlight default schedules)",
            "kernels": count_kernels(src),
            "fast_math": False,
            "compile_cache": state,
            "library": str(lib) if lib is not None else None,
            "cuda_source": str(src_path) if src_path is not None else None,
        }
        return lib, ex, info

    def remote_build(self, art: ModelArtifact, cfg: RunConfig, desc: dict):
        """For a remote GPU: its architecture as the session reports it (--cuda-arch overrides), host code for
        the remote's CPU triple when it says it."""
        dev = desc.get("cuda") or {}
        if cfg.cuda_arch:
            arch, arch_from = cfg.cuda_arch, "--cuda-arch"
        elif dev.get("compute_version"):
            arch, arch_from = "sm_" + dev["compute_version"].replace(".", ""), f"remote device ({dev.get('name')})"
        else:
            arch, arch_from = cuda.DEFAULT_ARCH, "default (the remote showed no CUDA device)"
        host, _ = llvm_target({k: desc[k] for k in ("cpu", "triple") if k in desc}, HOST)
        lib, ex, info = self._build_cuda(art, cfg, arch, arch_from, host)
        return lib, ex, info, "cuda"


class TvmCudaCompiled(TvmCompiled):
    """TvmCompiled on a CUDA device, with the check that the outputs really live there."""

    def _run_impl(self, feeds):
        out = self.main(*self._tensors(feeds))
        self.dev.sync()
        outs = [out] if hasattr(out, "numpy") else list(out)
        where = {str(o.device) for o in outs}
        if not all(o.device.device_type == self.dev.device_type for o in outs):
            raise RuntimeError(f"device self-check: outputs on {sorted(where)}, expected {self.dev}")
        self.info["device_check"] = f"outputs on {sorted(where)}"
        return [o.numpy() for o in outs]
