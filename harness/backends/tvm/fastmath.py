"""Vectorisable transcendental functions for TVM on the CPU.

LLVM lowers TVM's `exp`, `tanh` and `sigmoid` (1 / (1 + exp(-x))) on float32 to the `llvm.exp`/`tanh`
intrinsics, which x86 has no instruction for: a vectorised loop calls libm's scalar `expf` once per lane
(vae@128's last kernel, DepthToSpace + Sigmoid over 3 x 128 x 128, spent 14% of the model there). ONNX Runtime
(MLAS) and OpenVINO compute these with vectorised polynomial / rational approximations. TVM ships the same:
`relax.transform.FastMathTransform` replaces exp, tanh, erf and softmax by topi's `fast_*` kernels (a
range-reduced polynomial exp, Eigen's rational tanh), which are arithmetic the default schedule vectorises.
Sigmoid, which that pass does not know, is first written as 1 / (1 + exp(-x)) in Relax ops so its exp is
replaced too. The accuracy cost is a few float32 ulps (tests/backends/test_tvm_schedule.py measures it), far
inside convtx's tolerance; every tvm-llvm record says the pass ran (engine_info's "fast_math").
"""

from __future__ import annotations

FAST_MATH = "exp, tanh, erf, softmax, sigmoid -> topi fast_* (relax.transform.FastMathTransform)"


def apply(mod):
    """`mod` with sigmoid decomposed and TVM's FastMathTransform applied to every Relax function."""
    import tvm
    from tvm import relax
    from tvm.relax import expr_functor

    @expr_functor.mutator
    class _Sigmoid(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.sigmoid":
                x = call.args[0]
                dtype = str(x.ty.dtype)
                one = relax.const(1.0, dtype)
                e = self.builder_.emit(relax.op.exp(self.builder_.emit(relax.op.negative(x))))
                return relax.op.divide(one, self.builder_.emit(relax.op.add(one, e)))
            return call

    @tvm.transform.module_pass(opt_level=0, name="ConvtxDecomposeSigmoid")
    class _DecomposeSigmoid:
        def transform_module(self, mod, ctx):
            m = _Sigmoid(mod)
            for gv, func in mod.functions_items():
                if isinstance(func, relax.Function):
                    m.builder_.update_func(gv, m.visit_expr(func))
            return m.builder_.get()

    seq = tvm.transform.Sequential([_DecomposeSigmoid(), relax.transform.FastMathTransform()])
    with tvm.transform.PassContext(opt_level=3):
        return seq(mod)
