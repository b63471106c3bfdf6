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

from harness.backends.base import (
    Backend,
    Compiled,
    LayerTime,
    ModelArtifact,
    UnsupportedModel,
)
from harness.backends.base import (
    BuiltNotRun as BuiltNotRun,  # re-exported: where the TVM backends and remote.py take it from
)
from harness.core import cache, safefs
from harness.core.config import RunConfig

ROOT = Path(__file__).resolve().parents[3] / "tuning"  # the repository's tuning/: databases, decisions


def target_slug(target: dict) -> str:
    """The database's folder name; its parts may come from a remote or a command line, so each must be a
    plain file name (docs/security.md)."""
    parts = [str(target.get("kind", "llvm")), str(target.get("mcpu", "generic")), str(target.get("num-cores", "x"))]
    for what, v in zip(("kind", "mcpu", "num-cores"), parts):
        safefs.component(v, what, "the TVM target")
    return f"{parts[0]}-{parts[1]}-{parts[2]}c"


def db_dir(target: dict, tvm_version: str, root: Path | None = None) -> Path:
    return Path(root or ROOT) / f"tvm-{tvm_version}" / target_slug(target)


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


def relax_module(onnx_path: str, shapes: dict, dtypes: dict, fast_math: bool = True):
    """The ONNX file as a Relax module with its shapes fixed, exp/tanh/sigmoid made vectorisable for the CPU
    (fastmath.py; `fast_math=False` for CUDA); an operator TVM's frontend lacks is UnsupportedModel (the case
    is skipped with TVM's reason)."""
    import onnx
    import tvm
    from tvm.relax.frontend.onnx import from_onnx

    try:
        mod = from_onnx(
            onnx.load(onnx_path),
            shape_dict={k: list(v) for k, v in shapes.items()},
            dtype_dict=dict(dtypes),
            keep_params_in_input=False,
        )
    except tvm.error.OpNotImplemented as e:
        raise UnsupportedModel(f"tvm: {str(e).strip().splitlines()[-1]}") from None
    except AssertionError as e:
        # 0.27's MaxPool converter gives one output; a graph that still reads Indices after the maxpool_indices
        # rewrite (harness/lowerings/maxpool_indices.py, which the case applies) fails this assertion
        if "Missing outputs" in str(e) and "MaxPool" in str(e):
            raise UnsupportedModel(
                f"tvm: the ONNX frontend has no MaxPool Indices output ({e}), and the maxpool_indices rewrite "
                f"declined this MaxPool (see details.rewrites)"
            ) from None
        raise
    if fast_math:
        from harness.backends.tvm import fastmath

        mod = fastmath.apply(mod)
    return mod


# The code that builds a library: its source is part of the library's cache key (cache.source_digest).
LIBRARY_SOURCES = tuple(
    Path(__file__).with_name(f"{m}.py")
    for m in ("common", "llvm", "cuda", "tuning", "schedule", "defaults", "fastmath")
)


def cache_path(art: ModelArtifact, target: dict, version: str) -> Path | None:
    """build/compiled/<model>-tvm-<key>.so, keyed by the ONNX bytes, shapes, target, TVM version and the
    source of the harness code that builds libraries (LIBRARY_SOURCES)."""
    if art.cache_dir is None:
        return None
    from harness.core.onnx_io import model_digest

    h = hashlib.sha256(model_digest(art.onnx_path).encode())
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

    from harness.backends.tvm import fastmath

    return {
        "engine_version": tvm.__version__,
        "target": target,
        "runtime_threads": int(tvm.runtime.num_threads()),
        "tuned": "untuned",
        "pipeline": "legalised and fused; the default CPU schedule where faster and verified",
        "fast_math": fastmath.FAST_MATH,
        "compile_cache": cache_state,
    }  # hit: compile_s is only the library's load time


class TvmCompiled(Compiled):
    def __init__(self, vm, dev, input_names, info, exe=None, onnx_path: str | None = None):
        super().__init__(tuple(input_names), info)
        self.vm, self.dev = vm, dev
        self.main = vm["main"]
        self.exe, self.onnx_path = exe, onnx_path  # for profile(): a second VM, and the nodes to map kernels to

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

    def profile(self, feeds, runs: int = 10) -> list[LayerTime]:
        """TVM's Relax VM instrumentation (`set_instrument`): each kernel call timed between the VM's before- and
        after-call hooks (the device synchronised), summed over `runs` inferences after a warm-up. The hook's
        own cost (a few µs a call) is in each kernel's time. A kernel is mapped to the model's node by order:
        the k-th call of a kernel of one op kind (conv, conv_transpose, matmul, pooling) to the k-th ONNX node
        of that kind (Relax's ONNX import keeps the graph's order); other kernels keep their own names."""
        import time as _time

        import tvm

        if self.exe is None:
            return super().profile(feeds, runs)
        vm = tvm.relax.VirtualMachine(self.exe, self.dev)
        main, dev, args = vm["main"], self.dev, self._tensors(feeds)
        order: list[str] = []
        acc: dict[int, float] = {}
        state = {"t": 0.0, "i": 0, "on": False}

        def instrument(func, name, before, ret, *rest):
            name = str(name)
            if name.startswith("vm.") or not state["on"]:
                return 0
            if before:
                state["t"] = _time.perf_counter()
            else:
                dev.sync()
                i = state["i"]
                if len(order) <= i:
                    order.append(name)
                acc[i] = acc.get(i, 0.0) + (_time.perf_counter() - state["t"]) * 1e3
                state["i"] = i + 1
            return 0

        vm.set_instrument(tvm.runtime.convert(instrument))
        main(*args)
        state["on"] = True
        for _ in range(runs):
            state["i"] = 0
            main(*args)
            dev.sync()
        nodes = _nodes_by_kind(self.onnx_path) if self.onnx_path else {}
        seen: dict[str, int] = {}
        out = []
        for i, name in enumerate(order):
            kind = _kernel_kind(name)
            k = seen.get(kind, 0)
            seen[kind] = k + 1
            node, op = (
                (nodes.get(kind) or [])[k] if kind and k < len(nodes.get(kind) or []) else (name, kind or "kernel")
            )
            out.append(LayerTime(node, op, acc.get(i, 0.0) / runs, name))
        return out


_KINDS = {
    "ConvTranspose": "conv_transpose",
    "Conv": "conv",
    "MatMul": "matmul",
    "Gemm": "matmul",
    "MaxPool": "max_pool",
    "AveragePool": "avg_pool",
}


def _kernel_kind(name: str) -> str | None:
    """The op kind in a fused kernel's name (Relax names a fused kernel after its ops)."""
    import re

    for pattern, kind in (
        (r"conv[123]d_transpose", "conv_transpose"),
        (r"conv[123]d", "conv"),
        (r"matmul", "matmul"),
        (r"max_pool[123]d", "max_pool"),
        (r"avg_pool[123]d", "avg_pool"),
    ):
        if re.search(pattern, name):
            return kind
    return None


def _nodes_by_kind(onnx_path: str) -> dict[str, list[tuple[str, str]]]:
    """The ONNX graph's nodes of each op kind, in graph order: (name, op type)."""
    import onnx

    out: dict[str, list[tuple[str, str]]] = {}
    for i, n in enumerate(onnx.load(onnx_path, load_external_data=False).graph.node):
        kind = _KINDS.get(n.op_type)
        if kind:
            out.setdefault(kind, []).append((n.name or n.output[0] or f"node{i}", n.op_type))
    return out


class TvmBackend(Backend):
    """A TVM backend on this host's CPU. A subclass says how a library is built (`_build`); running it here
    and building it for a remote CPU (`remote_build`, harness/backends/tvm/remote.py) are the same for all."""

    engine = "tvm"
    requires = ("tvm",)
    remote_capable = True
    compile_before_counting = True
    compiles_ahead = True
    needs_rewrites = ("maxpool_indices",)  # 0.27's ONNX MaxPool has no Indices output

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
        exe = ex if ex is not None else tvm.runtime.load_module(str(lib))
        vm = relax.VirtualMachine(exe, dev)
        return TvmCompiled(vm, dev, list(art.input_shapes), info, exe, art.onnx_path)

    def remote_build(self, art: ModelArtifact, cfg: RunConfig, desc: dict):
        """For a remote run: built for the CPU the remote says it has."""
        target_d, why = llvm_target(desc, host_target(cfg.threads))
        lib, ex, info = self._build(art, cfg, target_d)
        info["remote_target_from"] = why
        info["runtime_threads"] = desc.get("threads")  # the server's pool, not this process's
        return lib, ex, info, "cpu"
