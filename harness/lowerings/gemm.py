"""The GEMM both `gemm_col2im` and `gemm_overlap_add` start with: every input pixel times the kernel
matrix (the seeds' "kernel as a matrix, transposed"), giving N x (M*prod(K)) x L columns."""

from __future__ import annotations

import math

import numpy as np

from harness.lowerings.common import ConvTransposeNode, Emitter


def columns(em: Emitter, ct: ConvTransposeNode) -> str:
    """N x C x I...  ->  N x (M*PK) x L, channel index m*PK + k (row-major k), L = prod(I)."""
    p = ct.p
    g, c, m = p.group, ct.channels_in, ct.channels_out
    cg, mg, pk = c // g, m // g, math.prod(p.kernel_shape)
    length = math.prod(ct.in_spatial)
    if ct.w is not None:
        wt = ct.w.reshape(g, cg, mg * pk).transpose(0, 2, 1)  # g x (M/g*PK) x C/g
        if g == 1:
            x = em.reshape(ct.x, [c, length], "x_matrix")
            return em.op("MatMul", [em.const(np.ascontiguousarray(wt[0]), "W_matrix"), x], "columns")
        x = em.reshape(ct.x, [g, cg, length], "x_groups")
        cols = em.op("MatMul", [em.const(np.ascontiguousarray(wt), "W_matrices"), x], "columns_groups")
        return em.reshape(cols, [m * pk, length], "columns")
    # computed at run time: the same Reshape and Transpose in the graph
    wt = em.reshape_all(ct.w_name, [g, cg, mg * pk], "W_rows")
    wt = em.op("Transpose", [wt], "W_matrices", perm=[0, 2, 1])
    if g == 1:
        x = em.reshape(ct.x, [c, length], "x_matrix")
        return em.op("MatMul", [em.reshape_all(wt, [mg * pk, cg], "W_matrix"), x], "columns")
    x = em.reshape(ct.x, [g, cg, length], "x_groups")
    cols = em.op("MatMul", [wt, x], "columns_groups")
    return em.reshape(cols, [m * pk, length], "columns")
