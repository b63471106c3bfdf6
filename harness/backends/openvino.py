"""OpenVINO on CPU: the ONNX file read by OpenVINO's ONNX frontend, compiled for the CPU plugin with f32
inference precision (no bf16 down-conversion on AVX-512-BF16 machines), an explicit thread count and the
latency hint, run through a synchronous infer request.

Optional: `pip install -e ".[openvino]"` (the extra pins the version); without it the backend is
unavailable with that reason, and its cases are `skipped`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.backends.base import (
    Availability,
    Backend,
    Compiled,
    LayerTime,
    ModelArtifact,
    UnsupportedModel,
)
from harness.core.config import RunConfig


class OpenVinoCompiled(Compiled):
    def __init__(self, compiled, input_names, info, profiled=None):
        super().__init__(tuple(input_names), info)
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.ports = [compiled.input(n) for n in input_names]
        self._profiled = profiled  # () -> the same model compiled with PERF_COUNT on

    def profile(self, feeds, runs: int = 10) -> list[LayerTime]:
        """OpenVINO's performance counters (PERF_COUNT): per executed layer, its real time, summed over `runs`
        inferences after a warm-up. A layer is named after the model's node it came from (`node/suffix` for
        the parts OpenVINO splits a node into); reorders between layouts count as their own op."""
        if self._profiled is None:
            return super().profile(feeds, runs)
        compiled = self._profiled()
        req = compiled.create_infer_request()
        data = {compiled.input(n): np.ascontiguousarray(feeds[n]) for n in self.input_names}
        req.infer(data)
        acc: dict[tuple[str, str, str], float] = {}
        for _ in range(runs):
            req.infer(data)
            for p in req.profiling_info:
                if str(p.status).endswith("EXECUTED") and not str(p.status).endswith("NOT_EXECUTED"):
                    ms = p.real_time.total_seconds() * 1e3
                    node = "(layout reorders)" if p.node_type == "Reorder" else p.node_name.split("/")[0]
                    key = (node, p.node_type, p.node_name)
                    acc[key] = acc.get(key, 0.0) + ms
        return [LayerTime(node, op, ms / runs, name) for (node, op, name), ms in acc.items()]

    def _run_impl(self, feeds):
        res = self.request.infer({p: np.ascontiguousarray(feeds[n]) for p, n in zip(self.ports, self.input_names)})
        return [np.array(res[o]) for o in self.compiled.outputs]

    def _prepare(self, feeds) -> Callable[[], object]:
        req = self.request
        data = {p: np.ascontiguousarray(feeds[n]) for p, n in zip(self.ports, self.input_names)}
        return lambda: req.infer(data)


class OpenVinoCpu(Backend):
    id = "openvino-cpu"
    engine = "openvino"
    requires = ("openvino",)

    def availability(self) -> Availability:
        a = super().availability()  # no engine import here: the sweep driver calls this
        if not a:
            return Availability(False, f"{a.reason}: it is an optional extra, pip install -e '.[openvino]'")
        return a

    def _compile_impl(self, art: ModelArtifact, cfg: RunConfig) -> Compiled:
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        core = ov.Core()
        if "CPU" not in core.available_devices:
            raise UnsupportedModel(f"openvino {ov.__version__} sees no CPU device (has {core.available_devices})")
        try:
            model = core.read_model(art.onnx_path)
        except RuntimeError as e:
            raise UnsupportedModel(f"openvino: {_conversion_failure(str(e))}") from None
        config = {
            hints.inference_precision: ov.Type.f32,
            hints.performance_mode: hints.PerformanceMode.LATENCY,
            props.inference_num_threads: cfg.threads,
            hints.num_requests: 1,
        }
        compiled = core.compile_model(model, "CPU", config)

        def profiled():
            return core.compile_model(core.read_model(art.onnx_path), "CPU", {**config, "PERF_COUNT": True})

        info = {
            "engine_version": ov.__version__,
            "device": "CPU",
            "inference_precision": "f32",
            "threads": int(compiled.get_property(props.inference_num_threads)),
            "performance_hint": "LATENCY",
            "execution_precision": str(compiled.get_property(hints.inference_precision)),
        }
        return OpenVinoCompiled(compiled, list(art.input_shapes), info, profiled)


def _conversion_failure(text: str) -> str:
    """The useful part of the ONNX frontend's multi-line report: which op failed, and why."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    ops = [
        line[3:].split(" with a message")[0]
        for line in lines
        if line.startswith("-- ") and not line.startswith("-- Conversion is failed")
    ]
    why = next(
        (
            line
            for line in lines
            if any(k in line for k in ("must", "not supported", "No conversion rule", "is not supported"))
        ),
        lines[-1] if lines else "",
    )
    why = why.removeprefix("-- ")
    return (f"{', '.join(dict.fromkeys(ops))}: {why}" if ops and ops[0] not in why else why)[:300]
