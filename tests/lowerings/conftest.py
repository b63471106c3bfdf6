import onnx

from harness.backends import ModelArtifact, get_backend
from harness.core.config import RunConfig

CFG = RunConfig(threads=1)


def run_on(backend_id: str, model, feeds, tmp_path, name="m"):
    path = tmp_path / f"{name}-{backend_id}.onnx"
    onnx.save(model, str(path))
    shapes = {k: tuple(v.shape) for k, v in feeds.items()}
    art = ModelArtifact(str(path), shapes, {k: "float32" for k in feeds})
    return get_backend(backend_id).compile(art, CFG).run(feeds)
