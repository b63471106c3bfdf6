"""ONNX Runtime, CPU execution provider."""
from __future__ import annotations

from typing import Callable

import numpy as np

from harness.backends.base import Availability, Backend, Compiled, ModelArtifact, UnsupportedModel
from harness.config import RunConfig


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
        info = {"engine_version": ort.__version__, "providers": sess.get_providers(),
                "intra_op_threads": cfg.threads, "graph_optimization": "ORT_ENABLE_ALL"}
        return OrtCompiled(sess, list(art.input_shapes), info)
