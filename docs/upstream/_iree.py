"""What the IREE reproducers share: one ONNX graph imported by IREE's ONNX importer, compiled for this CPU and
run on the local-task driver (as harness/backends/iree.py does, without the harness)."""

import numpy as np
import onnx


def compile_onnx(model: onnx.ModelProto) -> bytes:
    """The model compiled by iree-compile for this CPU; iree.compiler.CompilerToolError when it refuses."""
    import iree.compiler as ic
    from iree.compiler.extras import onnx_importer
    from iree.compiler.ir import Context

    info = onnx_importer.ModelInfo(model)
    module = info.create_module(context=Context()).operation
    onnx_importer.NodeImporter.define_function(info.main_graph, module).import_all()
    return ic.compile_str(
        module.get_asm(assume_verified=True),
        target_backends=["llvm-cpu"],
        input_type="onnx",
        extra_args=["--iree-llvmcpu-target-cpu=host"],
    )


def run(vmfb: bytes, *inputs: np.ndarray) -> np.ndarray:
    import iree.runtime as rt

    config = rt.Config("local-task")
    ctx = rt.SystemContext(config=config)
    ctx.add_vm_module(rt.VmModule.copy_buffer(config.vm_instance, vmfb))
    out = ctx.modules.module["main_graph"](*inputs)
    return np.asarray((out[0] if isinstance(out, (list, tuple)) else out).to_host())


def first_error(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if "error:" in ln]
    return (lines[0] if lines else str(e).strip().splitlines()[-1])[:240]


def version() -> str:
    import iree.compiler.version as v

    return v.VERSION
