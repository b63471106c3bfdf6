"""ONNX Runtime, CPU execution provider."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.backends.base import (
    Availability,
    Backend,
    BackendUnavailable,
    Compiled,
    LayerTime,
    ModelArtifact,
    UnsupportedModel,
)
from harness.core.config import RunConfig


class OrtCompiled(Compiled):
    def __init__(self, sess, input_names, info, profiled=None, onnx_path: str | None = None):
        super().__init__(tuple(input_names), info)
        self.sess = sess
        self.output_names = [o.name for o in sess.get_outputs()]
        self._profiled = profiled  # () -> a new session of the same model with profiling on
        self._onnx_path = onnx_path

    def profile(self, feeds, runs: int = 10) -> list[LayerTime]:
        """ONNX Runtime's own profiler: a session with `enable_profiling`, its per-node kernel events after the
        first (warm-up) run, averaged over `runs`. Node names are the model's (after ORT's fusions: a fused
        node carries the name of the node it was fused into)."""
        import json
        import tempfile

        if self._profiled is None:
            return super().profile(feeds, runs)
        with tempfile.TemporaryDirectory() as tmp:
            sess = self._profiled(str(Path(tmp) / "ort"))
            f = {n: feeds[n] for n in self.input_names}
            for _ in range(runs + 1):
                sess.run(self.output_names, f)
            events = json.loads(Path(sess.end_profiling()).read_text())
        runs_ev = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
        start = runs_ev[0]["ts"] + runs_ev[0]["dur"] if runs_ev else 0
        acc: dict[tuple[str, str], float] = {}
        for e in events:
            if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time") or e["ts"] < start:
                continue
            key = (e["name"][: -len("_kernel_time")], (e.get("args") or {}).get("op_name", "?"))
            acc[key] = acc.get(key, 0.0) + e["dur"] / 1e3
        names = _node_names(self._onnx_path) if self._onnx_path else {}
        return [LayerTime(names.get(node, node), op, ms / runs, node) for (node, op), ms in acc.items()]

    def _run_impl(self, feeds):
        return [np.asarray(o) for o in self.sess.run(self.output_names, {n: feeds[n] for n in self.input_names})]

    def _prepare(self, feeds) -> Callable[[], object]:
        sess, names, f = self.sess, self.output_names, {n: feeds[n] for n in self.input_names}
        return lambda: sess.run(names, f)


def _node_names(onnx_path: str) -> dict[str, str]:
    """ORT's name of a profiled node -> the model's node: itself, or — for the nodes ORT's NCHWc layout pass
    makes, named `<output>_nchwc` — the node that writes that output."""
    import onnx

    out: dict[str, str] = {}
    for n in onnx.load(onnx_path, load_external_data=False).graph.node:
        if n.name:
            out[n.name] = n.name
        for o in n.output:
            out.setdefault(f"{o}_nchwc", n.name or o)
    return out


class OrtCpu(Backend):
    id = "ort-cpu"
    engine = "onnxruntime"
    requires = ("onnxruntime",)
    provider = "CPUExecutionProvider"

    def _availability_impl(self) -> Availability:
        return Availability(True)

    def _compile_impl(self, art: ModelArtifact, cfg: RunConfig) -> Compiled:
        import onnxruntime as ort

        if self.provider not in ort.get_available_providers():
            raise UnsupportedModel(f"onnxruntime has no {self.provider} (has {ort.get_available_providers()})")
        so = ort.SessionOptions()
        so.intra_op_num_threads = cfg.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            sess = ort.InferenceSession(art.onnx_path, so, providers=[self.provider])
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if "NOT_IMPLEMENTED" in msg or "Could not find an implementation" in msg:
                raise UnsupportedModel(f"onnxruntime: {msg}") from None
            raise
        info = {
            "engine_version": ort.__version__,
            "providers": sess.get_providers(),
            "intra_op_threads": cfg.threads,
            "graph_optimization": "ORT_ENABLE_ALL",
        }

        def profiled(prefix: str):
            sp = ort.SessionOptions()
            for attr in ("intra_op_num_threads", "inter_op_num_threads", "execution_mode", "graph_optimization_level"):
                setattr(sp, attr, getattr(so, attr))
            sp.log_severity_level = 3
            sp.enable_profiling = True
            sp.profile_file_prefix = prefix
            return ort.InferenceSession(art.onnx_path, sp, providers=[self.provider])

        return OrtCompiled(sess, list(art.input_shapes), info, profiled, art.onnx_path)


def _ort_gpu_package() -> str | None:
    """The installed onnxruntime distribution that carries the CUDA EP, if any (cheap: metadata only)."""
    from importlib import metadata

    for dist in ("onnxruntime-gpu",):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return None


class OrtCudaCompiled(OrtCompiled):
    """Inputs copied to the GPU once (IO binding), outputs left on it while timing; `run_with_iobinding`
    synchronises the CUDA stream at the end of each run, so a wall-clock sample covers the device work."""

    def _binding(self, feeds):
        import onnxruntime as ort

        io = self.sess.io_binding()
        for n in self.input_names:
            io.bind_ortvalue_input(n, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(feeds[n]), "cuda", 0))
        for n in self.output_names:
            io.bind_output(n, "cuda", 0)
        io.synchronize_inputs()
        return io

    def _run_impl(self, feeds):
        io = self._binding(feeds)
        self.sess.run_with_iobinding(io)
        where = {o.device_name() for o in io.get_outputs()}
        if where != {"cuda"}:
            raise RuntimeError(f"device self-check: outputs on {sorted(where)}, expected cuda")
        self.info["device_check"] = "outputs on cuda"
        return [np.asarray(o) for o in io.copy_outputs_to_cpu()]

    def _prepare(self, feeds) -> Callable[[], object]:
        sess, io = self.sess, self._binding(feeds)
        return lambda: sess.run_with_iobinding(io)


class OrtCuda(OrtCpu):
    """ONNX Runtime's CUDA execution provider (the `cuda` extra: onnxruntime-gpu replaces onnxruntime).

    Strict: CPU fallback is disabled, so a node the CUDA EP cannot take, or a session that could not create
    the EP, is an error, never a silent CPU run; the session's providers are checked and recorded. TF32 is
    ONNX Runtime's default on Ampere and newer (`use_tf32`); `--no-tf32` turns it off, and a case with TF32
    on is judged by the looser `tf32` policy (numerics.POLICY), which its record names."""

    id = "ort-cuda"
    device = "cuda"
    provider = "CUDAExecutionProvider"
    file_default = False

    def _availability_impl(self) -> Availability:
        from harness.measure import cuda

        why = []
        if _ort_gpu_package() is None:
            why.append(
                "package missing: onnxruntime-gpu is not installed (the CPU onnxruntime is; README "
                "'CUDA' says how to swap them)"
            )
        p = cuda.probe()
        if not p.runnable:
            why.append(p.reason)
        return Availability(not why, "; ".join(why))

    def _compile_impl(self, art: ModelArtifact, cfg: RunConfig) -> Compiled:
        import onnxruntime as ort

        from harness.measure import cuda

        if hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA/cuDNN from the nvidia-* wheels; prints what it cannot find
        so = ort.SessionOptions()
        so.intra_op_num_threads = cfg.threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        opts = {"device_id": "0", "use_tf32": "1" if cfg.tf32 else "0", "cudnn_conv_algo_search": "EXHAUSTIVE"}
        try:
            sess = ort.InferenceSession(art.onnx_path, so, providers=[(self.provider, opts)])
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if "NOT_IMPLEMENTED" in msg or "fallback to CPU EP has been explicitly disabled" in msg:
                raise UnsupportedModel(f"onnxruntime CUDA EP: {msg}") from None
            raise
        if sess.get_providers()[0] != self.provider:
            raise BackendUnavailable(f"onnxruntime did not create the CUDA EP (providers {sess.get_providers()})")
        p = cuda.probe()
        info = {
            "engine_version": ort.__version__,
            "providers": sess.get_providers(),
            "provider_options": opts,
            "tf32": "enabled" if cfg.tf32 else "disabled",
            "numerics_policy": "tf32" if cfg.tf32 else "float32",
            "device": p.devices[0] if p.devices else None,
            "graph_optimization": "ORT_ENABLE_ALL",
        }
        return OrtCudaCompiled(sess, list(art.input_shapes), info)
