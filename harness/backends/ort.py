"""ONNX Runtime, CPU execution provider."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.backends.base import Availability, Backend, BackendUnavailable, Compiled, ModelArtifact, UnsupportedModel
from harness.core.config import RunConfig


class OrtCompiled(Compiled):
    def __init__(self, sess, input_names, info):
        super().__init__(tuple(input_names), info)
        self.sess = sess
        self.output_names = [o.name for o in sess.get_outputs()]

    def _run_impl(self, feeds):
        return [np.asarray(o) for o in self.sess.run(self.output_names, {n: feeds[n] for n in self.input_names})]

    def _prepare(self, feeds) -> Callable[[], object]:
        sess, names, f = self.sess, self.output_names, {n: feeds[n] for n in self.input_names}
        return lambda: sess.run(names, f)


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
        return OrtCompiled(sess, list(art.input_shapes), info)


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
