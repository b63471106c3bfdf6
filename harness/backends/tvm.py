"""Apache TVM (Relax): ONNX -> relax.frontend.onnx.from_onnx -> relax.build -> VirtualMachine, on LLVM/CPU.

Untuned: `relax.build` legalises operators to TIR loop nests without scheduling them, so this backend is
what a user gets from TVM out of the box; tuning is a separate step (and a separate record field).
The runtime's thread pool size is fixed at import time from TVM_NUM_THREADS, which the sweep sets in the
worker's environment from the run's configuration (TVM's default is half the logical CPUs).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np

from harness import cache
from harness.backends.base import Backend, Compiled, ModelArtifact, UnsupportedModel
from harness.config import RunConfig


def host_target(threads: int) -> dict:
    """The LLVM target for this host: `mcpu` as TVM detects it (`-mcpu=native` is rejected by 0.27)."""
    import tvm

    detected = tvm.target.Target.from_device(tvm.cpu())
    return {"kind": "llvm", "mcpu": str(detected.attrs.get("mcpu", "generic")), "num-cores": threads}


def cpu_target(cfg: RunConfig) -> dict:
    """The host's target; when counting (bench --counts), the CPU valgrind presents instead (counting.COUNT_MCPU:
    code built for the host's AVX-512 would be an illegal instruction under valgrind)."""
    if cfg.counter:
        from harness.counting import COUNT_MCPU
        return {"kind": "llvm", "mcpu": COUNT_MCPU, "num-cores": cfg.threads}
    return host_target(cfg.threads)


def relax_module(art: ModelArtifact):
    """The ONNX file as a Relax module with its shapes fixed; an operator TVM's frontend lacks is
    UnsupportedModel (the case is skipped with TVM's reason)."""
    import onnx
    import tvm
    from tvm.relax.frontend.onnx import from_onnx

    try:
        return from_onnx(onnx.load(art.onnx_path), shape_dict={k: list(v) for k, v in art.input_shapes.items()},
                         dtype_dict=dict(art.input_dtypes), keep_params_in_input=False)
    except tvm.error.OpNotImplemented as e:
        raise UnsupportedModel(f"tvm: {str(e).strip().splitlines()[-1]}") from None
    except AssertionError as e:
        # 0.27's MaxPool converter gives one output; a graph that uses Indices fails this assertion
        if "Missing outputs" in str(e) and "MaxPool" in str(e):
            raise UnsupportedModel(f"tvm: the ONNX frontend has no MaxPool Indices output ({e}); an "
                                   f"index-free form of the model runs (e.g. segnet_noidx)") from None
        raise


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


class TvmLlvm(Backend):
    id = "tvm-llvm"
    engine = "tvm"
    requires = ("tvm",)

    def load(self) -> None:
        import tvm.relax.frontend.onnx  # noqa: F401 — the frontend's import is seconds, not compile time

    def worker_env(self, cfg: RunConfig) -> dict[str, str]:
        return {"TVM_NUM_THREADS": str(cfg.threads)}

    remote_capable = True
    compile_before_counting = True

    def _compile_impl(self, art: ModelArtifact, cfg: RunConfig) -> Compiled:
        import tvm
        from tvm import relax

        if cfg.rpc_tracker:                      # compiled here, run on a device the tracker hands out
            from harness.remote import compile_remote
            return compile_remote(self, art, cfg)
        lib, ex, info = self._build(art, cfg, cpu_target(cfg))
        dev = tvm.cpu(0)
        vm = relax.VirtualMachine(ex if ex is not None else tvm.runtime.load_module(str(lib)), dev)
        return TvmCompiled(vm, dev, list(art.input_shapes), info)

    def _build(self, art: ModelArtifact, cfg: RunConfig, target_d: dict):
        """(library path or None, executable when freshly built else None, info) for `target_d`; the library
        is cached in build/compiled, keyed by model, shapes, target and TVM version."""
        import tvm
        from tvm import relax

        lib = self._cache_path(art, target_d, tvm.__version__)
        if lib is not None and cache.is_valid(lib):
            return lib, None, self._info(target_d, cfg, "hit")
        ex = relax.build(relax_module(art), target=tvm.target.Target(target_d))
        if lib is not None:
            tmp = cache.tmp_path(lib)
            ex.export_library(str(tmp))
            cache.commit(tmp, lib)
        return lib, ex, self._info(target_d, cfg, "miss" if lib else "off")

    def remote_build(self, art: ModelArtifact, cfg: RunConfig, desc: dict):
        """For a remote run (harness/remote.py): built for the CPU the remote says it has."""
        from harness.remote import llvm_target

        target_d, why = llvm_target(desc, host_target(cfg.threads))
        lib, ex, info = self._build(art, cfg, target_d)
        info["remote_target_from"] = why
        info["runtime_threads"] = desc.get("threads")          # the server's pool, not this process's
        return lib, ex, info, "cpu"

    @staticmethod
    def _cache_path(art: ModelArtifact, target: dict, version: str) -> Path | None:
        """build/compiled/<model>-<key>.so, keyed by the ONNX bytes, shapes, target and TVM version."""
        if art.cache_dir is None:
            return None
        h = hashlib.sha256(Path(art.onnx_path).read_bytes())
        h.update(json.dumps([sorted(art.input_shapes.items()), sorted(art.input_dtypes.items()), target,
                             version, "tvm-llvm-untuned-1"], sort_keys=True).encode())
        return Path(art.cache_dir) / f"{Path(art.onnx_path).stem}-tvm-{h.hexdigest()[:20]}.so"

    @staticmethod
    def _info(target: dict, cfg: RunConfig, cache_state: str) -> dict:
        import tvm
        return {"engine_version": tvm.__version__, "target": target,
                "runtime_threads": int(tvm.runtime.num_threads()), "tuned": "untuned",
                "pipeline": "relax.build default (legalised, unscheduled)",
                "compile_cache": cache_state}   # hit: compile_s is only the library's load time


class TvmLlvmTuned(TvmLlvm):
    """TVM with the committed MetaSchedule database (`tuning/`, harness/tuning.py) applied: the tuned
    schedule for every task the database has a record for, the untuned loop nest for the rest. A workload
    with no record at all is skipped (it would only repeat `tvm-llvm`); the record says whether the case was
    tuned or partly tuned, and which tasks were not."""

    id = "tvm-llvm-tuned"
    file_default = False

    def _build(self, art: ModelArtifact, cfg: RunConfig, target_d: dict):
        import tvm
        from tvm.s_tir import meta_schedule as ms

        from harness import tuning

        d = tuning.db_dir(target_d, tvm.__version__)
        if not (d / "database_tuning_record.json").exists():
            raise UnsupportedModel(f"no tuning database for TVM {tvm.__version__} on {tuning.target_slug(target_d)} "
                                   f"(expected {d}); run `convtx tune`")
        try:
            mod = tuning.relax_module(art.onnx_path, art.input_shapes, art.input_dtypes)
        except tvm.error.OpNotImplemented as e:
            raise UnsupportedModel(f"tvm: {str(e).strip().splitlines()[-1]}") from None
        except AssertionError as e:
            if "Missing outputs" in str(e) and "MaxPool" in str(e):
                raise UnsupportedModel(f"tvm: the ONNX frontend has no MaxPool Indices output ({e})") from None
            raise
        db = tuning.open_db(d)
        state = tuning.tuning_state(mod, target_d, db)
        if state["state"] == "untuned":
            raise UnsupportedModel(f"untuned: none of the workload's {state['tasks']} tasks has a record in {d} "
                                   f"(tune it: convtx tune MODEL --lowerings LOWERING)")
        digest = hashlib.sha256((d / "database_tuning_record.json").read_bytes()).hexdigest()[:16]
        lib = self._cache_path(art, {**target_d, "db": digest}, tvm.__version__)
        info = {**self._info(target_d, cfg, "hit" if lib is not None and cache.is_valid(lib) else "miss"),
                "tuned": state["state"], "tuning": {**state, "database": str(d.relative_to(tuning.ROOT.parent))
                                                     if d.is_relative_to(tuning.ROOT.parent) else str(d),
                                                     "records_digest": digest},
                "pipeline": "MetaSchedule database applied after FuseTIR (compile_relax)"}
        if lib is not None and cache.is_valid(lib):
            return lib, None, info
        ex = ms.relax_integration.compile_relax(db, mod, tvm.target.Target(target_d), None)
        if lib is not None:
            tmp = cache.tmp_path(lib)
            ex.export_library(str(tmp))
            cache.commit(tmp, lib)
        return lib, ex, info
