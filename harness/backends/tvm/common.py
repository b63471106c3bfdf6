"""What every TVM backend shares: the host's LLVM target, the ONNX import into Relax, the Relax VM behind the
Compiled contract, the content-addressed library cache, and the base class of the TVM backends.

This is the leaf of `harness.backends.tvm`: `llvm`, `cuda`, `tuning` and `remote` import it and none of them
imports another (import-linter checks it). Where a case runs (here, or on a device behind TVM's RPC tracker)
is decided by the registry's `compile_case` (harness/backends/__init__.py), not by a backend.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.backends.base import Backend, BackendUnavailable, Compiled, ModelArtifact, UnsupportedModel
from harness.core import cache
from harness.core.config import RunConfig


class BuiltNotRun(BackendUnavailable):
    """The case was compiled (its facts in `info`) but there is no device to run it on here."""

    def __init__(self, reason: str, info: dict):
        super().__init__(f"built, not run: {reason}")
        self.info = info


def host_target(threads: int) -> dict:
    """The LLVM target for this host: `mcpu` as TVM detects it (`-mcpu=native` is rejected by 0.27)."""
    import tvm

    detected = tvm.target.Target.from_device(tvm.cpu())
    return {"kind": "llvm", "mcpu": str(detected.attrs.get("mcpu", "generic")), "num-cores": threads}


def cpu_target(cfg: RunConfig) -> dict:
    """The host's target; when counting (bench --counts), the CPU valgrind presents instead (counting.COUNT_MCPU:
    code built for the host's AVX-512 would be an illegal instruction under valgrind)."""
    if cfg.counter:
        from harness.measure.counting import COUNT_MCPU

        return {"kind": "llvm", "mcpu": COUNT_MCPU, "num-cores": cfg.threads}
    return host_target(cfg.threads)


def llvm_target(desc: dict, fallback: dict) -> tuple[dict, str]:
    """The LLVM target for a remote CPU (`desc`: what the remote says of itself, remote.describe) when it says
    what it is; else `fallback`, and why."""
    if desc.get("cpu") and desc.get("triple"):
        t = {"kind": "llvm", "mtriple": desc["triple"], "mcpu": desc["cpu"]}
        if desc.get("threads"):
            t["num-cores"] = desc["threads"]
        return t, "the remote's CPU (as LLVM on it detects it)"
    return fallback, "this host's (the remote did not say what its CPU is)"


def relax_module(onnx_path: str, shapes: dict, dtypes: dict):
    """The ONNX file as a Relax module with its shapes fixed; an operator TVM's frontend lacks is
    UnsupportedModel (the case is skipped with TVM's reason)."""
    import onnx
    import tvm
    from tvm.relax.frontend.onnx import from_onnx

    try:
        return from_onnx(
            onnx.load(onnx_path),
            shape_dict={k: list(v) for k, v in shapes.items()},
            dtype_dict=dict(dtypes),
            keep_params_in_input=False,
        )
    except tvm.error.OpNotImplemented as e:
        raise UnsupportedModel(f"tvm: {str(e).strip().splitlines()[-1]}") from None
    except AssertionError as e:
        # 0.27's MaxPool converter gives one output; a graph that uses Indices fails this assertion
        if "Missing outputs" in str(e) and "MaxPool" in str(e):
            raise UnsupportedModel(
                f"tvm: the ONNX frontend has no MaxPool Indices output ({e}); an "
                f"index-free form of the model runs (e.g. segnet_noidx)"
            ) from None
        raise


# The code that builds a library: its source is part of the library's cache key (cache.source_digest).
LIBRARY_SOURCES = tuple(Path(__file__).with_name(f"{m}.py") for m in ("common", "llvm", "cuda", "tuning"))


def cache_path(art: ModelArtifact, target: dict, version: str) -> Path | None:
    """build/compiled/<model>-tvm-<key>.so, keyed by the ONNX bytes, shapes, target, TVM version and the
    source of the harness code that builds libraries (LIBRARY_SOURCES)."""
    if art.cache_dir is None:
        return None
    h = hashlib.sha256(Path(art.onnx_path).read_bytes())
    code = cache.source_digest(LIBRARY_SOURCES)
    h.update(
        json.dumps(
            [sorted(art.input_shapes.items()), sorted(art.input_dtypes.items()), target, version, "tvm-lib", code],
            sort_keys=True,
        ).encode()
    )
    return Path(art.cache_dir) / f"{Path(art.onnx_path).stem}-tvm-{h.hexdigest()[:20]}.so"


def export_cached(ex, lib: Path | None) -> None:
    """Keep a freshly built executable's library as a committed cache entry (nothing when caching is off)."""
    if lib is not None:
        tmp = cache.tmp_path(lib)
        ex.export_library(str(tmp))
        cache.commit(tmp, lib)


def engine_info(target: dict, cache_state: str) -> dict:
    import tvm

    return {
        "engine_version": tvm.__version__,
        "target": target,
        "runtime_threads": int(tvm.runtime.num_threads()),
        "tuned": "untuned",
        "pipeline": "relax.build default (legalised, unscheduled)",
        "compile_cache": cache_state,
    }  # hit: compile_s is only the library's load time


class TvmCompiled(Compiled):
    def __init__(self, vm, dev, input_names, info):
        super().__init__(tuple(input_names), info)
        self.vm, self.dev = vm, dev
        self.main = vm["main"]

    def _tensors(self, feeds):
        import tvm

        return [tvm.runtime.tensor(np.ascontiguousarray(feeds[n]), self.dev) for n in self.input_names]

    def _run_impl(self, feeds):
        out = self.main(*self._tensors(feeds))
        self.dev.sync()
        outs = [out] if hasattr(out, "numpy") else list(out)
        return [o.numpy() for o in outs]

    def _prepare(self, feeds) -> Callable[[], object]:
        main, dev, args = self.main, self.dev, self._tensors(feeds)

        def call():
            main(*args)
            dev.sync()

        return call


class TvmBackend(Backend):
    """A TVM backend on this host's CPU. A subclass says how a library is built (`_build`); running it here
    and building it for a remote CPU (`remote_build`, harness/backends/tvm/remote.py) are the same for all."""

    engine = "tvm"
    requires = ("tvm",)
    remote_capable = True
    compile_before_counting = True

    def load(self) -> None:
        import tvm.relax.frontend.onnx  # noqa: F401 — the frontend's import is seconds, not compile time

    def worker_env(self, cfg: RunConfig) -> dict[str, str]:
        return {"TVM_NUM_THREADS": str(cfg.threads)}

    def _build(self, art: ModelArtifact, cfg: RunConfig, target_d: dict):
        """(library path or None, executable when freshly built else None, info) for `target_d`."""
        raise NotImplementedError

    def _compile_impl(self, art: ModelArtifact, cfg: RunConfig) -> Compiled:
        import tvm
        from tvm import relax

        lib, ex, info = self._build(art, cfg, cpu_target(cfg))
        dev = tvm.cpu(0)
        vm = relax.VirtualMachine(ex if ex is not None else tvm.runtime.load_module(str(lib)), dev)
        return TvmCompiled(vm, dev, list(art.input_shapes), info)

    def remote_build(self, art: ModelArtifact, cfg: RunConfig, desc: dict):
        """For a remote run: built for the CPU the remote says it has."""
        target_d, why = llvm_target(desc, host_target(cfg.threads))
        lib, ex, info = self._build(art, cfg, target_d)
        info["remote_target_from"] = why
        info["runtime_threads"] = desc.get("threads")  # the server's pool, not this process's
        return lib, ex, info, "cpu"
