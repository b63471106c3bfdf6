"""PyTorch eager on CPU: the baseline. Zoo models only (it runs the nn.Module, not the ONNX file)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.backends.base import Backend, Compiled, ModelArtifact
from harness.core.config import RunConfig


class TorchCompiled(Compiled):
    def __init__(self, module, input_names, info):
        super().__init__(tuple(input_names), info)
        self.module = module

    def _call(self, tensors):
        import torch

        with torch.inference_mode():
            out = self.module(*tensors)
        return out if isinstance(out, (tuple, list)) else (out,)

    def _run_impl(self, feeds):
        import torch

        return [
            o.numpy().copy()
            for o in self._call([torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.input_names])
        ]

    def _prepare(self, feeds) -> Callable[[], object]:
        import torch

        tensors = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.input_names]
        return lambda: self._call(tensors)


class TorchCpu(Backend):
    id = "torch-cpu"
    engine = "torch"
    requires = ("torch",)
    zoo_only = True

    def _compile_impl(self, art: ModelArtifact, cfg: RunConfig) -> Compiled:
        import torch

        from models import get_model

        torch.set_num_threads(cfg.threads)
        module = get_model(art.zoo_model).build(art.zoo_size, seed=art.seed)
        info = {
            "engine_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "mode": "eager",
            "inference_mode": True,
        }
        return TorchCompiled(module, list(art.input_shapes), info)
